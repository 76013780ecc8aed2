//! Adam (Kingma & Ba 2014, Algorithm 1), its AMSGrad variant, and AdamW.

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::kernels::parallel::should_parallelize;
use adamant_tensor::Tensor;

use crate::core::{Core, ParamState};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};

/// Options of [`Adam`]; `Default` gives `torch.optim.Adam`'s defaults and the paper's
/// recommended settings (alpha = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Step size alpha (default `1e-3`).
    pub lr: f32,
    /// Exponential decay rates (beta1, beta2) of the moment estimates (default `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// epsilon, added to the denominator (default `1e-8`).
    pub eps: f32,
    /// L2 penalty lambda added to the gradient (default 0). For decoupled decay use [`AdamW`].
    pub weight_decay: f32,
    /// Use AMSGrad's running maximum of the second moment (default false).
    pub amsgrad: bool,
    /// Correct the initialisation bias of both moments (default true). Turning it off gives
    /// the update `lr m / (sqrt(v) + eps)`, the variant the paper's section 6.4 studies.
    pub bias_correction: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            bias_correction: true,
        }
    }
}

impl FromOptions for Adam {
    const NAME: &'static str = "adam";

    fn from_options(o: &OptionReader<'_>) -> Result<Adam, OptionsError> {
        let d = AdamConfig::default();
        Ok(Adam::new(AdamConfig {
            lr: o.number("lr", d.lr)?,
            betas: o.pair("betas", d.betas)?,
            eps: o.number("eps", d.eps)?,
            weight_decay: o.number("weight_decay", d.weight_decay)?,
            amsgrad: o.switch("amsgrad"),
            bias_correction: !o.switch("no_bias_correction"),
        }))
    }
}

/// Adam, exactly as the paper's Algorithm 1, in `torch.optim.Adam`'s arithmetic. With
/// gradient `g_t` of parameter `theta` at step t:
///
/// ```text
/// g_t     <- g_t + lambda theta_{t-1}                     (if weight_decay != 0)
/// m_t     <- beta1 m_{t-1} + (1 - beta1) g_t              (biased first moment)
/// v_t     <- beta2 v_{t-1} + (1 - beta2) g_t^2            (biased second raw moment)
/// vmax_t  <- max(vmax_{t-1}, v_t);  v_t <- vmax_t         (if amsgrad)
/// m_hat_t <- m_t / (1 - beta1^t)                          (bias corrections)
/// v_hat_t <- v_t / (1 - beta2^t)
/// theta_t <- theta_{t-1} - alpha m_hat_t / (sqrt(v_hat_t) + epsilon)
/// ```
///
/// As in PyTorch, the last line is computed as
/// `theta - (alpha / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)`: epsilon sits
/// outside the corrected square root, which is the paper's formula (the paper's section 2
/// also gives a cheaper ordering that moves epsilon inside; PyTorch and adamant do not use it).
/// Without bias correction: `theta_t <- theta_{t-1} - alpha m_t / (sqrt(v_t) + epsilon)`.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    /// AdamW's decoupled weight decay instead of the L2 gradient term.
    decoupled: bool,
    core: Core,
}

/// Buffers of Adam and AdamW, in state order.
const ADAM_BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq"];
const AMSGRAD_BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

impl Adam {
    /// An Adam optimizer.
    pub fn new(config: AdamConfig) -> Adam {
        Adam::build("adam", config, false)
    }

    fn build(kind: &'static str, config: AdamConfig, decoupled: bool) -> Adam {
        let buffers = if config.amsgrad { AMSGRAD_BUFFERS } else { ADAM_BUFFERS };
        Adam { core: Core::new(kind, buffers, &[], config.lr, config.weight_decay), config, decoupled }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> AdamConfig {
        self.config
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let config = self.config;
        let decoupled = self.decoupled;
        let n_buffers = self.core.buffer_names.len();
        self.core.for_each(
            params,
            grads,
            |p| ParamState { step: 0, buffers: vec![Tensor::zeros(p.shape()); n_buffers], scalars: vec![] },
            |theta, grad, state, h| {
                let (beta1, beta2) = config.betas;
                // Scalar coefficients in f64, as PyTorch computes them in Python floats.
                let t = state.step as f64;
                let (step_size, bc2_sqrt) = if config.bias_correction {
                    let bc1 = 1.0 - (beta1 as f64).powf(t);
                    let bc2 = 1.0 - (beta2 as f64).powf(t);
                    (h.lr as f64 / bc1, bc2.sqrt())
                } else {
                    (h.lr as f64, 1.0)
                };
                let coeffs = AdamStep {
                    beta1,
                    beta2,
                    eps: config.eps,
                    step_size: step_size as f32,
                    bc2_sqrt: bc2_sqrt as f32,
                    l2: h.decay_terms(decoupled).1,
                    decay_factor: h.decay_terms(decoupled).0,
                };
                let [m, v, rest @ ..] = state.buffers.as_mut_slice() else {
                    unreachable!("two buffers at least")
                };
                let vmax = rest.first_mut().map(|b| b.data_mut());
                adam_update(theta, grad, m.data_mut(), v.data_mut(), vmax, &coeffs);
            },
        );
    }

    optimizer_common!();
}

/// The per-step scalars of one Adam update.
struct AdamStep {
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// `lr / (1 - beta1^t)`, or `lr` without bias correction.
    step_size: f32,
    /// `sqrt(1 - beta2^t)`, or 1 without bias correction.
    bc2_sqrt: f32,
    /// L2 coefficient added to the gradient (Adam's weight decay).
    l2: f32,
    /// `1 - lr lambda` applied to the parameter first (AdamW's decoupled decay).
    decay_factor: f32,
}

/// Elements per piece when an update runs on several threads. The update is elementwise, so
/// the split changes nothing but speed; it is fixed so the work units never depend on threads.
const UPDATE_CHUNK: usize = 1 << 15;

/// One fused Adam/AdamW/AMSGrad update of a parameter tensor, in PyTorch's operation order:
/// one pass over memory (theta, g, m, v read once and written once), split over rayon for
/// large tensors. The update is memory-bound (7 floats of traffic per element), so the second
/// core mostly buys bandwidth.
fn adam_update(
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: Option<&mut [f32]>,
    c: &AdamStep,
) {
    use rayon::prelude::*;
    if !should_parallelize(theta.len()) {
        return adam_update_chunk(theta, grad, m, v, vmax, c);
    }
    let pieces = theta
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(grad.par_chunks(UPDATE_CHUNK))
        .zip(m.par_chunks_mut(UPDATE_CHUNK))
        .zip(v.par_chunks_mut(UPDATE_CHUNK));
    match vmax {
        Some(vmax) => pieces
            .zip(vmax.par_chunks_mut(UPDATE_CHUNK))
            .for_each(|((((t, g), m), v), vm)| adam_update_chunk(t, g, m, v, Some(vm), c)),
        None => pieces.for_each(|(((t, g), m), v)| adam_update_chunk(t, g, m, v, None, c)),
    }
}

/// [`adam_update`] on one piece, serially. The branches are loop-invariant; the iterators
/// carry no bounds checks, so the loop vectorises.
fn adam_update_chunk(
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: Option<&mut [f32]>,
    c: &AdamStep,
) {
    let one_minus_beta1 = 1.0 - c.beta1;
    let one_minus_beta2 = 1.0 - c.beta2;
    // theta, m, v and, for AMSGrad, the running maximum of v.
    let step = |theta: &mut f32, g: f32, m: &mut f32, v: &mut f32| -> f32 {
        let mut t = *theta;
        if c.decay_factor != 1.0 {
            t *= c.decay_factor;
        }
        let g = if c.l2 != 0.0 { g + c.l2 * t } else { g };
        // torch's lerp: m + w (g - m) for w < 0.5, else g - (g - m)(1 - w).
        *m = if one_minus_beta1 < 0.5 { *m + one_minus_beta1 * (g - *m) } else { g - (g - *m) * c.beta1 };
        *v = *v * c.beta2 + one_minus_beta2 * (g * g);
        t
    };
    let apply = |t: f32, m: f32, second: f32| -> f32 {
        let denom = second.sqrt() / c.bc2_sqrt + c.eps;
        t + -c.step_size * (m / denom)
    };
    let elems = theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut());
    match vmax {
        Some(vmax) => {
            for ((((theta, &g), m), v), vmax) in elems.zip(vmax.iter_mut()) {
                let t = step(theta, g, m, v);
                *vmax = vmax.max(*v);
                *theta = apply(t, *m, *vmax);
            }
        }
        None => {
            for (((theta, &g), m), v) in elems {
                let t = step(theta, g, m, v);
                *theta = apply(t, *m, *v);
            }
        }
    }
}

/// Options of [`AdamW`]; `Default` gives `torch.optim.AdamW`'s defaults (as Adam's, with
/// weight decay `1e-2`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Step size (default `1e-3`).
    pub lr: f32,
    /// (beta1, beta2) (default `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// Denominator epsilon (default `1e-8`).
    pub eps: f32,
    /// Decoupled weight decay lambda (default `1e-2`).
    pub weight_decay: f32,
    /// AMSGrad variant (default false).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }
}

impl FromOptions for AdamW {
    const NAME: &'static str = "adamw";

    fn from_options(o: &OptionReader<'_>) -> Result<AdamW, OptionsError> {
        let d = AdamWConfig::default();
        Ok(AdamW::new(AdamWConfig {
            lr: o.number("lr", d.lr)?,
            betas: o.pair("betas", d.betas)?,
            eps: o.number("eps", d.eps)?,
            weight_decay: o.number("weight_decay", d.weight_decay)?,
            amsgrad: o.switch("amsgrad"),
        }))
    }
}

/// AdamW (Loshchilov & Hutter), as `torch.optim.AdamW`: Adam with the weight decay
/// decoupled from the gradient. Each step first shrinks the parameter,
/// `theta <- theta (1 - lr lambda)`, then takes Adam's step with the plain gradient, so the
/// decay is not rescaled by the adaptive denominator the way an L2 term in the gradient is.
#[derive(Clone, Debug)]
pub struct AdamW {
    inner: Adam,
}

impl AdamW {
    /// An AdamW optimizer.
    pub fn new(config: AdamWConfig) -> AdamW {
        let adam = AdamConfig {
            lr: config.lr,
            betas: config.betas,
            eps: config.eps,
            weight_decay: config.weight_decay,
            amsgrad: config.amsgrad,
            bias_correction: true,
        };
        AdamW { inner: Adam::build("adamw", adam, true) }
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        self.inner.step(params, grads)
    }
    fn lr(&self) -> f32 {
        self.inner.lr()
    }
    fn set_lr(&mut self, lr: f32) {
        self.inner.set_lr(lr)
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn add_param_group(&mut self, group: crate::core::ParamGroup) {
        self.inner.add_param_group(group)
    }
    fn state_dict(&self) -> crate::state::OptimizerState {
        self.inner.state_dict()
    }
    fn load_state_dict(
        &mut self,
        state: crate::state::OptimizerState,
    ) -> Result<(), crate::state::StateError> {
        self.inner.load_state_dict(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::kernels::parallel::{with_mode, Mode};
    use adamant_tensor::rng::seeded;

    /// The split over threads must not change a single bit of any variant (plain, L2,
    /// decoupled decay, AMSGrad), including the ragged last piece.
    #[test]
    fn parallel_update_equals_serial_bit_for_bit() {
        let n = 3 * UPDATE_CHUNK + 123;
        let r = |s| Tensor::randn(&[n], 0.0, 1.0, &mut seeded(s)).into_vec();
        for (l2, decay_factor, amsgrad) in [(0.0, 1.0, false), (1e-2, 1.0, false), (0.0, 0.99, true)] {
            let c = AdamStep {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                step_size: 1e-3 / 0.1,
                bc2_sqrt: 0.001f32.sqrt(),
                l2,
                decay_factor,
            };
            let run = |mode| {
                let (mut theta, grad, mut m, mut v) =
                    (r(1), r(2), r(3), r(4).iter().map(|x| x * x).collect::<Vec<f32>>());
                let mut vmax: Vec<f32> = r(5).iter().map(|x| x * x).collect();
                with_mode(mode, || {
                    adam_update(&mut theta, &grad, &mut m, &mut v, amsgrad.then_some(&mut vmax[..]), &c)
                });
                (theta, m, v, vmax)
            };
            let (serial, parallel) = (run(Mode::Serial), run(Mode::Parallel));
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&serial.0), bits(&parallel.0), "theta, l2 {l2} decay {decay_factor}");
            assert_eq!(bits(&serial.1), bits(&parallel.1), "m");
            assert_eq!(bits(&serial.2), bits(&parallel.2), "v");
            assert_eq!(bits(&serial.3), bits(&parallel.3), "vmax");
            assert_ne!(bits(&serial.0), bits(&r(1)), "the update moved theta");
        }
    }
}
