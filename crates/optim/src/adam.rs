//! Adam (Kingma & Ba 2014, Algorithm 1), its AMSGrad variant, and AdamW.

use adamant_autodiff::{Gradients, Param};

use crate::inspect::ParamMoments;
use adamant_tensor::Tensor;

use crate::core::{Core, ParamState};
use crate::moments::{bias_correction, fused_update, Decay, Moments};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

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
        let config = read_config!(o, AdamConfig { lr, betas, eps, weight_decay, amsgrad });
        Ok(Adam::new(AdamConfig { bias_correction: !o.switch("no_bias_correction"), ..config }))
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
        self.core.for_each_parallel(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), n_buffers),
            |theta, grad, state, h| {
                let (beta1, beta2) = config.betas;
                // Scalar coefficients in f64, as PyTorch computes them in Python floats.
                let t = state.step as f64;
                let (step_size, bc2_sqrt) = if config.bias_correction {
                    let bc1 = bias_correction(beta1, t);
                    let bc2 = bias_correction(beta2, t);
                    (h.lr as f64 / bc1, bc2.sqrt())
                } else {
                    (h.lr as f64, 1.0)
                };
                let coeffs = AdamStep {
                    moments: Moments::adam(beta1, beta2),
                    decay: Decay::new(h, decoupled),
                    eps: config.eps,
                    step_size: step_size as f32,
                    bc2_sqrt: bc2_sqrt as f32,
                };
                adam_update(theta, grad, &mut state.buffers, &coeffs);
            },
        );
    }

    optimizer_common!();

    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        // AMSGrad divides by the running maximum of v, its third buffer.
        let second = if self.config.amsgrad { 2 } else { 1 };
        let c = self.config;
        self.core.moments(params, (0, second), c.betas, c.eps, c.bias_correction)
    }
}

/// The per-step scalars of one Adam update.
struct AdamStep {
    moments: Moments,
    /// Adam's L2 term, or AdamW's decoupled decay.
    decay: Decay,
    eps: f32,
    /// `lr / (1 - beta1^t)`, or `lr` without bias correction.
    step_size: f32,
    /// `sqrt(1 - beta2^t)`, or 1 without bias correction.
    bc2_sqrt: f32,
}

/// One fused Adam/AdamW/AMSGrad update of a parameter tensor and its `buffers` (`m`, `v` and,
/// for AMSGrad, the running maximum of `v`), in PyTorch's operation order (see
/// [`fused_update`] for the loop; this is its last line).
fn adam_update(theta: &mut [f32], grad: &[f32], buffers: &mut [Tensor], c: &AdamStep) {
    // The closure takes the scalars by value: loads through a captured reference could alias
    // the slices as far as the compiler knows, and would keep the loop from vectorising.
    let AdamStep { eps, step_size, bc2_sqrt, .. } = *c;
    fused_update(theta, grad, buffers, c.decay, c.moments, move |t, _g, m, second| {
        let denom = second.sqrt() / bc2_sqrt + eps;
        t + -step_size * (m / denom)
    });
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
        Ok(AdamW::new(read_config!(o, AdamWConfig { lr, betas, eps, weight_decay, amsgrad })))
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
    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        self.inner.moments(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moments::UPDATE_CHUNK;
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
                moments: Moments::adam(0.9, 0.999),
                decay: Decay { factor: decay_factor, l2 },
                eps: 1e-8,
                step_size: 1e-3 / 0.1,
                bc2_sqrt: 0.001f32.sqrt(),
            };
            let run = |mode| {
                let mut theta = r(1);
                let squares = |s| r(s).iter().map(|x| x * x).collect::<Vec<f32>>();
                let mut buffers: Vec<Tensor> = [r(3), squares(4), squares(5)]
                    .into_iter()
                    .take(if amsgrad { 3 } else { 2 })
                    .map(|b| Tensor::from_vec(b, &[n]))
                    .collect();
                with_mode(mode, || adam_update(&mut theta, &r(2), &mut buffers, &c));
                (theta, buffers)
            };
            let (serial, parallel) = (run(Mode::Serial), run(Mode::Parallel));
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&serial.0), bits(&parallel.0), "theta, l2 {l2} decay {decay_factor}");
            for (name, (s, p)) in ["m", "v", "vmax"].iter().zip(serial.1.iter().zip(&parallel.1)) {
                assert_eq!(bits(s.data()), bits(p.data()), "{name}");
            }
            assert_ne!(bits(&serial.0), bits(&r(1)), "the update moved theta");
        }
    }
}
