//! Gradient clipping, as `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`, over
//! [`Gradients`] between `backward()` and the optimizer step:
//!
//! ```
//! use adamant_autodiff::{Mode, Param, Tape};
//! use adamant_optim::clip::clip_grad_norm;
//! use adamant_tensor::Tensor;
//!
//! let w = Param::new("w", Tensor::from_vec(vec![3.0, 4.0], &[2]));
//! let tape = Tape::new(Mode::Train, 0);
//! let mut grads = (tape.param(&w).square().sum() * 0.5).backward(); // gradient = w
//! let norm = clip_grad_norm(&mut grads, 1.0);
//! assert_eq!(norm, 5.0);
//! assert!(norm.is_finite()); // otherwise: skip this step (the gradients were left alone)
//! let g = grads.get(&w).unwrap().data();
//! assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
//! ```
//!
//! # Accuracy and reproducibility
//!
//! The total norm is accumulated in `f64` over parameters in ascending [`ParamId`] order
//! ([`Gradients`] is a hash map, whose iteration order changes from run to run), so it is
//! the same bits every run and correctly rounded to `f32` up to the `f64` sum's own error.
//! The clipping coefficient is then formed in `f32` exactly as PyTorch forms it, so when the
//! two norms agree (PyTorch accumulates in `f32`, so they can differ by an `f32` rounding on
//! large models) the clipped gradients agree bit for bit. PyTorch squares in `f32`, so its
//! norm overflows to `inf` once an element passes about 1.8e19 and it then zeroes the
//! gradients; adamant's stays exact and clips normally.
//!
//! # Non-finite norms
//!
//! If any gradient element is `inf` or `NaN`, the total norm is `inf` or `NaN`. PyTorch then
//! multiplies every gradient by `max_norm / inf = 0` or by `NaN`: finite gradients become 0
//! or `NaN`, and an `inf` becomes `NaN`. adamant instead **leaves the gradients unchanged
//! and returns the non-finite norm**. Scaling does not make such a step safe either way (an
//! `inf * 0` is still a `NaN`), while the untouched gradients still show which parameter
//! overflowed; the caller's remedy is the same in both libraries: check
//! `norm.is_finite()` and skip the optimizer step, as PyTorch's `GradScaler` does. Because
//! the sum is in `f64`, the norm is non-finite only for a non-finite gradient element or a
//! total beyond `f32::MAX` (3.4e38, returned as `inf`); in every such case, and only then,
//! the gradients are left as they were.

use adamant_autodiff::{Gradients, ParamId};
use adamant_tensor::kernels::scale_in_place;
use adamant_tensor::Tensor;

/// The `f64` sum of squares of `x`, in a fixed order. Four independent lanes (added in lane
/// order, then the tail) keep the loop from waiting on one running sum.
fn sum_squares_f64(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let mut chunks = x.chunks_exact(4);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += (v as f64) * (v as f64);
        }
    }
    let s = lanes.iter().fold(0.0, |a, &l| a + l);
    chunks.remainder().iter().fold(s, |a, &v| a + (v as f64) * (v as f64))
}

/// The gradients in ascending id order, so sums over them are reproducible.
fn sorted(grads: &Gradients) -> Vec<(ParamId, &Tensor)> {
    let mut all: Vec<(ParamId, &Tensor)> = grads.iter().collect();
    all.sort_unstable_by_key(|&(id, _)| id);
    all
}

/// The 2-norm of all gradients taken together, in `f64`.
fn total_norm_f64(grads: &Gradients) -> f64 {
    sorted(grads).iter().fold(0.0, |acc, (_, g)| acc + sum_squares_f64(g.data())).sqrt()
}

/// The 2-norm of all gradients concatenated into one vector: `sqrt(sum of g^2)`, 0 when there
/// are none. Accumulated in `f64` in a fixed order (see the module documentation).
pub fn global_norm(grads: &Gradients) -> f32 {
    total_norm_f64(grads) as f32
}

/// Scales all gradients together so that their total 2-norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_(params, max_norm)` (`norm_type = 2`), and returns the
/// total norm *before* clipping.
///
/// With `total = global_norm(grads)`, `clip_coef = max_norm / (total + 1e-6)`; the gradients
/// are multiplied by `clip_coef` only when it is below 1, so gradients under the limit are
/// untouched bit for bit. If `total` is `inf` or `NaN` the gradients are left unchanged and
/// the non-finite norm is returned, unlike PyTorch (see the module documentation): check
/// `is_finite()` on the result and skip the step.
///
/// # Panics
/// If `max_norm` is negative or `NaN` (a negative limit would flip the gradients' sign).
pub fn clip_grad_norm(grads: &mut Gradients, max_norm: f32) -> f32 {
    assert!(max_norm >= 0.0, "clip_grad_norm: max_norm must be >= 0, got {max_norm}");
    let total = total_norm_f64(grads) as f32;
    if !total.is_finite() {
        return total;
    }
    // PyTorch's coefficient in PyTorch's arithmetic (f32), so that the clipped gradients
    // match its bit for bit whenever the norms agree; 1e-6 keeps an all-zero gradient from
    // dividing by zero.
    let clip_coef = max_norm / (total + 1e-6);
    if clip_coef < 1.0 {
        for (_, g) in grads.iter_mut() {
            scale_in_place(g.data_mut(), clip_coef);
        }
    }
    total
}

/// Clamps every gradient element to `[-clip_value, clip_value]`, as
/// `torch.nn.utils.clip_grad_value_`. Infinities clamp to the bounds; `NaN`s stay `NaN`.
///
/// # Panics
/// If `clip_value` is negative or `NaN`.
pub fn clip_grad_value(grads: &mut Gradients, clip_value: f32) {
    assert!(clip_value >= 0.0, "clip_grad_value: clip_value must be >= 0, got {clip_value}");
    for (_, g) in grads.iter_mut() {
        for x in g.data_mut() {
            *x = x.clamp(-clip_value, clip_value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_autodiff::Param;

    /// Gradients for new parameters with the given values (each a flat tensor).
    fn grads_of(values: &[&[f32]]) -> (Vec<Param>, Gradients) {
        let mut grads = Gradients::new();
        let params: Vec<Param> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = Param::new(format!("p{i}"), Tensor::zeros(&[v.len()]));
                grads.accumulate(p.id(), Tensor::from_slice(v, &[v.len()]));
                p
            })
            .collect();
        (params, grads)
    }

    fn data<'a>(grads: &'a Gradients, p: &Param) -> &'a [f32] {
        grads.get(p).unwrap().data()
    }

    /// The example PyTorch was run on: gradients [3, 4], [[1, -2], [2, 0.5]] and [12], with
    /// total norm sqrt(9 + 16 + 1 + 4 + 4 + 0.25 + 144) = sqrt(178.25).
    const EXAMPLE: [&[f32]; 3] = [&[3.0, 4.0], &[1.0, -2.0, 2.0, 0.5], &[12.0]];

    #[test]
    fn global_norm_by_hand() {
        let (_, g) = grads_of(&EXAMPLE);
        assert_eq!(global_norm(&g), 178.25f64.sqrt() as f32);
        let (_, g) = grads_of(&[&[3.0], &[4.0]]);
        assert_eq!(global_norm(&g), 5.0);
        assert_eq!(global_norm(&Gradients::new()), 0.0);
    }

    #[test]
    fn clip_grad_norm_matches_torch() {
        // torch 2.15.0 (/tmp/torchbench/bin/python): clip_grad_norm_(params, max_norm=5.0) on
        // EXAMPLE returned 13.351030349731445 (f32 bits 0x41559dd2) and left these gradients
        // (f32 values, printed exactly as f64).
        let torch_total = f32::from_bits(0x41559dd2);
        let torch_clipped: [&[f64]; 3] = [
            &[1.1235086917877197, 1.498011589050293],
            &[0.37450289726257324, -0.7490057945251465, 0.7490057945251465, 0.18725144863128662],
            &[4.494034767150879],
        ];
        let (params, mut g) = grads_of(&EXAMPLE);
        let total = clip_grad_norm(&mut g, 5.0);
        assert_eq!(total, torch_total);
        for (p, want) in params.iter().zip(torch_clipped) {
            let got: Vec<f64> = data(&g, p).iter().map(|&x| x as f64).collect();
            assert_eq!(got, want, "bit for bit");
        }
        // By hand: each gradient times 5 / (sqrt(178.25) + 1e-6) (in f32, as PyTorch), and
        // the clipped norm is 5.
        let coef = 5.0 / (178.25f64.sqrt() as f32 + 1e-6);
        assert_eq!(data(&g, &params[2]), &[12.0 * coef]);
        assert!((global_norm(&g) - 5.0).abs() < 1e-5);
    }

    #[test]
    fn under_the_limit_is_a_no_op() {
        let (params, mut g) = grads_of(&EXAMPLE);
        // torch returned the same total with max_norm=100 and left the gradients as they were.
        assert_eq!(clip_grad_norm(&mut g, 100.0), f32::from_bits(0x41559dd2));
        for (p, want) in params.iter().zip(EXAMPLE) {
            assert_eq!(data(&g, p), want);
        }
        // Exactly at the limit the 1e-6 still makes clip_coef = 5 / (5 + 1e-6) < 1, so
        // PyTorch and adamant both scale by 0.9999998.
        let (params, mut g) = grads_of(&[&[3.0, 4.0]]);
        assert_eq!(clip_grad_norm(&mut g, 5.0), 5.0);
        let coef = 5.0 / (5.0 + 1e-6f32);
        assert!(coef < 1.0);
        assert_eq!(data(&g, &params[0]), &[3.0 * coef, 4.0 * coef]);
        // An infinite limit never clips.
        let (params, mut g) = grads_of(&EXAMPLE);
        clip_grad_norm(&mut g, f32::INFINITY);
        assert_eq!(data(&g, &params[1]), EXAMPLE[1]);
        // All-zero gradients stay zero (no division by zero).
        let (params, mut g) = grads_of(&[&[0.0, 0.0]]);
        assert_eq!(clip_grad_norm(&mut g, 1.0), 0.0);
        assert_eq!(data(&g, &params[0]), &[0.0, 0.0]);
    }

    #[test]
    fn non_finite_norm_is_returned_and_gradients_are_left_alone() {
        // torch 2.15.0 on EXAMPLE with an inf in the second gradient returned inf and left
        // [[0, 0], [nan, -0, 0, 0], [0]]; with a NaN it returned nan and made every entry NaN.
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            let with_bad: [&[f32]; 3] = [EXAMPLE[0], &[bad, -2.0, 2.0, 0.5], EXAMPLE[2]];
            let (params, mut g) = grads_of(&with_bad);
            let total = clip_grad_norm(&mut g, 5.0);
            if bad.is_nan() {
                assert!(total.is_nan(), "{total}");
            } else {
                assert_eq!(total, f32::INFINITY);
            }
            for (p, want) in params.iter().zip(with_bad) {
                let got = data(&g, p);
                assert!(got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn huge_finite_gradients_clip_where_torch_overflows() {
        // torch 2.15.0 returns inf for [1e20, 1e20] (its f32 squares overflow) and zeroes the
        // gradient; the true norm 1.414e20 is an ordinary f32 and adamant clips by it.
        let (params, mut g) = grads_of(&[&[1e20, 1e20]]);
        let total = clip_grad_norm(&mut g, 1.0);
        assert_eq!(total, (2.0f64.sqrt() * 1e20f32 as f64) as f32);
        let half_sqrt2 = std::f32::consts::FRAC_1_SQRT_2;
        for &x in data(&g, &params[0]) {
            assert!((x - half_sqrt2).abs() < 1e-6, "{x}");
        }
    }

    #[test]
    fn norm_beyond_f32_range_is_inf_and_leaves_gradients_alone() {
        // Each element is finite, the total sqrt(2) * 3e38 is not an f32: reported as inf and,
        // like every non-finite norm, not used to scale.
        let (params, mut g) = grads_of(&[&[3e38, -3e38]]);
        assert_eq!(global_norm(&g), f32::INFINITY);
        assert_eq!(clip_grad_norm(&mut g, 1.0), f32::INFINITY);
        assert_eq!(data(&g, &params[0]), &[3e38, -3e38]);
    }

    #[test]
    fn norm_is_independent_of_hash_order() {
        // One gradient of 1e8 (square 1e16, where the f64 spacing is 2) and 40 of 1: added
        // after the 1e16 each 1 rounds away, added before it they count, so the f64 total
        // depends on the order. In id order (the 1e8 was made first) it is exactly 1e16.
        let mut values: Vec<&[f32]> = vec![&[1e8]];
        values.extend([&[1.0f32][..]; 40]);
        let (_, g1) = grads_of(&values);
        assert_eq!(total_norm_f64(&g1), 1e8);
        for _ in 0..10 {
            // A fresh map has a fresh random hash state, so another iteration order.
            let mut g2 = Gradients::new();
            for (id, t) in g1.iter() {
                g2.accumulate(id, t.clone());
            }
            assert_eq!(total_norm_f64(&g2).to_bits(), 1e8f64.to_bits());
        }
        // sqrt(1e16 + 40) differs from 1e8 by 2e-7: far below an f32 rounding of the result.
        assert_eq!(global_norm(&g1), 1e8);
    }

    #[test]
    fn clip_grad_value_matches_torch() {
        // torch 2.15.0: clip_grad_value_(params, 2.5) on EXAMPLE left [[2.5, 2.5],
        // [1, -2, 2, 0.5], [2.5]].
        let (params, mut g) = grads_of(&EXAMPLE);
        clip_grad_value(&mut g, 2.5);
        let want: [&[f32]; 3] = [&[2.5, 2.5], &[1.0, -2.0, 2.0, 0.5], &[2.5]];
        for (p, w) in params.iter().zip(want) {
            assert_eq!(data(&g, p), w);
        }
        let (params, mut g) = grads_of(&[&[-7.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.5]]);
        clip_grad_value(&mut g, 1.0);
        let got = data(&g, &params[0]);
        assert_eq!(&got[..3], &[-1.0, 1.0, -1.0]);
        assert!(got[3].is_nan());
        assert_eq!(got[4], -0.5);
    }

    #[test]
    #[should_panic(expected = "max_norm must be >= 0")]
    fn negative_max_norm_panics() {
        let (_, mut g) = grads_of(&EXAMPLE);
        clip_grad_norm(&mut g, -1.0);
    }

    #[test]
    #[should_panic(expected = "clip_value must be >= 0")]
    fn nan_clip_value_panics() {
        let (_, mut g) = grads_of(&EXAMPLE);
        clip_grad_value(&mut g, f32::NAN);
    }
}
