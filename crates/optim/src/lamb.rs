//! LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
//! minutes", Algorithm 2): Adam's direction, scaled per parameter tensor by a trust ratio.

use adamant_autodiff::{Gradients, Param};

use crate::inspect::ParamMoments;
use adamant_tensor::kernels::parallel::should_parallelize;
use rayon::prelude::*;

use crate::core::{Core, ParamState};
use crate::moments::{bias_correction, ema_sq, UPDATE_CHUNK};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Lamb`]; `Default` gives the paper's and `torch_optimizer.Lamb`'s defaults
/// (lr `1e-3`, betas `(0.9, 0.999)`, eps `1e-6`, no weight decay, weight norm capped at 10),
/// with bias correction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LambConfig {
    /// Learning rate (default `1e-3`).
    pub lr: f32,
    /// (beta1, beta2) of Adam's moments (default `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// epsilon, added to the denominator (default `1e-6`).
    pub eps: f32,
    /// lambda of the `lambda theta` term added to the direction, inside the trust ratio
    /// (default 0).
    pub weight_decay: f32,
    /// Correct the moments' initialisation bias (default true). Off, the update uses `m` and
    /// `v` directly: `torch_optimizer.Lamb`'s default (`debias=False`).
    pub bias_correction: bool,
    /// The cap on the weight norm in the trust ratio, the paper's `phi(z) = min(z, 10)`
    /// (default 10, torch-optimizer's `clamp_value`). Must not be negative.
    pub clamp_value: f32,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-6,
            weight_decay: 0.0,
            bias_correction: true,
            clamp_value: 10.0,
        }
    }
}

impl FromOptions for Lamb {
    const NAME: &'static str = "lamb";

    fn from_options(o: &OptionReader<'_>) -> Result<Lamb, OptionsError> {
        let config = read_config!(o, LambConfig { lr, betas, eps, weight_decay });
        let bias_correction = !o.switch("no_bias_correction");
        // torch_optimizer.Lamb refuses `lr <= 0`.
        if config.lr <= 0.0 {
            return Err(o.invalid("lr", format!("must be > 0 for lamb, got {}", config.lr)));
        }
        Ok(Lamb::new(LambConfig { bias_correction, ..config }))
    }
}

/// LAMB, the paper's Algorithm 2 with Adam's moments. With gradient `g_t` of a parameter
/// tensor `theta` at step t:
///
/// ```text
/// m_t     <- beta1 m_{t-1} + (1 - beta1) g_t
/// v_t     <- beta2 v_{t-1} + (1 - beta2) g_t^2
/// m_hat_t <- m_t / (1 - beta1^t),  v_hat_t <- v_t / (1 - beta2^t)   (m_t, v_t if uncorrected)
/// r_t     <- m_hat_t / (sqrt(v_hat_t) + epsilon) + lambda theta_{t-1}
/// trust_t <- min(||theta_{t-1}||, 10) / ||r_t||        (1 if either norm is 0)
/// theta_t <- theta_{t-1} - lr trust_t r_t
/// ```
///
/// The norms are over the whole parameter tensor (a layer's weight, its bias): each tensor
/// moves by `lr min(||theta||, 10)` per step whatever the scale of its gradient, which is what
/// lets LAMB train with very large batches. The norms are computed in f64 over fixed pieces
/// summed in order, so they do not depend on the number of threads. Without weight decay the
/// bias correction multiplies `r_t` by one number per tensor, `sqrt(1 - beta2^t) / (1 - beta1^t)`,
/// which the trust ratio divides out again: only epsilon's share of the denominator changes.
///
/// Without bias correction this is exactly `torch_optimizer.Lamb` (0.3.0, `debias=False`, its
/// default, which follows the paper's v3). Its `debias=True` is not the corrected formula
/// above: it computes the trust ratio from the uncorrected direction and multiplies the step
/// by `sqrt(1 - beta2^t) / (1 - beta1^t)` after it; adamant follows the paper instead.
#[derive(Clone, Debug)]
pub struct Lamb {
    config: LambConfig,
    core: Core,
}

impl Lamb {
    /// A LAMB optimizer.
    ///
    /// # Panics
    /// If `clamp_value` is negative (torch-optimizer refuses it too).
    pub fn new(config: LambConfig) -> Lamb {
        assert!(config.clamp_value >= 0.0, "Lamb: clamp_value must be >= 0, got {}", config.clamp_value);
        Lamb {
            core: Core::new("lamb", &["exp_avg", "exp_avg_sq"], &[], config.lr, config.weight_decay),
            config,
        }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> LambConfig {
        self.config
    }
}

impl Optimizer for Lamb {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        let (beta1, beta2) = c.betas;
        self.core.for_each(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 2),
            |theta, grad, state, h| {
                // Without correction the divisions are by exactly 1: the same loop serves both.
                let (bc1, bc2) = if c.bias_correction {
                    let t = state.step as f64;
                    (bias_correction(beta1, t) as f32, bias_correction(beta2, t) as f32)
                } else {
                    (1.0, 1.0)
                };
                let direction = Direction { bc1, bc2, eps: c.eps, weight_decay: h.weight_decay };
                let [m, v] = &mut state.buffers[..] else { unreachable!("lamb keeps two buffers") };
                let (m, v) = (m.data_mut(), v.data_mut());
                let (weight_sq, direction_sq) = update_moments(theta, grad, m, v, beta1, beta2, direction);
                let weight_norm = clamp_norm(weight_sq.sqrt(), c.clamp_value as f64);
                let trust = trust_ratio(weight_norm, direction_sq.sqrt());
                apply_direction(theta, m, v, direction, (h.lr as f64 * trust) as f32);
            },
        );
    }

    optimizer_common!();

    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        self.core.moments(params, (0, 1), self.config.betas, self.config.eps, self.config.bias_correction)
    }
}

/// torch's `norm.clamp(0, cap)` of a norm: `min(norm, cap)`, but NaN stays NaN (`f64::min`
/// would return the cap), so a parameter holding NaN gets a NaN step as in torch-optimizer.
fn clamp_norm(norm: f64, cap: f64) -> f64 {
    if norm > cap {
        cap
    } else {
        norm
    }
}

/// `weight_norm / direction_norm`, or 1 when either is 0 (a zero parameter, e.g. a bias at
/// initialisation, still moves; a zero direction does not divide by zero).
fn trust_ratio(weight_norm: f64, direction_norm: f64) -> f64 {
    if weight_norm == 0.0 || direction_norm == 0.0 {
        1.0
    } else {
        weight_norm / direction_norm
    }
}

/// What turns an element's moments into its direction `r`.
#[derive(Clone, Copy, Debug)]
struct Direction {
    /// `1 - beta1^t`, or 1 without bias correction.
    bc1: f32,
    /// `1 - beta2^t`, or 1 without bias correction.
    bc2: f32,
    eps: f32,
    weight_decay: f32,
}

impl Direction {
    /// `r = m_hat / (sqrt(v_hat) + eps) + lambda theta` of one element; `WD` must be
    /// `weight_decay != 0` (the term is left out without decay, as torch-optimizer does, so an
    /// infinite `theta` does not turn into NaN through `0 theta`).
    #[inline(always)]
    fn of<const WD: bool>(self, theta: f32, m: f32, v: f32) -> f32 {
        let adam = (m / self.bc1) / ((v / self.bc2).sqrt() + self.eps);
        if WD {
            adam + self.weight_decay * theta
        } else {
            adam
        }
    }
}

/// Elements whose squares [`update_moments`] sums side by side: independent partial sums let
/// the loop vectorise (one f64 sum is a chain of dependent additions, with which LAMB's step
/// took 5 times Adam's; now about 2.5 times, for two passes of three divisions an element),
/// and their number and order are fixed, so the result is too.
const LANES: usize = 8;

/// Elements per block of [`MomentsPass::run`]: a multiple of [`LANES`], small enough for its
/// buffer of directions to stay in the first-level cache.
const BLOCK: usize = 256;

/// The first pass: updates the moments (torch-optimizer's `mul_(beta1).add_(g, 1 - beta1)`
/// and `mul_(beta2).addcmul_(g, g, 1 - beta2)`) and returns `(||theta||^2, ||r||^2)`, summed
/// in f64: element `i` of a piece into partial sum `i % LANES`, the partial sums of a piece in
/// order, then the pieces of [`UPDATE_CHUNK`] elements in order, on one thread or many.
fn update_moments(
    theta: &[f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    beta1: f32,
    beta2: f32,
    d: Direction,
) -> (f64, f64) {
    let piece = |theta: &[f32], grad: &[f32], m: &mut [f32], v: &mut [f32]| {
        let moments = MomentsPass { beta1, beta2, d };
        if d.weight_decay != 0.0 {
            moments.run::<true>(theta, grad, m, v)
        } else {
            moments.run::<false>(theta, grad, m, v)
        }
    };
    let partials: Vec<(f64, f64)> = if should_parallelize(theta.len()) {
        theta
            .par_chunks(UPDATE_CHUNK)
            .zip(grad.par_chunks(UPDATE_CHUNK))
            .zip(m.par_chunks_mut(UPDATE_CHUNK))
            .zip(v.par_chunks_mut(UPDATE_CHUNK))
            .map(|(((theta, grad), m), v)| piece(theta, grad, m, v))
            .collect()
    } else {
        theta
            .chunks(UPDATE_CHUNK)
            .zip(grad.chunks(UPDATE_CHUNK))
            .zip(m.chunks_mut(UPDATE_CHUNK))
            .zip(v.chunks_mut(UPDATE_CHUNK))
            .map(|(((theta, grad), m), v)| piece(theta, grad, m, v))
            .collect()
    };
    partials.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y))
}

/// The scalars of [`update_moments`] on one piece.
#[derive(Clone, Copy)]
struct MomentsPass {
    beta1: f32,
    beta2: f32,
    d: Direction,
}

impl MomentsPass {
    /// One piece, with `WD` fixed to `weight_decay != 0`. Each block of [`BLOCK`] elements
    /// runs two loops that vectorise: the moments and the directions into a buffer, then the
    /// squares into the [`LANES`] partial sums.
    #[inline(always)]
    fn run<const WD: bool>(self, theta: &[f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) -> (f64, f64) {
        let (mut weight_sq, mut direction_sq) = ([0.0f64; LANES], [0.0f64; LANES]);
        let whole = theta.len() / BLOCK * BLOCK;
        let (theta_blocks, theta_rest) = theta.split_at(whole);
        let (grad_blocks, grad_rest) = grad.split_at(whole);
        let (m_blocks, m_rest) = m.split_at_mut(whole);
        let (v_blocks, v_rest) = v.split_at_mut(whole);
        let blocks = theta_blocks
            .chunks_exact(BLOCK)
            .zip(grad_blocks.chunks_exact(BLOCK))
            .zip(m_blocks.chunks_exact_mut(BLOCK))
            .zip(v_blocks.chunks_exact_mut(BLOCK));
        let mut r = [0.0f32; BLOCK];
        for (((t, g), m), v) in blocks {
            // As arrays the loops carry no bounds checks, which would keep them from vectorising.
            let (t, g): (&[f32; BLOCK], &[f32; BLOCK]) = (t.try_into().unwrap(), g.try_into().unwrap());
            let (m, v): (&mut [f32; BLOCK], &mut [f32; BLOCK]) = (m.try_into().unwrap(), v.try_into().unwrap());
            for i in 0..BLOCK {
                r[i] = self.element::<WD>(t[i], g[i], &mut m[i], &mut v[i]);
            }
            for (t, r) in t.chunks_exact(LANES).zip(r.chunks_exact(LANES)) {
                for k in 0..LANES {
                    weight_sq[k] += t[k] as f64 * t[k] as f64;
                    direction_sq[k] += r[k] as f64 * r[k] as f64;
                }
            }
        }
        let rest = theta_rest.iter().zip(grad_rest).zip(m_rest.iter_mut()).zip(v_rest.iter_mut());
        for (i, (((&t, &g), m), v)) in rest.enumerate() {
            let r = self.element::<WD>(t, g, m, v) as f64;
            weight_sq[i % LANES] += t as f64 * t as f64;
            direction_sq[i % LANES] += r * r;
        }
        let sum = |lanes: [f64; LANES]| lanes.iter().fold(0.0, |a, x| a + x);
        (sum(weight_sq), sum(direction_sq))
    }

    /// Updates one element's moments and returns its direction `r`.
    #[inline(always)]
    fn element<const WD: bool>(self, t: f32, g: f32, m: &mut f32, v: &mut f32) -> f32 {
        *m = *m * self.beta1 + (1.0 - self.beta1) * g;
        *v = ema_sq(*v, g, self.beta2);
        self.d.of::<WD>(t, *m, *v)
    }
}

/// The second pass: `theta <- theta - step r`, with `step = lr trust`. `r` is recomputed from
/// the same `theta`, `m`, `v` as in the first pass, so it is the same bits, and no buffer of
/// directions is kept.
fn apply_direction(theta: &mut [f32], m: &[f32], v: &[f32], d: Direction, step: f32) {
    let piece = |theta: &mut [f32], m: &[f32], v: &[f32]| {
        let elements = theta.iter_mut().zip(m).zip(v);
        if d.weight_decay != 0.0 {
            elements.for_each(|((t, &m), &v)| *t += -step * d.of::<true>(*t, m, v));
        } else {
            elements.for_each(|((t, &m), &v)| *t += -step * d.of::<false>(*t, m, v));
        }
    };
    if !should_parallelize(theta.len()) {
        return piece(theta, m, v);
    }
    theta
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(m.par_chunks(UPDATE_CHUNK))
        .zip(v.par_chunks(UPDATE_CHUNK))
        .for_each(|((theta, m), v)| piece(theta, m, v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::Tensor;
    use adamant_autodiff::{Mode, Tape};
    use adamant_tensor::testing::{assert_par_eq_serial, bits, randn};

    /// The split over threads must change neither a bit of the update nor of the norms,
    /// with and without weight decay, including the ragged last piece.
    #[test]
    fn parallel_update_equals_serial_bit_for_bit() {
        let n = 3 * UPDATE_CHUNK + 123;
        for weight_decay in [0.0, 1e-2] {
            let d = Direction { bc1: 0.1, bc2: 0.001, eps: 1e-6, weight_decay };
            let out = assert_par_eq_serial(|| {
                let mut theta = randn(n, 1);
                let mut m = randn(n, 3);
                let mut v: Vec<f32> = randn(n, 4).iter().map(|x| x * x).collect();
                let (weight_sq, direction_sq) = update_moments(&theta, &randn(n, 2), &mut m, &mut v, 0.9, 0.999, d);
                let step = (1e-3 * weight_sq.sqrt() / direction_sq.sqrt()) as f32;
                apply_direction(&mut theta, &m, &v, d, step);
                (bits(&theta), bits(&m), bits(&v), weight_sq.to_bits(), direction_sq.to_bits())
            });
            assert_ne!(out.0, bits(&randn(n, 1)), "the update moved theta");
        }
    }

    /// The blocked, laned sums are the plain f64 sums (to rounding), over whole blocks and a
    /// ragged rest, and the moments are the plain formula's bits.
    #[test]
    fn norms_are_the_plain_f64_sums() {
        let n = 5 * BLOCK + 37;
        let (theta, grad) = (randn(n, 1), randn(n, 2));
        let (m0, v0) = (randn(n, 3), randn(n, 4).iter().map(|x| x * x).collect::<Vec<f32>>());
        for weight_decay in [0.0, 0.1] {
            let d = Direction { bc1: 0.19, bc2: 0.002, eps: 1e-6, weight_decay };
            let (mut m, mut v) = (m0.clone(), v0.clone());
            let (weight_sq, direction_sq) = update_moments(&theta, &grad, &mut m, &mut v, 0.9, 0.999, d);
            let (mut plain_weight_sq, mut plain_direction_sq) = (0.0f64, 0.0f64);
            for i in 0..n {
                let mi = m0[i] * 0.9 + (1.0 - 0.9f32) * grad[i];
                let vi = v0[i] * 0.999 + (1.0 - 0.999f32) * (grad[i] * grad[i]);
                assert_eq!((mi.to_bits(), vi.to_bits()), (m[i].to_bits(), v[i].to_bits()), "element {i}");
                let r = (mi / 0.19) / ((vi / 0.002).sqrt() + 1e-6) + weight_decay * theta[i];
                plain_weight_sq += theta[i] as f64 * theta[i] as f64;
                plain_direction_sq += r as f64 * r as f64;
            }
            assert!((weight_sq / plain_weight_sq - 1.0).abs() < 1e-12, "{weight_sq} vs {plain_weight_sq}");
            let relative = (direction_sq / plain_direction_sq - 1.0).abs();
            assert!(relative < 1e-12, "weight decay {weight_decay}: {direction_sq} vs {plain_direction_sq}");
        }
    }

    /// One step of `lamb` from `start` with gradient `grad` (of `sum(grad * w)`).
    fn one_step(config: LambConfig, start: Vec<f32>, grad: Vec<f32>) -> Vec<f32> {
        let n = start.len();
        let mut w = Param::new("w", Tensor::from_vec(start, &[n]));
        let tape = Tape::new(Mode::Train, 0);
        let grads = (tape.param(&w) * tape.constant(Tensor::from_vec(grad, &[n]))).sum().backward();
        drop(tape);
        Lamb::new(config).step(&mut [&mut w], &grads);
        w.value().data().to_vec()
    }

    /// At the first corrected step `r = g / (|g| + eps)`, about `sign(g)`: with ||theta|| = 50
    /// the trust ratio uses the cap 10, so the step is `lr 10 sign(g) / ||sign(g)||`.
    #[test]
    fn the_weight_norm_is_capped() {
        let config = LambConfig { lr: 0.1, ..Default::default() };
        let after = one_step(config, vec![30.0, 40.0], vec![2.0, -0.5]);
        let step = 0.1 * 10.0 / 2f32.sqrt();
        assert!((after[0] - (30.0 - step)).abs() < 1e-4 && (after[1] - (40.0 + step)).abs() < 1e-4, "{after:?}");
        // Below the cap the norm itself: ||theta|| = 5.
        let after = one_step(config, vec![3.0, 4.0], vec![2.0, -0.5]);
        let step = 0.1 * 5.0 / 2f32.sqrt();
        assert!((after[0] - (3.0 - step)).abs() < 1e-5 && (after[1] - (4.0 + step)).abs() < 1e-5, "{after:?}");
    }

    /// A zero parameter takes a trust ratio of 1 (it moves by `lr r`), and a zero gradient
    /// without weight decay leaves the parameter where it is.
    #[test]
    fn zero_norms_give_a_trust_ratio_of_one() {
        let config = LambConfig { lr: 0.1, ..Default::default() };
        let after = one_step(config, vec![0.0, 0.0], vec![2.0, -0.5]);
        let r = |g: f32| g / (g.abs() + 1e-6);
        assert!((after[0] + 0.1 * r(2.0)).abs() < 1e-6 && (after[1] + 0.1 * r(-0.5)).abs() < 1e-6, "{after:?}");
        assert_eq!(one_step(config, vec![3.0, 4.0], vec![0.0, 0.0]), vec![3.0, 4.0]);
        assert_eq!(trust_ratio(0.0, 2.0), 1.0);
        assert_eq!(trust_ratio(2.0, 0.0), 1.0);
        assert_eq!(trust_ratio(2.0, 4.0), 0.5);
        // A NaN norm stays NaN through the cap, as in torch, rather than becoming 10.
        assert_eq!((clamp_norm(50.0, 10.0), clamp_norm(5.0, 10.0)), (10.0, 5.0));
        assert!(trust_ratio(clamp_norm(f64::NAN, 10.0), 2.0).is_nan());
    }
}
