//! Inverted dropout with a counter-based mask.
//!
//! Element `i` is kept when `counter_uniform(key, i) >= p`, so the mask is a pure function of
//! `(key, i)`: forward and backward draw it independently and agree, chunks can be drawn in
//! parallel in any order, and nothing is stored between the two passes.

use crate::kernels::parallel::{for_each_chunk_mut, CHUNK};
use crate::rng::{counter_uniform, splitmix64};

/// Whether element `i` survives dropout with probability `p` under `key`.
#[inline]
pub fn dropout_keeps(key: u64, i: usize, p: f32) -> bool {
    counter_uniform(key, i as u64) >= p
}

/// The integer form of `counter_uniform(key, i) >= p` used by the kernels.
///
/// `counter_uniform` is `u24 * 2^-24` with `u24` the top 24 bits of the hash, exactly, so
/// `u >= p` is `u24 >= ceil(p * 2^24)` (`p * 2^24` is exact in f64). Same masks bit for bit,
/// without an integer-to-float conversion per element: that conversion (u64 to f32, with its
/// false dependency on the destination register) made dropout cost about 16 ns per element.
#[derive(Clone, Copy)]
struct KeepRule {
    key: u64,
    threshold: u64,
}

impl KeepRule {
    fn new(key: u64, p: f32) -> KeepRule {
        KeepRule { key, threshold: (p as f64 * (1u64 << 24) as f64).ceil() as u64 }
    }

    #[inline(always)]
    fn keeps(self, i: usize) -> bool {
        splitmix64(self.key ^ splitmix64(i as u64)) >> 40 >= self.threshold
    }
}

/// `out[i] = x[i] / (1 - p)` where element `i` is kept, else 0.
pub fn dropout_forward(x: &[f32], p: f32, key: u64, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "dropout_forward: input has {} elements, output {}", x.len(), out.len());
    let scale = 1.0 / (1.0 - p);
    let rule = KeepRule::new(key, p);
    for_each_chunk_mut(out, |c, chunk| {
        let base = c * CHUNK;
        for ((j, o), &xi) in chunk.iter_mut().enumerate().zip(&x[base..]) {
            *o = if rule.keeps(base + j) { xi * scale } else { 0.0 };
        }
    });
}

/// `dx[i] += dy[i] / (1 - p)` where element `i` was kept (same `key` as the forward).
pub fn dropout_backward(dy: &[f32], p: f32, key: u64, dx: &mut [f32]) {
    assert_eq!(
        dy.len(),
        dx.len(),
        "dropout_backward: gradient has {} elements, input {}",
        dy.len(),
        dx.len()
    );
    let scale = 1.0 / (1.0 - p);
    let rule = KeepRule::new(key, p);
    for_each_chunk_mut(dx, |c, chunk| {
        let base = c * CHUNK;
        for ((j, d), &g) in chunk.iter_mut().enumerate().zip(&dy[base..]) {
            if rule.keeps(base + j) {
                *d += g * scale;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::parallel::{with_mode, Mode};

    #[test]
    fn forward_matches_naive_and_backward_uses_the_same_mask() {
        let x: Vec<f32> = (0..1001).map(|i| i as f32 * 0.01 - 3.0).collect();
        let (p, key) = (0.3, 77);
        let mut y = vec![0.0; x.len()];
        dropout_forward(&x, p, key, &mut y);
        let mut dx = vec![1.0; x.len()];
        dropout_backward(&vec![2.0; x.len()], p, key, &mut dx);
        for i in 0..x.len() {
            let keep = counter_uniform(key, i as u64) >= p;
            let want = if keep { x[i] * (1.0 / (1.0 - p)) } else { 0.0 };
            assert_eq!(y[i], want);
            assert_eq!(dx[i], if keep { 1.0 + 2.0 * (1.0 / (1.0 - p)) } else { 1.0 });
        }
    }

    #[test]
    fn integer_keep_rule_equals_the_float_comparison() {
        // Exact multiples of 2^-24 (0.5, 0.25), inexact ones (0.2, 0.3) and the extremes.
        for p in [0.0, 0.5, 0.25, 0.2, 0.3, 1e-7, 0.999_999_9] {
            let rule = KeepRule::new(12345, p);
            for i in 0..200_000 {
                assert_eq!(rule.keeps(i), dropout_keeps(12345, i, p), "p {p}, element {i}");
            }
        }
    }

    #[test]
    fn drop_rate_is_p_and_keys_give_different_masks() {
        let n = 200_000;
        let x = vec![1.0; n];
        let mut a = vec![0.0; n];
        let mut b = vec![0.0; n];
        dropout_forward(&x, 0.5, 1, &mut a);
        dropout_forward(&x, 0.5, 2, &mut b);
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        // Standard error of the rate is about 0.0011 at n = 2e5.
        assert!((dropped - 0.5).abs() < 0.006, "drop rate {dropped}");
        let agree = a.iter().zip(&b).filter(|(u, v)| (**u == 0.0) == (**v == 0.0)).count() as f64 / n as f64;
        assert!((agree - 0.5).abs() < 0.01, "masks of two keys agree on {agree} of elements");
    }

    #[test]
    fn parallel_equals_serial() {
        let x: Vec<f32> = (0..3 * CHUNK + 17).map(|i| (i % 13) as f32).collect();
        let run = |mode| {
            with_mode(mode, || {
                let mut y = vec![0.0; x.len()];
                dropout_forward(&x, 0.2, 5, &mut y);
                let mut dx = vec![0.0; x.len()];
                dropout_backward(&x, 0.2, 5, &mut dx);
                (y, dx)
            })
        };
        assert_eq!(run(Mode::Serial), run(Mode::Parallel));
    }
}
