//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::Tensor;

use crate::core::{Core, ParamState};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Sgd`]; `Default` gives `torch.optim.SGD`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (default `1e-3`).
    pub lr: f32,
    /// Momentum factor mu (default 0: plain SGD).
    pub momentum: f32,
    /// Dampening tau of the momentum (default 0).
    pub dampening: f32,
    /// L2 penalty lambda added to the gradient (default 0).
    pub weight_decay: f32,
    /// Nesterov momentum (default false; needs momentum > 0 and dampening 0).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 1e-3, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

impl FromOptions for Sgd {
    const NAME: &'static str = "sgd";

    fn from_options(o: &OptionReader<'_>) -> Result<Sgd, OptionsError> {
        let config = read_config!(o, SgdConfig { lr, momentum, dampening, weight_decay, nesterov });
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(o.invalid("nesterov", "needs momentum > 0 and dampening 0"));
        }
        Ok(Sgd::new(config))
    }
}

/// SGD as `torch.optim.SGD` computes it. With gradient `g` of parameter `theta` at step t:
///
/// ```text
/// g   <- g + lambda theta                              (if weight_decay != 0)
/// b_1 <- g;   b_t <- mu b_{t-1} + (1 - tau) g          (if momentum != 0)
/// g   <- g + mu b_t  (Nesterov)   or   g <- b_t
/// theta <- theta - lr g
/// ```
///
/// The first momentum buffer is the gradient itself (not `(1 - tau) g`), as in PyTorch.
/// Sutskever et al.'s Nesterov formulation, which the Adam paper compares against, is
/// equivalent up to a change of variables.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    core: Core,
}

impl Sgd {
    /// An SGD optimizer.
    ///
    /// # Panics
    /// If Nesterov is asked for without momentum or with dampening (PyTorch refuses too).
    pub fn new(config: SgdConfig) -> Sgd {
        assert!(
            !config.nesterov || (config.momentum > 0.0 && config.dampening == 0.0),
            "Sgd: Nesterov momentum requires a momentum and zero dampening"
        );
        let buffers: &'static [&'static str] =
            if config.momentum != 0.0 { &["momentum_buffer"] } else { &[] };
        Sgd { core: Core::new("sgd", buffers, &[], config.lr, config.weight_decay), config }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> SgdConfig {
        self.config
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let SgdConfig { momentum: mu, dampening, nesterov, .. } = self.config;
        let with_momentum = mu != 0.0;
        self.core.for_each(
            params,
            grads,
            |p| ParamState {
                step: 0,
                buffers: if with_momentum { vec![Tensor::zeros(p.shape())] } else { vec![] },
                scalars: vec![],
            },
            |theta, grad, state, h| {
                let first = state.step == 1;
                let buf = state.buffers.first_mut().map(|b| b.data_mut());
                sgd_update(theta, grad, buf, first, h.lr, h.weight_decay, mu, dampening, nesterov);
            },
        );
    }

    optimizer_common!();
}

/// One fused SGD update of a parameter tensor (see [`Sgd`] for the formula).
#[allow(clippy::too_many_arguments)]
fn sgd_update(
    theta: &mut [f32],
    grad: &[f32],
    buf: Option<&mut [f32]>,
    first: bool,
    lr: f32,
    weight_decay: f32,
    mu: f32,
    dampening: f32,
    nesterov: bool,
) {
    match buf {
        None => {
            for (t, &g) in theta.iter_mut().zip(grad) {
                let g = if weight_decay != 0.0 { g + weight_decay * *t } else { g };
                *t += -lr * g;
            }
        }
        Some(buf) => {
            for ((t, &g), b) in theta.iter_mut().zip(grad).zip(buf.iter_mut()) {
                let g = if weight_decay != 0.0 { g + weight_decay * *t } else { g };
                *b = if first { g } else { *b * mu + (1.0 - dampening) * g };
                let d = if nesterov { g + mu * *b } else { *b };
                *t += -lr * d;
            }
        }
    }
}
