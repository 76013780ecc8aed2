//! NAdam (Dozat 2016): Adam with Nesterov momentum.

use adamant_autodiff::{Gradients, Param};

use crate::inspect::ParamMoments;

use crate::core::{Core, ParamState};
use crate::moments::{bias_correction, fused_update, Decay, Moments};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`NAdam`]; `Default` gives `torch.optim.NAdam`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NAdamConfig {
    /// Learning rate (default `2e-3`).
    pub lr: f32,
    /// (beta1, beta2) (default `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// Denominator epsilon (default `1e-8`).
    pub eps: f32,
    /// Weight decay (default 0): an L2 term, or decoupled if `decoupled_weight_decay`.
    pub weight_decay: f32,
    /// psi of the momentum schedule (default `4e-3`).
    pub momentum_decay: f32,
    /// Apply weight decay AdamW-style (default false).
    pub decoupled_weight_decay: bool,
}

impl Default for NAdamConfig {
    fn default() -> Self {
        NAdamConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
        }
    }
}

impl FromOptions for NAdam {
    const NAME: &'static str = "nadam";

    fn from_options(o: &OptionReader<'_>) -> Result<NAdam, OptionsError> {
        Ok(NAdam::new(read_config!(o, NAdamConfig { lr, betas, eps, weight_decay, momentum_decay })))
    }
}

/// NAdam as `torch.optim.NAdam` computes it, with a warming momentum schedule
/// `mu_t = beta1 (1 - 0.5 * 0.96^(t psi))`:
///
/// ```text
/// g_t     <- g_t + lambda theta_{t-1}        (or theta <- theta (1 - lr lambda) if decoupled)
/// m_t     <- beta1 m_{t-1} + (1 - beta1) g_t
/// v_t     <- beta2 v_{t-1} + (1 - beta2) g_t^2
/// P_t     <- P_{t-1} mu_t                    (the product of the mu's, P_0 = 1)
/// d_t     <- sqrt(v_t / (1 - beta2^t)) + epsilon
/// theta_t <- theta_{t-1} - lr (1 - mu_t) / (1 - P_t) g_t / d_t
///                        - lr mu_{t+1} / (1 - P_t mu_{t+1}) m_t / d_t
/// ```
///
/// Dozat's paper uses a fixed beta1 in the momentum terms; the `mu_t` schedule (from Sutskever
/// et al. and Dozat's code) is PyTorch's default and adamant's.
#[derive(Clone, Debug)]
pub struct NAdam {
    config: NAdamConfig,
    core: Core,
}

impl NAdam {
    /// A NAdam optimizer.
    pub fn new(config: NAdamConfig) -> NAdam {
        let core =
            Core::new("nadam", &["exp_avg", "exp_avg_sq"], &["mu_product"], config.lr, config.weight_decay);
        NAdam { config, core }
    }
}

impl Optimizer for NAdam {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        let (beta1, beta2) = c.betas;
        self.core.for_each(
            params,
            grads,
            |p| ParamState { scalars: vec![1.0], ..ParamState::zeros(p.shape(), 2) },
            |theta, grad, state, h| {
                let t = state.step as f64;
                let (b1, psi) = (beta1 as f64, c.momentum_decay as f64);
                let bc2 = bias_correction(beta2, t) as f32;
                let mu = b1 * (1.0 - 0.5 * 0.96f64.powf(t * psi));
                let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * psi));
                // PyTorch keeps the product as a float32 tensor: round like it does.
                let mu_product = (state.scalars[0] as f32 * mu as f32) as f64;
                state.scalars[0] = mu_product;
                let mu_product_next = mu_product * mu_next;
                let lr = h.lr as f64;
                let grad_coef = (-lr * (1.0 - mu) / (1.0 - mu_product)) as f32;
                let avg_coef = ((-lr * mu_next) / (1.0 - mu_product_next)) as f32;
                let decay = Decay::new(h, c.decoupled_weight_decay);
                let moments = Moments::new(beta1, beta2);
                fused_update(theta, grad, &mut state.buffers, decay, moments, move |p, g, m, v| {
                    let denom = (v / bc2).sqrt() + c.eps;
                    let p = p + grad_coef * (g / denom);
                    p + avg_coef * (m / denom)
                });
            },
        );
    }

    optimizer_common!();

    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        self.core.moments(params, (0, 1), self.config.betas, self.config.eps, true)
    }
}
