//! AdaDelta (Zeiler 2012).

use adamant_autodiff::{Gradients, Param};

use crate::core::{Core, ParamState};
use crate::moments::ema_sq;
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Adadelta`]; `Default` gives `torch.optim.Adadelta`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdadeltaConfig {
    /// Coefficient scaling the delta (default `1.0`, Zeiler's original method).
    pub lr: f32,
    /// Decay rate rho of both running averages (default `0.9`).
    pub rho: f32,
    /// epsilon inside both square roots (default `1e-6`).
    pub eps: f32,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f32,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig { lr: 1.0, rho: 0.9, eps: 1e-6, weight_decay: 0.0 }
    }
}

impl FromOptions for Adadelta {
    const NAME: &'static str = "adadelta";

    fn from_options(o: &OptionReader<'_>) -> Result<Adadelta, OptionsError> {
        Ok(Adadelta::new(read_config!(o, AdadeltaConfig { lr, rho, eps, weight_decay })))
    }
}

/// AdaDelta as `torch.optim.Adadelta` computes it:
///
/// ```text
/// g_t     <- g_t + lambda theta_{t-1}                    (if weight_decay != 0)
/// v_t     <- rho v_{t-1} + (1 - rho) g_t^2
/// d_t     <- sqrt(u_{t-1} + epsilon) / sqrt(v_t + epsilon) g_t
/// u_t     <- rho u_{t-1} + (1 - rho) d_t^2
/// theta_t <- theta_{t-1} - lr d_t
/// ```
#[derive(Clone, Debug)]
pub struct Adadelta {
    config: AdadeltaConfig,
    core: Core,
}

impl Adadelta {
    /// An AdaDelta optimizer.
    pub fn new(config: AdadeltaConfig) -> Adadelta {
        Adadelta {
            core: Core::new("adadelta", &["square_avg", "acc_delta"], &[], config.lr, config.weight_decay),
            config,
        }
    }
}

impl Optimizer for Adadelta {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 2),
            |theta, grad, state, h| {
                let [v, u] = state.buffers.as_mut_slice() else { unreachable!("two buffers") };
                let (v, u) = (v.data_mut(), u.data_mut());
                for i in 0..theta.len() {
                    let g = if h.weight_decay != 0.0 { grad[i] + h.weight_decay * theta[i] } else { grad[i] };
                    v[i] = ema_sq(v[i], g, c.rho);
                    let std = (v[i] + c.eps).sqrt();
                    let delta = (u[i] + c.eps).sqrt() / std * g;
                    u[i] = ema_sq(u[i], delta, c.rho);
                    theta[i] += -h.lr * delta;
                }
            },
        );
    }

    optimizer_common!();
}
