//! What the gradcheck tests share: seeded parameters, the scalar that weighs every output
//! element, and the check itself.
// Each test crate uses only some of these.
#![allow(dead_code)]

use adamant_autodiff::{gradcheck, GradcheckOptions, Param, Tape, Var};
use adamant_tensor::{rng::seeded, Tensor};

/// A parameter of standard normal values drawn from `seed`.
pub fn param(name: &str, shape: &[usize], seed: u64) -> Param {
    Param::new(name, Tensor::randn(shape, 0.0, 1.0, &mut seeded(seed)))
}

/// Values in `[lo, hi)`, for ops with a restricted domain (log, sqrt, div).
pub fn param_in(name: &str, shape: &[usize], lo: f32, hi: f32, seed: u64) -> Param {
    Param::new(name, Tensor::rand_uniform(shape, lo, hi, &mut seeded(seed)))
}

/// `sum(y * r)` with a fixed random `r` of `y`'s shape: a scalar that weighs every element
/// (a plain sum would hide errors that cancel, such as a normalized row's).
pub fn weigh(y: Var<'_>) -> Var<'_> {
    let r = Tensor::randn(&y.shape(), 0.0, 1.0, &mut seeded(999));
    (y * y.tape().constant(r)).sum()
}

/// Gradchecks `f` with the default options; fails with the report.
pub fn check<F>(params: &mut [&mut Param], f: F)
where
    F: for<'t> Fn(&'t Tape, &[&mut Param]) -> Var<'t>,
{
    let report = gradcheck(params, f, GradcheckOptions::default());
    assert!(report.passed, "{report}");
    assert!(report.checked > 0);
}
