//! What the Adam family shares, in one place: torch's `lerp`, the update of the two moment
//! estimates, how weight decay enters an element's update, and the fused loop that updates a
//! parameter tensor and its moments in one pass, split over rayon for large tensors.
//!
//! Adam, AdamW and AMSGrad (`adam.rs`), NAdam and RAdam run [`fused_update`] with their own
//! last line; AdaMax takes the first moment ([`lerp`]) and keeps its infinity norm; RMSProp
//! and AdaDelta average squares with [`ema_sq`]. Every function here does the arithmetic in
//! the order the optimizers did it before they shared it, so results are the same bits.

use adamant_tensor::kernels::parallel::should_parallelize;
use adamant_tensor::Tensor;
use rayon::prelude::*;

use crate::core::Hyper;

/// `torch.lerp(a, b, w)` for f32, in PyTorch's two-branch form (exact at both ends):
/// `a + w (b - a)` for `w < 0.5`, else `b - (b - a)(1 - w)`. With `w = 1 - beta` it is the
/// moving average `beta a + (1 - beta) b`.
#[inline]
pub(crate) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    lerp_with(a, b, w, 1.0 - w)
}

/// [`lerp`] with the factor of its second branch given: `b - (b - a) complement` where
/// `complement` stands for `1 - w`.
#[inline]
fn lerp_with(a: f32, b: f32, w: f32, complement: f32) -> f32 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * complement
    }
}

/// `1 - beta^t`: the bias correction of a moment with decay rate `beta` after `t` steps, in
/// f64 as PyTorch computes it in Python floats.
#[inline]
pub(crate) fn bias_correction(beta: f32, t: f64) -> f64 {
    1.0 - (beta as f64).powf(t)
}

/// The moving average of squares, `avg beta + (1 - beta) x^2`, as torch's
/// `avg.mul_(beta).addcmul_(x, x, value=1 - beta)` computes it.
#[inline]
pub(crate) fn ema_sq(avg: f32, x: f32, beta: f32) -> f32 {
    avg * beta + (1.0 - beta) * (x * x)
}

/// The decay rates of Adam's two moment estimates, and how the first one is interpolated:
///
/// ```text
/// m_t <- beta1 m_{t-1} + (1 - beta1) g_t      (torch: exp_avg.lerp_(g, 1 - beta1))
/// v_t <- beta2 v_{t-1} + (1 - beta2) g_t^2    (torch: exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2))
/// ```
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moments {
    /// The lerp weight of the first moment, `1 - beta1`.
    w1: f32,
    /// What multiplies `g - m` when `w1 >= 0.5` (see [`Moments::adam`]).
    complement: f32,
    /// The decay rate of the second moment.
    beta2: f32,
}

impl Moments {
    /// The moments exactly as [`lerp`] and [`ema_sq`] compute them (NAdam, RAdam).
    pub fn new(beta1: f32, beta2: f32) -> Moments {
        let w1 = 1.0 - beta1;
        Moments { w1, complement: 1.0 - w1, beta2 }
    }

    /// The moments as Adam has always computed them: when the first moment's lerp takes its
    /// second branch (`1 - beta1 >= 0.5`), it multiplies by `beta1` itself where [`lerp`]
    /// multiplies by `1 - (1 - beta1)`. For `beta1 >= 0.5` the two are the same bits; below
    /// 0.5 the rounding of `1 - beta1` can make them differ in the last bit (for
    /// `beta1 = 0.1`, for example), so Adam keeps its own form.
    pub fn adam(beta1: f32, beta2: f32) -> Moments {
        Moments { w1: 1.0 - beta1, complement: beta1, beta2 }
    }

    /// Updates one element's first moment `m` and second moment `v` with the gradient `g`.
    #[inline]
    pub fn update(&self, m: &mut f32, v: &mut f32, g: f32) {
        *m = lerp_with(*m, g, self.w1, self.complement);
        *v = ema_sq(*v, g, self.beta2);
    }
}

/// How weight decay enters one element's update (see [`Hyper::decay_terms`]): decoupled
/// decay multiplies the parameter by `factor` first, coupled decay adds `l2 theta` to the
/// gradient.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decay {
    /// `1 - lr lambda` for decoupled decay, else 1.
    pub factor: f32,
    /// `lambda` for coupled (L2) decay, else 0.
    pub l2: f32,
}

impl Decay {
    /// The decay terms of `h`, decoupled (AdamW-style) or not.
    pub fn new(h: Hyper, decoupled: bool) -> Decay {
        let (factor, l2) = h.decay_terms(decoupled);
        Decay { factor, l2 }
    }

    /// The decayed parameter and the gradient with its L2 term, for parameter `theta` and
    /// gradient `g`. `SCALE` must be `factor != 1` and `L2` must be `l2 != 0`: the caller
    /// decides once per tensor, and each of the four loops then runs without testing them.
    #[inline(always)]
    pub fn apply<const SCALE: bool, const L2: bool>(self, theta: f32, g: f32) -> (f32, f32) {
        let t = if SCALE { theta * self.factor } else { theta };
        let g = if L2 { g + self.l2 * t } else { g };
        (t, g)
    }
}

/// Elements per piece when an update runs on several threads. The update is elementwise, so
/// the split changes nothing but speed; it is fixed so the work units never depend on threads.
pub(crate) const UPDATE_CHUNK: usize = 1 << 15;

/// One fused step of an Adam-family optimizer over a parameter tensor `theta` with gradient
/// `grad` and moment `buffers` `[m, v]`, or `[m, v, vmax]` for AMSGrad. For each element:
///
/// ```text
/// (p, g) <- decay.apply(theta, g)            (decoupled decay, L2 term)
/// m, v   <- moments.update(m, v, g)
/// vmax   <- max(vmax, v)                     (AMSGrad, if there is a third buffer)
/// theta  <- apply(p, g, m, vmax or v)        (the optimizer's own last line)
/// ```
///
/// One pass over memory (theta, g, m, v read once and written once), split into fixed pieces
/// of [`UPDATE_CHUNK`] elements over rayon for large tensors. The update is memory-bound
/// (7 floats of traffic per element), so the second core mostly buys bandwidth.
///
/// `apply` should be a `move` closure over plain numbers: what it reads through a captured
/// reference is reloaded for every element (the compiler cannot tell it apart from the
/// slices being written), and the loop then no longer vectorises.
///
/// # Panics
/// If there are fewer than two buffers.
pub(crate) fn fused_update<F>(
    theta: &mut [f32],
    grad: &[f32],
    buffers: &mut [Tensor],
    decay: Decay,
    moments: Moments,
    apply: F,
) where
    F: Fn(f32, f32, f32, f32) -> f32 + Sync,
{
    let [m, v, rest @ ..] = buffers else { panic!("fused_update: needs the buffers m and v") };
    let (m, v, vmax) = (m.data_mut(), v.data_mut(), rest.first_mut().map(Tensor::data_mut));
    let step = Step { decay, moments, apply };
    if !should_parallelize(theta.len()) {
        return step.run(Piece { theta, grad, m, v, vmax });
    }
    let pieces = theta
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(grad.par_chunks(UPDATE_CHUNK))
        .zip(m.par_chunks_mut(UPDATE_CHUNK))
        .zip(v.par_chunks_mut(UPDATE_CHUNK));
    match vmax {
        Some(vmax) => pieces
            .zip(vmax.par_chunks_mut(UPDATE_CHUNK))
            .for_each(|((((theta, grad), m), v), vm)| step.run(Piece { theta, grad, m, v, vmax: Some(vm) })),
        None => pieces.for_each(|(((theta, grad), m), v)| step.run(Piece { theta, grad, m, v, vmax: None })),
    }
}

/// What [`fused_update`] does to every element, besides reading and writing it.
struct Step<F> {
    decay: Decay,
    moments: Moments,
    apply: F,
}

/// The slices of one piece of a fused update: the parameter, its gradient and its moments.
struct Piece<'a> {
    theta: &'a mut [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    vmax: Option<&'a mut [f32]>,
}

impl<F: Fn(f32, f32, f32, f32) -> f32> Step<F> {
    /// Runs the update on one piece, serially, in a loop made for the way weight decay
    /// enters: the compiler does not reliably hoist those two tests out of the loop itself
    /// (Adam's step ran 44% more instructions when it did not).
    fn run(&self, piece: Piece<'_>) {
        match (self.decay.factor != 1.0, self.decay.l2 != 0.0) {
            (false, false) => self.run_as::<false, false>(piece),
            (true, false) => self.run_as::<true, false>(piece),
            (false, true) => self.run_as::<false, true>(piece),
            (true, true) => self.run_as::<true, true>(piece),
        }
    }

    /// [`Step::run`] for one way of decaying. The iterators carry no bounds checks, so the
    /// loop vectorises.
    #[inline(always)]
    fn run_as<const SCALE: bool, const L2: bool>(&self, piece: Piece<'_>) {
        let Step { decay, moments, apply } = self;
        let Piece { theta, grad, m, v, vmax } = piece;
        let elems = theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut());
        match vmax {
            Some(vmax) => {
                for ((((theta, &g), m), v), vmax) in elems.zip(vmax.iter_mut()) {
                    let (p, g) = decay.apply::<SCALE, L2>(*theta, g);
                    moments.update(m, v, g);
                    *vmax = vmax.max(*v);
                    *theta = apply(p, g, *m, *vmax);
                }
            }
            None => {
                for (((theta, &g), m), v) in elems {
                    let (p, g) = decay.apply::<SCALE, L2>(*theta, g);
                    moments.update(m, v, g);
                    *theta = apply(p, g, *m, *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::testing::{assert_par_eq_serial, bits, randn};

    fn moments_of(make: fn(f32, f32) -> Moments, beta1: f32) -> (u32, u32) {
        let (mut m, mut v) = (0.3f32, 0.2f32);
        make(beta1, 0.999).update(&mut m, &mut v, -1.7);
        (m.to_bits(), v.to_bits())
    }

    #[test]
    fn adam_and_lerp_moments_are_the_same_bits_for_beta1_from_one_half() {
        let mut b = 0.5f32;
        while b < 1.0 {
            assert_eq!(moments_of(Moments::adam, b), moments_of(Moments::new, b), "beta1 {b}");
            b = f32::from_bits(b.to_bits() + 997);
        }
        // Below one half they may differ in the last bit: 1 - (1 - 0.1) rounds away from 0.1.
        assert_ne!((1.0 - (1.0 - 0.1f32)).to_bits(), 0.1f32.to_bits());
    }

    #[test]
    fn lerp_is_torchs_two_branch_form() {
        assert_eq!(lerp(2.0, 6.0, 0.25), 3.0);
        assert_eq!(lerp(2.0, 6.0, 0.75), 5.0);
        // Exact at both ends.
        assert_eq!(lerp(0.1, 0.7, 0.0), 0.1);
        assert_eq!(lerp(0.1, 0.7, 1.0), 0.7);
    }

    /// The split over threads must not change a single bit, with and without the running
    /// maximum, including the ragged last piece; `apply` reads all four of its arguments.
    #[test]
    fn fused_update_parallel_equals_serial_bit_for_bit() {
        let n = 3 * UPDATE_CHUNK + 123;
        let squares = |s| randn(n, s).iter().map(|x| x * x).collect::<Vec<f32>>();
        for (decay, buffers) in [
            (Decay { factor: 1.0, l2: 0.0 }, 2),
            (Decay { factor: 1.0, l2: 1e-2 }, 3),
            (Decay { factor: 0.99, l2: 0.0 }, 2),
        ] {
            let moments = Moments::new(0.9, 0.999);
            let out = assert_par_eq_serial(|| {
                let mut theta = randn(n, 1);
                let mut state: Vec<Tensor> = [randn(n, 3), squares(4), squares(5)]
                    .into_iter()
                    .take(buffers)
                    .map(|b| Tensor::from_vec(b, &[n]))
                    .collect();
                fused_update(&mut theta, &randn(n, 2), &mut state, decay, moments, |p, g, m, v| {
                    p - 1e-3 * (m + 0.1 * g) / (v.sqrt() + 1e-8)
                });
                let mut out = vec![bits(&theta)];
                out.extend(state.iter().map(|b| bits(b.data())));
                out
            });
            assert_ne!(out[0], bits(&randn(n, 1)), "the update moved theta");
        }
    }
}
