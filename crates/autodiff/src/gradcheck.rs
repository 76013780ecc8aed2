//! Checking tape gradients against central finite differences.
//!
//! For every checked element `p_j` of every parameter, the loss is evaluated at `p_j + eps`
//! and `p_j - eps` and the numeric derivative `(L+ - L-) / (2 eps)` is formed in `f64` (with
//! the step actually representable in `f32` as the denominator). It passes when
//! `|analytic - numeric| <= atol + rtol * |numeric|` everywhere.

use std::fmt;

use crate::param::Param;
use crate::tape::{Mode, Tape, Var};

/// Settings of [`gradcheck`]. The defaults suit `f32` losses of order 1 on small inputs.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Half-width of the central difference (default `1e-2`). It balances truncation error,
    /// about `eps^2 |f'''| / 6`, against the `f32` rounding of the loss, about
    /// `6e-8 |L| / eps`: for losses of order 10 both stay near 1e-4. Inputs must keep kinks
    /// (ReLU at 0, max-pool ties) more than `eps` away.
    pub eps: f64,
    /// Relative tolerance on the numeric derivative (default `1e-2`).
    pub rtol: f64,
    /// Absolute tolerance (default `1e-3`).
    pub atol: f64,
    /// Tape mode of every evaluation (default [`Mode::Train`], so dropout is exercised).
    pub mode: Mode,
    /// Tape seed of every evaluation: the same dropout mask and noise each time.
    pub seed: u64,
    /// At most this many evenly spaced elements are checked per parameter (default: all).
    pub max_elements_per_param: usize,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 1e-3,
            mode: Mode::Train,
            seed: 0,
            max_elements_per_param: usize::MAX,
        }
    }
}

/// One compared element: where it is and both derivatives.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckElement {
    /// Name of the parameter.
    pub param: String,
    /// Flat (row-major) index into the parameter.
    pub index: usize,
    /// The tape's gradient.
    pub analytic: f64,
    /// The central finite difference.
    pub numeric: f64,
}

/// The outcome of a [`gradcheck`].
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// Whether every element was within tolerance.
    pub passed: bool,
    /// Number of elements compared.
    pub checked: usize,
    /// The element with the largest error relative to its tolerance.
    pub worst: Option<GradcheckElement>,
    /// That element's `|analytic - numeric| / (atol + rtol |numeric|)`; at most 1 passes.
    pub worst_ratio: f64,
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        write!(f, "gradcheck {verdict}: {} elements", self.checked)?;
        if let Some(w) = &self.worst {
            write!(
                f,
                "; worst {}[{}]: analytic {:.6e}, numeric {:.6e} ({:.3} of tolerance)",
                w.param, w.index, w.analytic, w.numeric, self.worst_ratio
            )?;
        }
        Ok(())
    }
}

/// A collection of parameters that [`gradcheck_with`] can perturb one element at a time:
/// a slice of `&mut Param`, or a model (see `adamant_layers::gradcheck_module`).
pub trait ParamSet {
    /// Number of parameters.
    fn count(&self) -> usize;
    /// Parameter `i`.
    fn get(&self, i: usize) -> &Param;
    /// Parameter `i`, mutably.
    fn get_mut(&mut self, i: usize) -> &mut Param;
}

impl ParamSet for [&mut Param] {
    fn count(&self) -> usize {
        self.len()
    }
    fn get(&self, i: usize) -> &Param {
        self[i]
    }
    fn get_mut(&mut self, i: usize) -> &mut Param {
        self[i]
    }
}

/// Compares the tape gradient of the scalar `loss` with central finite differences, for
/// every parameter in `params`.
///
/// `loss` is called as `loss(&tape, &*params)` on a fresh tape of `opts.mode` and
/// `opts.seed` each time, so random ops draw the same values in every evaluation.
/// Parameters are restored exactly afterwards.
///
/// ```
/// use adamant_autodiff::{gradcheck, GradcheckOptions, Param, Tape};
/// use adamant_tensor::Tensor;
///
/// let mut w = Param::new("w", Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3]));
/// let report = gradcheck(&mut [&mut w], |tape: &Tape, p| {
///     let w = tape.param(&*p[0]);
///     (w * w).sigmoid().sum()
/// }, GradcheckOptions::default());
/// assert!(report.passed, "{report}");
/// ```
pub fn gradcheck<F>(params: &mut [&mut Param], loss: F, opts: GradcheckOptions) -> GradcheckReport
where
    F: for<'t> Fn(&'t Tape, &[&mut Param]) -> Var<'t>,
{
    gradcheck_with(params, loss, opts)
}

/// [`gradcheck`] over any [`ParamSet`]: `loss` receives the set itself.
pub fn gradcheck_with<S, F>(params: &mut S, loss: F, opts: GradcheckOptions) -> GradcheckReport
where
    S: ParamSet + ?Sized,
    F: for<'t> Fn(&'t Tape, &S) -> Var<'t>,
{
    let eval = |params: &S| -> f64 {
        let tape = Tape::new(opts.mode, opts.seed);
        loss(&tape, params).item() as f64
    };
    let analytic: Vec<Option<Vec<f32>>> = {
        let tape = Tape::new(opts.mode, opts.seed);
        let grads = loss(&tape, params).backward();
        (0..params.count()).map(|i| grads.get(params.get(i)).map(|g| g.data().to_vec())).collect()
    };

    let mut report = GradcheckReport { passed: true, checked: 0, worst: None, worst_ratio: 0.0 };
    for pi in 0..params.count() {
        let n = params.get(pi).numel();
        let stride = n.div_ceil(opts.max_elements_per_param.max(1)).max(1);
        for j in (0..n).step_by(stride) {
            let original = params.get(pi).value().data()[j];
            let plus = (original as f64 + opts.eps) as f32;
            let minus = (original as f64 - opts.eps) as f32;
            params.get_mut(pi).value_mut().data_mut()[j] = plus;
            let l_plus = eval(params);
            params.get_mut(pi).value_mut().data_mut()[j] = minus;
            let l_minus = eval(params);
            params.get_mut(pi).value_mut().data_mut()[j] = original;

            let numeric = (l_plus - l_minus) / (plus as f64 - minus as f64);
            // A parameter the loss does not reach has gradient zero.
            let analytic = analytic[pi].as_ref().map_or(0.0, |g| g[j] as f64);
            let ratio = (analytic - numeric).abs() / (opts.atol + opts.rtol * numeric.abs());
            report.checked += 1;
            if ratio.is_nan() || ratio > 1.0 {
                report.passed = false;
            }
            if report.worst.is_none() || ratio.is_nan() || ratio > report.worst_ratio {
                report.worst_ratio = ratio;
                report.worst = Some(GradcheckElement {
                    param: params.get(pi).name().to_string(),
                    index: j,
                    analytic,
                    numeric,
                });
            }
        }
    }
    report
}
