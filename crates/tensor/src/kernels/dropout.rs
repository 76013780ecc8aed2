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
    dropout_forward_from(x, p, key, 0, out);
}

/// [`dropout_forward`] of the elements `first..first + x.len()` of a larger tensor: element
/// `i` of `x` is kept when element `first + i` of the whole would be, so a piece of a batch
/// (one process's share of it) draws the whole batch's mask.
pub fn dropout_forward_from(x: &[f32], p: f32, key: u64, first: usize, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "dropout_forward: input has {} elements, output {}", x.len(), out.len());
    let scale = 1.0 / (1.0 - p);
    let rule = KeepRule::new(key, p);
    for_each_chunk_mut(out, |c, chunk| {
        let base = c * CHUNK;
        forward_run(rule, scale, first + base, &x[base..base + chunk.len()], chunk);
    });
}

/// `dx[i] += dy[i] / (1 - p)` where element `i` was kept (same `key` as the forward).
pub fn dropout_backward(dy: &[f32], p: f32, key: u64, dx: &mut [f32]) {
    dropout_backward_into(dy, p, key, dx, true);
}

/// [`dropout_backward`] that, unless `acc`, overwrites `dx` instead of adding to it.
///
/// Without `acc` every element of `dx` is written and none is read, so `dx` may hold garbage
/// (a fresh gradient buffer: no zero fill). The values are those of accumulating into zeros
/// bit for bit: kept elements get `0.0 + dy[i] / (1 - p)`, which turns a `-0.0` into `0.0`
/// as the zero-filled accumulation did, so training runs do not change.
pub fn dropout_backward_into(dy: &[f32], p: f32, key: u64, dx: &mut [f32], acc: bool) {
    dropout_backward_from(dy, p, key, 0, dx, acc);
}

/// [`dropout_backward_into`] of the elements `first..` of a larger tensor, as
/// [`dropout_forward_from`] drew them.
pub fn dropout_backward_from(dy: &[f32], p: f32, key: u64, first: usize, dx: &mut [f32], acc: bool) {
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
        backward_run(rule, scale, first + base, &dy[base..base + chunk.len()], chunk, acc);
    });
}

/// The forward over one run of elements whose first has index `base`, in the widest code this
/// CPU has. The mask hash is nearly all of dropout's cost (two SplitMix64 rounds, four
/// 64-bit multiplies per element): scalar, it was a fifth of the MLP benchmark's step.
fn forward_run(rule: KeepRule, scale: f32, base: usize, x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has just been found to support AVX-512F and AVX-512DQ.
        unsafe { avx512::forward(rule, scale, base, x, out) };
        return;
    }
    forward_scalar(rule, scale, base, x, out);
}

/// The backward over one run of elements whose first has index `base` (see [`forward_run`]).
fn backward_run(rule: KeepRule, scale: f32, base: usize, dy: &[f32], dx: &mut [f32], acc: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has just been found to support AVX-512F and AVX-512DQ.
        unsafe { avx512::backward(rule, scale, base, dy, dx, acc) };
        return;
    }
    backward_scalar(rule, scale, base, dy, dx, acc);
}

/// The reference forward, one element at a time; the vector path must equal it bit for bit.
fn forward_scalar(rule: KeepRule, scale: f32, base: usize, x: &[f32], out: &mut [f32]) {
    for ((j, o), &xi) in out.iter_mut().enumerate().zip(x) {
        *o = if rule.keeps(base + j) { xi * scale } else { 0.0 };
    }
}

/// The reference backward: `dx (+)= dy * scale` on kept elements, starting from `dx` when
/// `acc`, else from `0.0`.
fn backward_scalar(rule: KeepRule, scale: f32, base: usize, dy: &[f32], dx: &mut [f32], acc: bool) {
    for ((j, d), &g) in dx.iter_mut().enumerate().zip(dy) {
        let start = if acc { *d } else { 0.0 };
        *d = if rule.keeps(base + j) { start + g * scale } else { start };
    }
}

/// The mask hash 8 lanes at a time: AVX-512DQ has the 64-bit multiply (`vpmullq`) that
/// SplitMix64 needs, which AVX2 lacks (emulating it from 32-bit multiplies costs more than
/// the scalar loop saves). Each lane computes exactly [`KeepRule::keeps`]: integer
/// arithmetic, so the masks are the same bits; the float work is the scalar code's single
/// multiply (and add) per element, which the vector unit rounds identically.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{backward_scalar, forward_scalar, KeepRule};
    use std::arch::x86_64::*;

    /// Whether this CPU runs the functions below.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512dq")
    }

    /// [`crate::rng::splitmix64`] of each of 8 lanes.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn splitmix64x8(x: __m512i) -> __m512i {
        let mut z = _mm512_add_epi64(x, _mm512_set1_epi64(0x9E37_79B9_7F4A_7C15_u64 as i64));
        z = _mm512_xor_si512(z, _mm512_srli_epi64::<30>(z));
        z = _mm512_mullo_epi64(z, _mm512_set1_epi64(0xBF58_476D_1CE4_E5B9_u64 as i64));
        z = _mm512_xor_si512(z, _mm512_srli_epi64::<27>(z));
        z = _mm512_mullo_epi64(z, _mm512_set1_epi64(0x94D0_49BB_1331_11EB_u64 as i64));
        _mm512_xor_si512(z, _mm512_srli_epi64::<31>(z))
    }

    /// Bit `k` set when element `i + k` is kept, for `k` in `0..16`.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn keep_mask16(rule: KeepRule, i: usize) -> __mmask16 {
        let key = _mm512_set1_epi64(rule.key as i64);
        let threshold = _mm512_set1_epi64(rule.threshold as i64);
        // _mm512_set_epi64 lists lanes from the highest: lane k holds i + k.
        let lo = _mm512_add_epi64(_mm512_set1_epi64(i as i64), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
        let hi = _mm512_add_epi64(lo, _mm512_set1_epi64(8));
        let top24 = |idx| _mm512_srli_epi64::<40>(splitmix64x8(_mm512_xor_si512(key, splitmix64x8(idx))));
        // Unsigned compares, as the scalar `u64 >=`.
        let lo_keep = _mm512_cmpge_epu64_mask(top24(lo), threshold);
        let hi_keep = _mm512_cmpge_epu64_mask(top24(hi), threshold);
        lo_keep as u16 | (hi_keep as u16) << 8
    }

    /// [`forward_scalar`] 16 elements at a time; the last `len % 16` by the scalar loop.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn forward(rule: KeepRule, scale: f32, base: usize, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        let full = out.len() / 16 * 16;
        let scale_v = _mm512_set1_ps(scale);
        for j in (0..full).step_by(16) {
            let keep = keep_mask16(rule, base + j);
            // SAFETY: j + 16 <= full <= the length of both slices (checked equal above).
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(j));
                // Dropped lanes become +0.0 whatever x holds (NaN included), as in the scalar code.
                _mm512_storeu_ps(out.as_mut_ptr().add(j), _mm512_maskz_mul_ps(keep, v, scale_v));
            }
        }
        forward_scalar(rule, scale, base + full, &x[full..], &mut out[full..]);
    }

    /// [`backward_scalar`] 16 elements at a time; the last `len % 16` by the scalar loop.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn backward(rule: KeepRule, scale: f32, base: usize, dy: &[f32], dx: &mut [f32], acc: bool) {
        assert_eq!(dy.len(), dx.len());
        let full = dx.len() / 16 * 16;
        let scale_v = _mm512_set1_ps(scale);
        for j in (0..full).step_by(16) {
            let keep = keep_mask16(rule, base + j);
            // SAFETY: j + 16 <= full <= the length of both slices (checked equal above).
            unsafe {
                let g = _mm512_mul_ps(_mm512_loadu_ps(dy.as_ptr().add(j)), scale_v);
                let start = if acc { _mm512_loadu_ps(dx.as_ptr().add(j)) } else { _mm512_setzero_ps() };
                _mm512_storeu_ps(dx.as_mut_ptr().add(j), _mm512_mask_add_ps(start, keep, start, g));
            }
        }
        backward_scalar(rule, scale, base + full, &dy[full..], &mut dx[full..], acc);
    }
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
    fn a_piece_of_a_tensor_draws_the_whole_tensors_mask() {
        let n = 3 * CHUNK + 77;
        let x: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
        let (mut whole, mut dwhole) = (vec![0.0; n], vec![0.0; n]);
        dropout_forward(&x, 0.3, 99, &mut whole);
        dropout_backward_into(&x, 0.3, 99, &mut dwhole, false);
        for (first, end) in [(0, 5), (7, 700), (CHUNK - 3, 2 * CHUNK + 9), (n - 33, n)] {
            let mut piece = vec![0.0; end - first];
            dropout_forward_from(&x[first..end], 0.3, 99, first, &mut piece);
            assert_eq!(piece, whole[first..end], "forward, elements {first}..{end}");
            let mut dpiece = vec![0.0; end - first];
            dropout_backward_from(&x[first..end], 0.3, 99, first, &mut dpiece, false);
            assert_eq!(dpiece, dwhole[first..end], "backward, elements {first}..{end}");
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

    /// Inputs with the values that could tell two float paths apart: signed zeros, NaN,
    /// infinities, subnormals and ordinary numbers of both signs.
    fn awkward(n: usize, salt: u64) -> Vec<f32> {
        let special = [0.0, -0.0, f32::NAN, f32::INFINITY, -f32::INFINITY, 1e-40, -3.5, f32::MAX];
        (0..n)
            .map(|i| {
                let h = splitmix64(salt ^ i as u64);
                if h.is_multiple_of(5) {
                    special[(h >> 8) as usize % special.len()]
                } else {
                    (h >> 40) as f32 * 1e-5 - 80.0
                }
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx512_path_equals_the_scalar_loop() {
        if !avx512::available() {
            eprintln!("skipped: this CPU lacks AVX-512F/DQ, only the scalar path runs here");
            return;
        }
        // Lengths around the 16-lane step and a whole chunk; bases of later chunks and one past
        // 2^32, where a 32-bit index would wrap.
        let lengths = [0, 1, 7, 15, 16, 17, 31, 33, 250, 1001, CHUNK + 5];
        let bases = [0, 3, 16, CHUNK, 7 * CHUNK + 9, (1 << 32) - 5];
        for (t, &p) in [0.2_f32, 0.5, 0.3, 1e-7, 0.999_999_9].iter().enumerate() {
            let rule = KeepRule::new(0xDEAD_BEEF ^ t as u64, p);
            let scale = 1.0 / (1.0 - p);
            for &n in &lengths {
                let x = awkward(n, 1 + t as u64);
                let dx0 = awkward(n, 100 + t as u64);
                for &base in &bases {
                    let (mut want, mut got) = (vec![9.0; n], vec![9.0; n]);
                    forward_scalar(rule, scale, base, &x, &mut want);
                    // SAFETY: availability checked above.
                    unsafe { avx512::forward(rule, scale, base, &x, &mut got) };
                    assert_eq!(bits(&got), bits(&want), "forward p {p}, n {n}, base {base}");
                    for acc in [true, false] {
                        let (mut want, mut got) = (dx0.clone(), dx0.clone());
                        backward_scalar(rule, scale, base, &x, &mut want, acc);
                        // SAFETY: availability checked above.
                        unsafe { avx512::backward(rule, scale, base, &x, &mut got, acc) };
                        assert_eq!(bits(&got), bits(&want), "backward acc {acc}, p {p}, n {n}, base {base}");
                    }
                }
            }
        }
    }

    #[test]
    fn overwriting_backward_equals_accumulating_into_zeros() {
        let n = 2 * CHUNK + 37;
        let dy = awkward(n, 7);
        assert!(dy.iter().any(|v| v.to_bits() == (-0.0f32).to_bits()), "the input must hold -0.0");
        let mut zeroed = vec![0.0; n];
        dropout_backward(&dy, 0.5, 11, &mut zeroed);
        // A reused buffer holds anything: NaN shows any element left unwritten.
        let mut garbage = vec![f32::NAN; n];
        dropout_backward_into(&dy, 0.5, 11, &mut garbage, false);
        assert_eq!(bits(&garbage), bits(&zeroed));
    }
}
