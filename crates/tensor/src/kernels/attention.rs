//! Scaled dot-product attention, forward beside backward, one batch entry (one head of one
//! example) at a time:
//!
//! ```text
//! S = scale * Q K^T + bias       [t, s]   (bias: an additive mask, -inf where masked)
//! P = softmax(S) along s         [t, s]   (saved for the backward)
//! O = dropout(P) V               [t, dv]
//! ```
//!
//! and, with `P' = dropout(P)` and `dO` the output gradient,
//!
//! ```text
//! dV = P'^T dO                   dP' = dO V^T      dP = dropout_backward(dP')
//! dS = P * (dP - rowsum(dP * P))                    (the softmax's backward)
//! dQ = scale * dS K              dK = scale * dS^T Q
//! ```
//!
//! Each product is one call of the GEMM ([`matmul`]). Batch entries are independent and are
//! split over rayon's threads whole, so results do not depend on the thread count. A row whose
//! every position is masked gives zero probabilities (PyTorch gives NaN there).

use rayon::prelude::*;

use super::dropout::{dropout_backward, dropout_forward};
use super::matmul::matmul;
use super::parallel::should_parallelize;
use super::vecmath::{exp_nonpositive, widest_simd};

/// The sizes of one attention call: `batch` independent entries (examples times heads), `t`
/// queries, `s` keys, key width `d`, value width `dv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    /// Independent entries (the product of the leading axes).
    pub batch: usize,
    /// Queries per entry (target length).
    pub t: usize,
    /// Keys and values per entry (source length).
    pub s: usize,
    /// Width of a query and a key.
    pub d: usize,
    /// Width of a value.
    pub dv: usize,
}

/// How the scores are masked and the probabilities dropped.
#[derive(Clone, Copy, Debug)]
pub struct AttentionOptions<'a> {
    /// Multiplies `Q K^T` (PyTorch's default is `1 / sqrt(d)`).
    pub scale: f32,
    /// Added to the scaled scores, `[batch, t, s]`; `-inf` masks a position.
    pub bias: Option<&'a [f32]>,
    /// Query `i` sees keys `j <= i` only (PyTorch's `is_causal`, aligned top-left).
    pub causal: bool,
    /// Dropout on the probabilities: `(p, key)`; entry `b` draws its mask with the key
    /// `rng::mix(key, b)`.
    pub dropout: Option<(f32, u64)>,
}

fn check(op: &str, what: &str, len: usize, want: usize) {
    assert_eq!(len, want, "{op}: {what} has {len} values, want {want}");
}

widest_simd! {
    /// Softmax of one row in place; a row of `-inf` becomes zeros. Vectorised: the
    /// exponentials are [`exp_nonpositive`]'s (every `x - max` is <= 0), and the `f64` sum is
    /// kept in 8 partial sums (a fixed order, so the bits do not depend on the CPU).
    fn softmax_in_place(row: &mut [f32]) {
        let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if m == f32::NEG_INFINITY {
            row.fill(0.0);
            return;
        }
        for v in row.iter_mut() {
            *v = exp_nonpositive(*v - m);
        }
        let mut partial = [0.0f64; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for (p, &v) in partial.iter_mut().zip(c) {
                *p += v as f64;
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
        let inv = 1.0 / (partial.iter().sum::<f64>() + tail);
        for v in row.iter_mut() {
            *v = (*v as f64 * inv) as f32;
        }
    }
}

/// The forward: writes `probs` (`[batch, t, s]`, the softmax before dropout) and `out`
/// (`[batch, t, dv]`, overwritten). `q` is `[batch, t, d]`, `k` `[batch, s, d]`, `v`
/// `[batch, s, dv]`.
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: AttentionDims,
    options: AttentionOptions<'_>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let AttentionDims { batch, t, s, d, dv } = dims;
    check("attention_forward", "q", q.len(), batch * t * d);
    check("attention_forward", "k", k.len(), batch * s * d);
    check("attention_forward", "v", v.len(), batch * s * dv);
    check("attention_forward", "probs", probs.len(), batch * t * s);
    check("attention_forward", "out", out.len(), batch * t * dv);
    if let Some(bias) = options.bias {
        check("attention_forward", "bias", bias.len(), batch * t * s);
    }
    if batch * t * s == 0 {
        out.fill(0.0);
        return;
    }
    let one = |(b, (p, o)): (usize, (&mut [f32], &mut [f32]))| {
        let (qb, kb, vb) = (
            &q[b * t * d..(b + 1) * t * d],
            &k[b * s * d..(b + 1) * s * d],
            &v[b * s * dv..(b + 1) * s * dv],
        );
        matmul(qb, kb, p, t, d, s, false, true, false);
        for (i, row) in p.chunks_exact_mut(s).enumerate() {
            // Causal: keys after the query get probability 0 (a score of -inf).
            let visible = if options.causal { (i + 1).min(s) } else { s };
            let (seen, masked) = row.split_at_mut(visible);
            masked.fill(0.0);
            for x in seen.iter_mut() {
                *x *= options.scale;
            }
            if let Some(bias) = options.bias {
                for (x, &c) in seen.iter_mut().zip(&bias[(b * t + i) * s..]) {
                    *x += c;
                }
            }
            softmax_in_place(seen);
        }
        match options.dropout {
            Some((rate, key)) => {
                // The dropped probabilities live only as long as this product.
                let mut dropped = vec![0.0; t * s];
                dropout_forward(p, rate, entry_key(key, b), &mut dropped);
                matmul(&dropped, vb, o, t, s, dv, false, false, false);
            }
            None => matmul(p, vb, o, t, s, dv, false, false, false),
        }
    };
    if should_parallelize(batch * t * s * (d + dv)) {
        probs.par_chunks_mut(t * s).zip(out.par_chunks_mut(t * dv)).enumerate().for_each(one);
    } else {
        probs.chunks_mut(t * s).zip(out.chunks_mut(t * dv)).enumerate().for_each(one);
    }
}

/// One batch entry's `((dq, dk), dv)`, as the zipped chunk iterators give them.
type GradSlices<'a> = ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]);

/// The backward of [`attention_forward`]: accumulates into `dq`, `dk`, `dv` (shapes of `q`,
/// `k`, `v`) from `dout` (`[batch, t, dv]`) and the saved `probs`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dims: AttentionDims,
    options: AttentionOptions<'_>,
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv_grad: &mut [f32],
) {
    let AttentionDims { batch, t, s, d, dv } = dims;
    check("attention_backward", "dout", dout.len(), batch * t * dv);
    check("attention_backward", "dq", dq.len(), batch * t * d);
    check("attention_backward", "dk", dk.len(), batch * s * d);
    check("attention_backward", "dv", dv_grad.len(), batch * s * dv);
    if batch * t * s == 0 {
        return;
    }
    let one = |(b, ((dqb, dkb), dvb)): (usize, GradSlices<'_>)| {
        let (qb, kb, vb) = (
            &q[b * t * d..(b + 1) * t * d],
            &k[b * s * d..(b + 1) * s * d],
            &v[b * s * dv..(b + 1) * s * dv],
        );
        let pb = &probs[b * t * s..(b + 1) * t * s];
        let dob = &dout[b * t * dv..(b + 1) * t * dv];
        // dP' = dO V^T, then through the dropout: dP = dropout_backward(dP').
        let mut dp = vec![0.0; t * s];
        matmul(dob, vb, &mut dp, t, dv, s, false, true, false);
        match options.dropout {
            Some((rate, key)) => {
                let mut dropped = vec![0.0; t * s];
                dropout_forward(pb, rate, entry_key(key, b), &mut dropped);
                matmul(&dropped, dob, dvb, s, t, dv, true, false, true);
                let mut through = vec![0.0; t * s];
                dropout_backward(&dp, rate, entry_key(key, b), &mut through);
                dp = through;
            }
            None => matmul(pb, dob, dvb, s, t, dv, true, false, true),
        }
        // dS = P * (dP - rowsum(dP * P)), scaled once here for both dQ and dK.
        for (dp_row, p_row) in dp.chunks_exact_mut(s).zip(pb.chunks_exact(s)) {
            let dot = dp_row.iter().zip(p_row).map(|(&g, &p)| g as f64 * p as f64).sum::<f64>() as f32;
            for (g, &p) in dp_row.iter_mut().zip(p_row) {
                *g = options.scale * p * (*g - dot);
            }
        }
        matmul(&dp, kb, dqb, t, s, d, false, false, true);
        matmul(&dp, qb, dkb, s, t, d, true, false, true);
    };
    if should_parallelize(batch * t * s * (d + dv)) {
        dq.par_chunks_mut(t * d)
            .zip(dk.par_chunks_mut(s * d))
            .zip(dv_grad.par_chunks_mut(s * dv))
            .enumerate()
            .for_each(one);
    } else {
        dq.chunks_mut(t * d)
            .zip(dk.chunks_mut(s * d))
            .zip(dv_grad.chunks_mut(s * dv))
            .enumerate()
            .for_each(one);
    }
}

/// The dropout key of batch entry `b`: every entry draws its own mask from the call's key,
/// so an entry's mask does not depend on which thread computes it.
fn entry_key(key: u64, b: usize) -> u64 {
    crate::rng::mix(key, b as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::parallel::{with_mode, Mode};
    use crate::testing::{assert_close, randn};

    /// The textbook formulas in f64, one entry at a time.
    fn naive(q: &[f32], k: &[f32], v: &[f32], dims: AttentionDims, scale: f64, causal: bool) -> Vec<f64> {
        let AttentionDims { batch, t, s, d, dv } = dims;
        let mut out = vec![0.0; batch * t * dv];
        for b in 0..batch {
            for i in 0..t {
                let scores: Vec<f64> = (0..s)
                    .map(|j| {
                        if causal && j > i {
                            return f64::NEG_INFINITY;
                        }
                        (0..d)
                            .map(|c| q[(b * t + i) * d + c] as f64 * k[(b * s + j) * d + c] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..dv {
                    out[(b * t + i) * dv + c] =
                        (0..s).map(|j| e[j] / z * v[(b * s + j) * dv + c] as f64).sum();
                }
            }
        }
        out
    }

    fn run(
        dims: AttentionDims,
        options: AttentionOptions<'_>,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>, [Vec<f32>; 3]) {
        let AttentionDims { batch, t, s, d, dv } = dims;
        let (q, k, v) =
            (randn(batch * t * d, seed), randn(batch * s * d, seed + 1), randn(batch * s * dv, seed + 2));
        let (mut probs, mut out) = (vec![0.0; batch * t * s], vec![0.0; batch * t * dv]);
        attention_forward(&q, &k, &v, dims, options, &mut probs, &mut out);
        let dout = randn(out.len(), seed + 3);
        let mut grads = [vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]];
        let [dq, dk, dvg] = &mut grads;
        attention_backward(&q, &k, &v, &probs, dims, options, &dout, dq, dk, dvg);
        (probs, out, grads)
    }

    #[test]
    fn forward_matches_naive_with_and_without_causal_mask() {
        let dims = AttentionDims { batch: 3, t: 5, s: 4, d: 6, dv: 3 };
        for causal in [false, true] {
            let options = AttentionOptions { scale: 0.4, bias: None, causal, dropout: None };
            let (q, k, v) = (randn(90, 1), randn(72, 2), randn(36, 3));
            let (mut probs, mut out) = (vec![0.0; 60], vec![0.0; 45]);
            attention_forward(&q, &k, &v, dims, options, &mut probs, &mut out);
            assert_close(&out, &naive(&q, &k, &v, dims, 0.4, causal), 1e-5, "attention");
        }
    }

    #[test]
    fn a_bias_of_minus_infinity_masks_like_causal() {
        let dims = AttentionDims { batch: 2, t: 3, s: 3, d: 2, dv: 2 };
        let bias: Vec<f32> =
            (0..18).map(|n| if (n % 9) % 3 > (n % 9) / 3 { f32::NEG_INFINITY } else { 0.0 }).collect();
        let with_bias =
            run(dims, AttentionOptions { scale: 1.0, bias: Some(&bias), causal: false, dropout: None }, 7);
        let causal = run(dims, AttentionOptions { scale: 1.0, bias: None, causal: true, dropout: None }, 7);
        assert_eq!(with_bias, causal);
    }

    #[test]
    fn parallel_equals_serial_bit_for_bit_with_dropout() {
        let dims = AttentionDims { batch: 6, t: 7, s: 7, d: 4, dv: 5 };
        let options = AttentionOptions { scale: 0.5, bias: None, causal: true, dropout: Some((0.3, 42)) };
        let serial = with_mode(Mode::Serial, || run(dims, options, 11));
        let parallel = with_mode(Mode::Parallel, || run(dims, options, 11));
        assert_eq!(serial, parallel);
    }
}
