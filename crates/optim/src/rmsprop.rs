//! RMSProp (Tieleman & Hinton 2012), plain, centered and with momentum.

use adamant_autodiff::{Gradients, Param};

use crate::core::{Core, ParamState};
use crate::moments::{ema_sq, lerp};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`RmsProp`]; `Default` gives `torch.optim.RMSprop`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default `1e-2`).
    pub lr: f32,
    /// Smoothing constant alpha of the squared-gradient average (default `0.99`).
    pub alpha: f32,
    /// Denominator epsilon (default `1e-8`).
    pub eps: f32,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f32,
    /// Momentum factor (default 0).
    pub momentum: f32,
    /// Normalise by the estimated variance instead of the raw second moment (default false).
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig { lr: 1e-2, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }
}

impl FromOptions for RmsProp {
    const NAME: &'static str = "rmsprop";

    fn from_options(o: &OptionReader<'_>) -> Result<RmsProp, OptionsError> {
        Ok(RmsProp::new(read_config!(o, RmsPropConfig { lr, alpha, eps, weight_decay, momentum, centered })))
    }
}

/// RMSProp as `torch.optim.RMSprop` computes it:
///
/// ```text
/// g_t     <- g_t + lambda theta_{t-1}                   (if weight_decay != 0)
/// v_t     <- alpha v_{t-1} + (1 - alpha) g_t^2
/// a_t     <- alpha a_{t-1} + (1 - alpha) g_t;  d_t <- sqrt(v_t - a_t^2) + epsilon   (centered)
///                                    otherwise d_t <- sqrt(v_t) + epsilon
/// b_t     <- mu b_{t-1} + g_t / d_t;  theta_t <- theta_{t-1} - lr b_t   (momentum mu > 0)
///                              otherwise theta_t <- theta_{t-1} - lr g_t / d_t
/// ```
///
/// epsilon is added outside the square root, as in PyTorch (TensorFlow adds it inside).
#[derive(Clone, Debug)]
pub struct RmsProp {
    config: RmsPropConfig,
    core: Core,
}

impl RmsProp {
    /// An RMSProp optimizer.
    pub fn new(config: RmsPropConfig) -> RmsProp {
        let buffers: &'static [&'static str] = match (config.momentum > 0.0, config.centered) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "momentum_buffer"],
            (false, true) => &["square_avg", "grad_avg"],
            (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
        };
        RmsProp { core: Core::new("rmsprop", buffers, &[], config.lr, config.weight_decay), config }
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        let n_buffers = self.core.buffer_names.len();
        let with_momentum = c.momentum > 0.0;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), n_buffers),
            |theta, grad, state, h| {
                let (square_avg, rest) = state.buffers.split_first_mut().expect("square_avg");
                let (momentum_buf, rest) = if with_momentum {
                    rest.split_first_mut().map(|(b, r)| (Some(b), r)).expect("buffer")
                } else {
                    (None, rest)
                };
                let grad_avg = rest.first_mut();
                let sq = square_avg.data_mut();
                let mut buf = momentum_buf.map(|b| b.data_mut());
                let mut gavg = grad_avg.map(|b| b.data_mut());
                for i in 0..theta.len() {
                    let g = if h.weight_decay != 0.0 { grad[i] + h.weight_decay * theta[i] } else { grad[i] };
                    sq[i] = ema_sq(sq[i], g, c.alpha);
                    let avg = match gavg.as_deref_mut() {
                        Some(ga) => {
                            ga[i] = lerp(ga[i], g, 1.0 - c.alpha);
                            (sq[i] - ga[i] * ga[i]).sqrt()
                        }
                        None => sq[i].sqrt(),
                    } + c.eps;
                    match buf.as_deref_mut() {
                        Some(b) => {
                            b[i] = b[i] * c.momentum + g / avg;
                            theta[i] += -h.lr * b[i];
                        }
                        None => theta[i] += -h.lr * (g / avg),
                    }
                }
            },
        );
    }

    optimizer_common!();
}
