//! AdaBelief (Zhuang et al. 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
//! Observed Gradients"): Adam with the variance of the gradient around its prediction in the
//! denominator.

use adamant_autodiff::{Gradients, Param};

use crate::inspect::ParamMoments;
use adamant_tensor::kernels::parallel::should_parallelize;
use rayon::prelude::*;

use crate::core::{Core, ParamState};
use crate::moments::{bias_correction, ema_sq, Decay, UPDATE_CHUNK};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`AdaBelief`]; `Default` gives `adabelief-pytorch`'s defaults (lr `1e-3`,
/// betas `(0.9, 0.999)`, eps `1e-16`, decoupled weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaBeliefConfig {
    /// Learning rate (default `1e-3`).
    pub lr: f32,
    /// (beta1, beta2) of the gradient's mean and of its variance around the mean (default
    /// `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// epsilon, added to the variance state every step and to the denominator (default
    /// `1e-16`).
    pub eps: f32,
    /// Weight decay lambda (default 0), decoupled unless `decoupled_weight_decay` is off.
    pub weight_decay: f32,
    /// Decay AdamW-style, `theta <- theta (1 - lr lambda)` (default true, the package's
    /// `weight_decouple`); off, `lambda theta` is added to the gradient.
    pub decoupled_weight_decay: bool,
}

impl Default for AdaBeliefConfig {
    fn default() -> Self {
        AdaBeliefConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-16,
            weight_decay: 0.0,
            decoupled_weight_decay: true,
        }
    }
}

impl FromOptions for AdaBelief {
    const NAME: &'static str = "adabelief";

    fn from_options(o: &OptionReader<'_>) -> Result<AdaBelief, OptionsError> {
        let config = read_config!(o, AdaBeliefConfig { lr, betas, eps, weight_decay });
        let decoupled_weight_decay = !o.switch("no_decoupled_weight_decay");
        Ok(AdaBelief::new(AdaBeliefConfig { decoupled_weight_decay, ..config }))
    }
}

/// AdaBelief exactly as `adabelief-pytorch` 0.2.1 computes it with `rectify=False`,
/// `amsgrad=False`, `fixed_decay=False`. With gradient `g_t` of parameter `theta` at step t:
///
/// ```text
/// theta   <- theta_{t-1} (1 - lr lambda)   (decoupled; or g_t <- g_t + lambda theta_{t-1})
/// m_t     <- beta1 m_{t-1} + (1 - beta1) g_t
/// s_t     <- beta2 s_{t-1} + (1 - beta2) (g_t - m_t)^2 + epsilon
/// theta_t <- theta - lr / (1 - beta1^t) m_t / (sqrt(s_t) / sqrt(1 - beta2^t) + epsilon)
/// ```
///
/// Where Adam divides by the root of the gradient's second moment, AdaBelief divides by the
/// root of its variance around the prediction `m_t` (the new one): a gradient close to the
/// expected one ("believed") takes a large step, a surprising one a small step. As in the
/// package, epsilon is added to the state `s_t` itself each step (Algorithm 2 of the paper)
/// as well as to the denominator; the default `1e-16` is below f32's resolution next to 1 but
/// not next to a variance near 0.
#[derive(Clone, Debug)]
pub struct AdaBelief {
    config: AdaBeliefConfig,
    core: Core,
}

impl AdaBelief {
    /// An AdaBelief optimizer.
    pub fn new(config: AdaBeliefConfig) -> AdaBelief {
        AdaBelief {
            core: Core::new("adabelief", &["exp_avg", "exp_avg_var"], &[], config.lr, config.weight_decay),
            config,
        }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> AdaBeliefConfig {
        self.config
    }
}

impl Optimizer for AdaBelief {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        let (beta1, beta2) = c.betas;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 2),
            |theta, grad, state, h| {
                // Scalar coefficients in f64, as the package computes them in Python floats.
                let t = state.step as f64;
                let bc1 = bias_correction(beta1, t);
                let bc2 = bias_correction(beta2, t);
                let coeffs = BeliefStep {
                    decay: Decay::new(h, c.decoupled_weight_decay),
                    beta1,
                    beta2,
                    eps: c.eps,
                    step_size: (h.lr as f64 / bc1) as f32,
                    bc2_sqrt: bc2.sqrt() as f32,
                };
                let [m, s] = &mut state.buffers[..] else { unreachable!("adabelief keeps two buffers") };
                adabelief_update(theta, grad, m.data_mut(), s.data_mut(), coeffs);
            },
        );
    }

    optimizer_common!();

    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        self.core.moments(params, (0, 1), self.config.betas, self.config.eps, true)
    }
}

/// The per-step scalars of one AdaBelief update.
#[derive(Clone, Copy, Debug)]
struct BeliefStep {
    decay: Decay,
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    bc2_sqrt: f32,
}

/// One fused AdaBelief update of a parameter tensor, its mean `m` and its variance `s`: one
/// pass over memory, split into [`UPDATE_CHUNK`] pieces over rayon for large tensors
/// (elementwise, so the split changes no bit).
fn adabelief_update(theta: &mut [f32], grad: &[f32], m: &mut [f32], s: &mut [f32], c: BeliefStep) {
    if !should_parallelize(theta.len()) {
        return c.run(theta, grad, m, s);
    }
    theta
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(grad.par_chunks(UPDATE_CHUNK))
        .zip(m.par_chunks_mut(UPDATE_CHUNK))
        .zip(s.par_chunks_mut(UPDATE_CHUNK))
        .for_each(|(((theta, grad), m), s)| c.run(theta, grad, m, s));
}

impl BeliefStep {
    /// The update of one piece, in a loop made for the way weight decay enters (as
    /// `fused_update` does: the compiler does not reliably hoist the two tests itself).
    fn run(&self, theta: &mut [f32], grad: &[f32], m: &mut [f32], s: &mut [f32]) {
        match (self.decay.factor != 1.0, self.decay.l2 != 0.0) {
            (false, false) => self.run_as::<false, false>(theta, grad, m, s),
            (true, false) => self.run_as::<true, false>(theta, grad, m, s),
            (false, true) => self.run_as::<false, true>(theta, grad, m, s),
            (true, true) => self.run_as::<true, true>(theta, grad, m, s),
        }
    }

    /// [`BeliefStep::run`] for one way of decaying, in the package's operation order:
    /// `exp_avg.mul_(beta1).add_(g, 1 - beta1)`, `exp_avg_var.mul_(beta2).addcmul_(r, r,
    /// 1 - beta2).add_(eps)`, then `addcdiv_(exp_avg, denom, -step_size)`.
    #[inline(always)]
    fn run_as<const SCALE: bool, const L2: bool>(
        &self,
        theta: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        s: &mut [f32],
    ) {
        let BeliefStep { decay, beta1, beta2, eps, step_size, bc2_sqrt } = *self;
        let w1 = 1.0 - beta1;
        for (((t, &g), m), s) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(s.iter_mut()) {
            let (p, g) = decay.apply::<SCALE, L2>(*t, g);
            *m = *m * beta1 + w1 * g;
            *s = ema_sq(*s, g - *m, beta2) + eps;
            let denom = s.sqrt() / bc2_sqrt + eps;
            *t = p + -step_size * (*m / denom);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::testing::{assert_par_eq_serial, bits, randn};

    /// The split over threads must not change a single bit of any variant (plain, L2,
    /// decoupled decay), including the ragged last piece.
    #[test]
    fn parallel_update_equals_serial_bit_for_bit() {
        let n = 3 * UPDATE_CHUNK + 123;
        for decay in [Decay { factor: 1.0, l2: 0.0 }, Decay { factor: 1.0, l2: 1e-2 }, Decay { factor: 0.99, l2: 0.0 }]
        {
            let c = BeliefStep { decay, beta1: 0.9, beta2: 0.999, eps: 1e-16, step_size: 1e-2, bc2_sqrt: 0.03 };
            let out = assert_par_eq_serial(|| {
                let (mut theta, mut m) = (randn(n, 1), randn(n, 3));
                let mut s: Vec<f32> = randn(n, 4).iter().map(|x| x * x).collect();
                adabelief_update(&mut theta, &randn(n, 2), &mut m, &mut s, c);
                (bits(&theta), bits(&m), bits(&s))
            });
            assert_ne!(out.0, bits(&randn(n, 1)), "the update moved theta");
        }
    }
}
