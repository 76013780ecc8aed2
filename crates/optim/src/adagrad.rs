//! AdaGrad (Duchi et al. 2011).

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::Tensor;

use crate::core::{Core, ParamState};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Adagrad`]; `Default` gives `torch.optim.Adagrad`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate (default `1e-2`).
    pub lr: f32,
    /// Learning-rate decay eta (default 0).
    pub lr_decay: f32,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f32,
    /// Starting value of the sum of squares (default 0).
    pub initial_accumulator_value: f32,
    /// Denominator epsilon (default `1e-10`).
    pub eps: f32,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

impl FromOptions for Adagrad {
    const NAME: &'static str = "adagrad";

    fn from_options(o: &OptionReader<'_>) -> Result<Adagrad, OptionsError> {
        let config =
            read_config!(o, AdagradConfig { lr, lr_decay, weight_decay, initial_accumulator_value, eps });
        Ok(Adagrad::new(config))
    }
}

/// AdaGrad as `torch.optim.Adagrad` computes it:
///
/// ```text
/// g_t     <- g_t + lambda theta_{t-1}           (if weight_decay != 0)
/// lr_t    <- lr / (1 + (t - 1) eta)
/// s_t     <- s_{t-1} + g_t^2                     (s_0 = initial_accumulator_value)
/// theta_t <- theta_{t-1} - lr_t g_t / (sqrt(s_t) + epsilon)
/// ```
///
/// The Adam paper notes that Adam with beta1 = 0, beta2 -> 1 and an annealed step size
/// recovers AdaGrad's update.
#[derive(Clone, Debug)]
pub struct Adagrad {
    config: AdagradConfig,
    core: Core,
}

impl Adagrad {
    /// An AdaGrad optimizer.
    pub fn new(config: AdagradConfig) -> Adagrad {
        Adagrad { core: Core::new("adagrad", &["sum"], &[], config.lr, config.weight_decay), config }
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        self.core.for_each(
            params,
            grads,
            |p| ParamState {
                step: 0,
                buffers: vec![Tensor::full(p.shape(), c.initial_accumulator_value)],
                scalars: vec![],
            },
            |theta, grad, state, h| {
                let clr = (h.lr as f64 / (1.0 + (state.step as f64 - 1.0) * c.lr_decay as f64)) as f32;
                let sum = state.buffers[0].data_mut();
                for i in 0..theta.len() {
                    let g = if h.weight_decay != 0.0 { grad[i] + h.weight_decay * theta[i] } else { grad[i] };
                    sum[i] += g * g;
                    theta[i] += -clr * (g / (sum[i].sqrt() + c.eps));
                }
            },
        );
    }

    optimizer_common!();
}
