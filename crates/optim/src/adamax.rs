//! AdaMax (Kingma & Ba 2014, Algorithm 2): Adam with the infinity norm.

use adamant_autodiff::{Gradients, Param};

use crate::core::{Core, ParamState};
use crate::moments::lerp;
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Adamax`]; `Default` gives `torch.optim.Adamax`'s defaults (the paper's
/// recommended alpha = 0.002, beta1 = 0.9, beta2 = 0.999).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamaxConfig {
    /// Step size alpha (default `2e-3`).
    pub lr: f32,
    /// (beta1, beta2) (default `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// epsilon added to |g| inside the max (default `1e-8`).
    pub eps: f32,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f32,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig { lr: 2e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0 }
    }
}

impl FromOptions for Adamax {
    const NAME: &'static str = "adamax";

    fn from_options(o: &OptionReader<'_>) -> Result<Adamax, OptionsError> {
        Ok(Adamax::new(read_config!(o, AdamaxConfig { lr, betas, eps, weight_decay })))
    }
}

/// AdaMax as `torch.optim.Adamax` computes it:
///
/// ```text
/// g_t     <- g_t + lambda theta_{t-1}                 (if weight_decay != 0)
/// m_t     <- beta1 m_{t-1} + (1 - beta1) g_t
/// u_t     <- max(beta2 u_{t-1}, |g_t| + epsilon)
/// theta_t <- theta_{t-1} - (alpha / (1 - beta1^t)) m_t / u_t
/// ```
///
/// The paper's Algorithm 2 has `u_t <- max(beta2 u_{t-1}, |g_t|)` with no epsilon; PyTorch
/// (and adamant) add epsilon inside the max so that `u_t` is never zero (a parameter whose
/// gradient is exactly zero from the start would otherwise divide 0 by 0).
#[derive(Clone, Debug)]
pub struct Adamax {
    config: AdamaxConfig,
    core: Core,
}

impl Adamax {
    /// An AdaMax optimizer.
    pub fn new(config: AdamaxConfig) -> Adamax {
        Adamax {
            core: Core::new("adamax", &["exp_avg", "exp_inf"], &[], config.lr, config.weight_decay),
            config,
        }
    }
}

impl Optimizer for Adamax {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let (beta1, beta2) = self.config.betas;
        let eps = self.config.eps;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 2),
            |theta, grad, state, h| {
                let clr = (h.lr as f64 / (1.0 - (beta1 as f64).powf(state.step as f64))) as f32;
                let [m, u] = state.buffers.as_mut_slice() else { unreachable!("two buffers") };
                let (m, u) = (m.data_mut(), u.data_mut());
                let w = 1.0 - beta1;
                for i in 0..theta.len() {
                    let g = if h.weight_decay != 0.0 { grad[i] + h.weight_decay * theta[i] } else { grad[i] };
                    m[i] = lerp(m[i], g, w);
                    u[i] = (u[i] * beta2).max(g.abs() + eps);
                    theta[i] += -clr * (m[i] / u[i]);
                }
            },
        );
    }

    optimizer_common!();
}
