//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
//! interpolated momentum.

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::kernels::parallel::should_parallelize;
use rayon::prelude::*;

use crate::core::{Core, ParamState};
use crate::moments::UPDATE_CHUNK;
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Lion`]; `Default` gives `lion-pytorch`'s defaults (lr `1e-4`, betas
/// `(0.9, 0.99)`, no weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LionConfig {
    /// Learning rate: how far every element moves per step (default `1e-4`).
    pub lr: f32,
    /// (beta1, beta2): the interpolation of the update's sign and the momentum's decay rate
    /// (default `(0.9, 0.99)`).
    pub betas: (f32, f32),
    /// Decoupled weight decay lambda (default 0).
    pub weight_decay: f32,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig { lr: 1e-4, betas: (0.9, 0.99), weight_decay: 0.0 }
    }
}

impl FromOptions for Lion {
    const NAME: &'static str = "lion";

    fn from_options(o: &OptionReader<'_>) -> Result<Lion, OptionsError> {
        let config = read_config!(o, LionConfig { lr, betas, weight_decay });
        // lion-pytorch asserts `lr > 0`: a zero learning rate would silently train nothing.
        if config.lr <= 0.0 {
            return Err(o.invalid("lr", format!("must be > 0 for lion, got {}", config.lr)));
        }
        Ok(Lion::new(config))
    }
}

/// Lion as `lion-pytorch` 0.2.5 computes it (the paper's Program 1). With gradient `g_t` of
/// parameter `theta` at step t:
///
/// ```text
/// theta   <- theta_{t-1} (1 - lr lambda)                (decoupled weight decay)
/// c_t     <- sign(beta1 m_{t-1} + (1 - beta1) g_t)      (sign(0) = 0)
/// theta_t <- theta - lr c_t
/// m_t     <- beta2 m_{t-1} + (1 - beta2) g_t
/// ```
///
/// Two interpolations of the same momentum: the update's direction mixes in more of the new
/// gradient (beta1) than the momentum itself keeps (beta2). Only the sign is used, so every
/// element moves by exactly `lr` (unless its interpolant is 0): the paper advises a learning
/// rate 3-10x smaller than AdamW's and a weight decay 3-10x larger, to keep `lr lambda` the
/// same. One buffer (`exp_avg`) instead of Adam's two.
#[derive(Clone, Debug)]
pub struct Lion {
    config: LionConfig,
    core: Core,
}

impl Lion {
    /// A Lion optimizer.
    pub fn new(config: LionConfig) -> Lion {
        Lion { core: Core::new("lion", &["exp_avg"], &[], config.lr, config.weight_decay), config }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> LionConfig {
        self.config
    }
}

impl Optimizer for Lion {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let (beta1, beta2) = self.config.betas;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 1),
            |theta, grad, state, h| {
                // Lion's decay is always decoupled; the factor is 1 without decay, an exact
                // multiplication, as lion-pytorch multiplies by `1 - lr * 0` too.
                let (factor, _) = h.decay_terms(true);
                let coeffs = LionStep { lr: h.lr, factor, beta1, beta2 };
                lion_update(theta, grad, state.buffers[0].data_mut(), coeffs);
            },
        );
    }

    optimizer_common!();
}

/// The per-step scalars of one Lion update.
#[derive(Clone, Copy, Debug)]
struct LionStep {
    lr: f32,
    /// `1 - lr lambda`.
    factor: f32,
    beta1: f32,
    beta2: f32,
}

/// torch's `sgn` for f32: -1, 0 or 1, and NaN for NaN. (`f32::signum` gives 1 for +0, which
/// would move an element whose gradient and momentum are both zero.)
#[inline]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// One Lion update of a parameter tensor and its momentum `m`, in one pass over memory, split
/// into [`UPDATE_CHUNK`] pieces over rayon for large tensors (elementwise, so the split
/// changes no bit).
fn lion_update(theta: &mut [f32], grad: &[f32], m: &mut [f32], c: LionStep) {
    if !should_parallelize(theta.len()) {
        return lion_piece(theta, grad, m, c);
    }
    theta
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(grad.par_chunks(UPDATE_CHUNK))
        .zip(m.par_chunks_mut(UPDATE_CHUNK))
        .for_each(|((theta, grad), m)| lion_piece(theta, grad, m, c));
}

/// [`lion_update`] on one piece, in lion-pytorch's operation order (multiply and add, not
/// lerp: `exp_avg.clone().mul_(beta1).add(grad, alpha=1 - beta1).sgn_()`).
fn lion_piece(theta: &mut [f32], grad: &[f32], m: &mut [f32], c: LionStep) {
    let LionStep { lr, factor, beta1, beta2 } = c;
    let (w1, w2) = (1.0 - beta1, 1.0 - beta2);
    for ((t, &g), m) in theta.iter_mut().zip(grad).zip(m.iter_mut()) {
        let p = *t * factor;
        let direction = sign(*m * beta1 + w1 * g);
        *t = p + -lr * direction;
        *m = *m * beta2 + w2 * g;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::Tensor;
    use adamant_autodiff::{Mode, Tape};
    use adamant_tensor::testing::{assert_par_eq_serial, bits, randn};

    /// The split over threads must not change a single bit, with and without decay,
    /// including the ragged last piece.
    #[test]
    fn parallel_update_equals_serial_bit_for_bit() {
        let n = 3 * UPDATE_CHUNK + 123;
        for factor in [1.0, 0.99] {
            let c = LionStep { lr: 1e-3, factor, beta1: 0.9, beta2: 0.99 };
            let out = assert_par_eq_serial(|| {
                let (mut theta, mut m) = (randn(n, 1), randn(n, 3));
                lion_update(&mut theta, &randn(n, 2), &mut m, c);
                (bits(&theta), bits(&m))
            });
            assert_ne!(out.0, bits(&randn(n, 1)), "the update moved theta");
        }
    }

    /// Where the interpolant is exactly zero the element stays put (torch's `sgn(0) = 0`),
    /// while its neighbours move by exactly `lr`.
    #[test]
    fn a_zero_interpolant_does_not_move_the_element() {
        let mut w = Param::new("w", Tensor::from_vec(vec![1.0, 1.0, 1.0], &[3]));
        let mut lion = Lion::new(LionConfig { lr: 0.25, ..Default::default() });
        let tape = Tape::new(Mode::Train, 0);
        // d/dw of (0 w0 + 2 w1 - 3 w2): gradients 0, 2, -3.
        let coefficients = tape.constant(Tensor::from_vec(vec![0.0, 2.0, -3.0], &[3]));
        let grads = (tape.param(&w) * coefficients).sum().backward();
        drop(tape);
        lion.step(&mut [&mut w], &grads);
        assert_eq!(w.value().data(), &[1.0, 0.75, 1.25]);
        let m = &lion.state_dict().params["w"].buffers["exp_avg"];
        assert_eq!(m.data()[0], 0.0);
        assert!((m.data()[1] - 0.02).abs() < 1e-7 && (m.data()[2] + 0.03).abs() < 1e-7, "{m:?}");
    }
}
