//! RAdam (Liu et al. 2019): Adam with a rectified adaptive learning rate.

use adamant_autodiff::{Gradients, Param};

use crate::inspect::ParamMoments;

use crate::core::{Core, ParamState};
use crate::moments::{bias_correction, fused_update, Decay, Moments};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;
use crate::AdamConfig;

/// Options of [`RAdam`]; `Default` gives `torch.optim.RAdam`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RAdamConfig {
    /// Learning rate (default `1e-3`).
    pub lr: f32,
    /// (beta1, beta2) (default `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// Denominator epsilon (default `1e-8`).
    pub eps: f32,
    /// Weight decay (default 0): an L2 term, or decoupled if `decoupled_weight_decay`.
    pub weight_decay: f32,
    /// Apply weight decay AdamW-style (default false).
    pub decoupled_weight_decay: bool,
}

impl Default for RAdamConfig {
    /// `torch.optim.RAdam`'s defaults, which are Adam's, without decoupled weight decay.
    fn default() -> Self {
        let AdamConfig { lr, betas, eps, weight_decay, .. } = AdamConfig::default();
        RAdamConfig { lr, betas, eps, weight_decay, decoupled_weight_decay: false }
    }
}

impl FromOptions for RAdam {
    const NAME: &'static str = "radam";

    fn from_options(o: &OptionReader<'_>) -> Result<RAdam, OptionsError> {
        Ok(RAdam::new(read_config!(o, RAdamConfig { lr, betas, eps, weight_decay })))
    }
}

/// RAdam as `torch.optim.RAdam` computes it. With `rho_inf = 2 / (1 - beta2) - 1` and
/// `rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)` (the length of the approximated simple
/// moving average):
///
/// ```text
/// m_t, v_t as in Adam;  m_hat_t <- m_t / (1 - beta1^t)
/// if rho_t > 5:  r_t <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
///                theta_t <- theta_{t-1} - lr m_hat_t r_t sqrt(1 - beta2^t) / (sqrt(v_t) + epsilon)
/// else:          theta_t <- theta_{t-1} - lr m_hat_t      (SGD with momentum: warm-up)
/// ```
///
/// While the variance of the adaptive rate is intractable (the first steps; with beta2 = 0.999
/// until t = 6) the update is momentum SGD; then the rectifier `r_t` phases the adaptive step in.
#[derive(Clone, Debug)]
pub struct RAdam {
    config: RAdamConfig,
    core: Core,
}

impl RAdam {
    /// A RAdam optimizer.
    pub fn new(config: RAdamConfig) -> RAdam {
        RAdam {
            core: Core::new("radam", &["exp_avg", "exp_avg_sq"], &[], config.lr, config.weight_decay),
            config,
        }
    }
}

impl Optimizer for RAdam {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        let (beta1, beta2) = c.betas;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 2),
            |theta, grad, state, h| {
                let t = state.step as f64;
                let b2 = beta2 as f64;
                let bc1 = bias_correction(beta1, t) as f32;
                let bc2 = bias_correction(beta2, t);
                let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
                let rectified = rho_t > 5.0;
                let rect = (((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                    .sqrt()) as f32;
                let bc2_sqrt = bc2.sqrt() as f32;
                let decay = Decay::new(h, c.decoupled_weight_decay);
                let moments = Moments::new(beta1, beta2);
                fused_update(theta, grad, &mut state.buffers, decay, moments, move |p, _g, m, v| {
                    let m_hat = m / bc1;
                    let update = if rectified {
                        let adaptive = bc2_sqrt / (v.sqrt() + c.eps);
                        m_hat * h.lr * adaptive * rect
                    } else {
                        m_hat * h.lr
                    };
                    p + -update
                });
            },
        );
    }

    optimizer_common!();

    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        self.core.moments(params, (0, 1), self.config.betas, self.config.eps, true)
    }
}
