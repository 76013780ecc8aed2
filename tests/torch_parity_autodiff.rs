//! Forward values and gradients of conv2d, max_pool2d, log_softmax, softmax cross-entropy and
//! BCE with logits equal PyTorch's on fixed inputs, within
//! |ours - torch| <= 1e-5 + 1e-4 |torch| elementwise; the embedding lookup (a copy forward,
//! a scatter-add of a few terms backward) and the elementwise ops of issue 20 (gelu, silu,
//! abs, clamp, leaky_relu, elu, sin, cos, rsqrt, recip, minimum, maximum) within the relative
//! |ours - torch| <= 1e-5 |torch|; masked_fill and where exactly.
//!
//! The fixtures come from `tests/fixtures/gen_autodiff.py` (run with torch installed); this
//! test only reads the committed JSON.

use adamant::autodiff::{Reduction, Var};
use adamant::tensor::Ids;
use serde_json::Value;

mod common;

use common::torch::{compare_case, fixture_json, named, tensor};

fn case(name: &str) -> Value {
    named(&fixture_json("autodiff_torch.json")["cases"], name).clone()
}

/// The tolerance of most cases: kernels that sum in another order than PyTorch's.
const DEFAULT_TOL: (f32, f32) = (1e-5, 1e-4);

/// Runs `op` on the case's inputs as parameters, compares the output and the gradients.
fn compare(name: &str, op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    compare_within(name, DEFAULT_TOL, op)
}

/// [`compare`] with the tolerance `(atol, rtol)`.
fn compare_within(name: &str, tol: (f32, f32), op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    compare_case(&case(name), tol, op)
}

fn meta(m: &Value, key: &str) -> usize {
    m[key].as_u64().unwrap() as usize
}

#[test]
fn conv2d_matches_torch() {
    for name in ["conv2d_3x3_s2_p1", "conv2d_5x5_s1_p2"] {
        compare(name, |v, m| v[0].conv2d(v[1], Some(v[2]), meta(m, "stride"), meta(m, "padding")));
    }
    compare("conv2d_1x1_nobias", |v, _| v[0].conv2d(v[1], None, 1, 0));
}

#[test]
fn max_pool2d_matches_torch() {
    for name in ["max_pool2d_3x3_s2_p1", "max_pool2d_3x3_s2_p1_negative", "max_pool2d_2x2_s2"] {
        compare(name, |v, m| v[0].max_pool2d(meta(m, "kernel"), meta(m, "stride"), meta(m, "padding")));
    }
}

#[test]
fn log_softmax_matches_torch() {
    compare("log_softmax", |v, _| v[0].log_softmax(-1));
    compare("log_softmax_extreme", |v, _| v[0].log_softmax(-1));
}

#[test]
fn cross_entropy_matches_torch() {
    for name in ["cross_entropy", "cross_entropy_extreme"] {
        compare(name, |v, m| {
            let labels: Vec<usize> =
                m["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
            v[0].cross_entropy(&labels)
        });
    }
}

#[test]
fn bce_with_logits_matches_torch() {
    compare("bce_with_logits_sum", |v, m| v[0].bce_with_logits(&tensor(&m["targets"]), Reduction::Sum));
    compare("bce_with_logits_mean", |v, m| v[0].bce_with_logits(&tensor(&m["targets"]), Reduction::Mean));
}

#[test]
fn embedding_matches_torch() {
    // F.embedding(ids [3, 5] with repeats, table [6, 4]): repeated ids sum their gradients.
    compare_within("embedding_repeats", (0.0, 1e-5), |v, m| {
        let ids: Vec<usize> =
            m["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect();
        let shape: Vec<usize> =
            m["ids_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        v[0].embedding(&Ids::from_vec(ids, &shape))
    });
}

/// Issue 20's elementwise ops: relative tolerance 1e-5 (each value and gradient is one
/// function of one element, no sums). The abs, clamp, leaky_relu and elu cases put a few
/// inputs exactly on the kink, so they also pin PyTorch's gradient there. Both GELUs are
/// compared with torch's float64 values (see the generator: torch's f32 GELU loses up to
/// 1e-4 relative, and everything below -5.7, to cancellation in `1 + erf`).
#[test]
fn elementwise_ops_match_torch() {
    let m = |m: &Value, key: &str| m[key].as_f64().unwrap() as f32;
    let tol = (0.0, 1e-5);
    compare_within("gelu", tol, |v, _| v[0].gelu());
    compare_within("gelu_tanh", tol, |v, _| v[0].gelu_tanh());
    compare_within("silu", tol, |v, _| v[0].silu());
    compare_within("abs", tol, |v, _| v[0].abs());
    compare_within("clamp", tol, |v, c| v[0].clamp(m(c, "min"), m(c, "max")));
    compare_within("leaky_relu", tol, |v, c| v[0].leaky_relu(m(c, "negative_slope")));
    compare_within("elu", tol, |v, c| v[0].elu(m(c, "alpha")));
    compare_within("sin", tol, |v, _| v[0].sin());
    compare_within("cos", tol, |v, _| v[0].cos());
    compare_within("rsqrt", tol, |v, _| v[0].rsqrt());
    compare_within("recip", tol, |v, _| v[0].recip());
}

/// `torch.maximum` / `torch.minimum` of [3, 4] and [4], with two exact ties (half the
/// gradient to each side) and the broadcast operand's gradient summed over rows.
#[test]
fn minimum_and_maximum_match_torch() {
    compare_within("maximum", (0.0, 1e-5), |v, _| v[0].maximum(v[1]));
    compare_within("minimum", (0.0, 1e-5), |v, _| v[0].minimum(v[1]));
}

/// `masked_fill` and `torch.where` under a random mask (exact: a copy forward and backward).
#[test]
fn masked_fill_and_where_match_torch() {
    fn mask(m: &Value) -> (Vec<bool>, Vec<usize>) {
        let bits = m["mask"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
        let shape =
            m["mask_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        (bits, shape)
    }
    compare_within("masked_fill", (0.0, 0.0), |v, m| {
        let (bits, shape) = mask(m);
        v[0].masked_fill(&bits, &shape, m["value"].as_f64().unwrap() as f32)
    });
    compare_within("where", (0.0, 0.0), |v, m| {
        let (bits, shape) = mask(m);
        Var::where_(&bits, &shape, v[0], v[1])
    });
}
