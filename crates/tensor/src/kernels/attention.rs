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
//! Each product is one call of the GEMM ([`sgemm_in`], or [`sgemm_ld_in`] into a block of wider
//! rows; f32 or bf16 operands by [`AttentionOptions::precision`]), which reads the operands through their strides: the queries, keys and values may
//! lie in one packed `[B, T, 3C]` buffer ([`OperandLayout`]) and each head's output may go
//! straight into its columns of the merged `[B, T, C]` rows. Examples are independent and are
//! split over rayon's threads whole, so results do not depend on the thread count. A row whose
//! every position is masked gives zero probabilities (PyTorch gives NaN there).

use rayon::prelude::*;

use super::dropout::{dropout_backward, dropout_forward};
use super::gemm::{sgemm_in, sgemm_ld_in, Precision, StridedMat};
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
    /// `rng::mix(key, dropout_first_entry + b)`.
    pub dropout: Option<(f32, u64)>,
    /// The index of entry 0 in the whole batch when these entries are a piece of it (a batch
    /// split across processes), so that the piece draws the whole batch's masks; 0 otherwise.
    pub dropout_first_entry: usize,
    /// The precision of the products (`Q K^T`, `P V` and the four of the backward); the
    /// softmax and its backward stay f32 either way.
    pub precision: Precision,
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

/// Where the matrices of one attention operand lie in its buffer. Entry `b` of the batch
/// (example `b / heads`, head `b % heads`, with the `heads` of the call) is a matrix of rows
/// `row_stride` floats apart, whose first row starts at
/// `offset + (b / heads) * example_stride + (b % heads) * width` (`width` = the operand's
/// `d` or `dv`); each row's `width` floats are contiguous.
///
/// Two layouts cover the uses: a contiguous `[batch, rows, width]` buffer with one head per
/// example ([`OperandLayout::contiguous`]), and the `[B, T, 3C]` output of one `C -> 3C`
/// projection that holds every head's query, key and value side by side in each row (nanoGPT's
/// `c_attn`; [`OperandLayout::packed`]), which attention then reads in place instead of
/// splitting it into three `[B, heads, T, d]` copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperandLayout {
    /// Where entry 0 starts.
    pub offset: usize,
    /// Floats from one example's first row to the next example's.
    pub example_stride: usize,
    /// Floats from one row to the next.
    pub row_stride: usize,
}

impl OperandLayout {
    /// A contiguous `[batch, rows, width]` buffer (one head per example).
    pub fn contiguous(rows: usize, width: usize) -> OperandLayout {
        OperandLayout { offset: 0, example_stride: rows * width, row_stride: width }
    }

    /// Part `part` (0 queries, 1 keys, 2 values) of a packed `[B, T, parts * heads * width]`
    /// buffer: row `i` of example `e` holds part 0 of every head, then part 1, ... (head `h`'s
    /// part `p` in columns `(p * heads + h) * width ..`).
    pub fn packed(part: usize, parts: usize, rows: usize, heads: usize, width: usize) -> OperandLayout {
        let row = parts * heads * width;
        OperandLayout { offset: part * heads * width, example_stride: rows * row, row_stride: row }
    }

    /// The `rows x width` matrix of head `h` of the example whose block starts at `base`.
    fn matrix<'a>(
        &self,
        data: &'a [f32],
        base: usize,
        h: usize,
        rows: usize,
        width: usize,
    ) -> StridedMat<'a> {
        let start = base + self.offset + h * width;
        StridedMat::new(&data[start..], rows, width, self.row_stride, 1)
    }
}

/// The three operands of an attention call and their layouts. `heads` entries make one
/// example; the work is split over examples, each computed whole by one thread.
#[derive(Clone, Copy, Debug)]
pub struct AttentionInputs<'a> {
    /// Queries, keys, values (may be one buffer: see [`OperandLayout::packed`]).
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// Their layouts, in that order.
    pub layouts: [OperandLayout; 3],
    /// Entries per example.
    pub heads: usize,
}

impl<'a> AttentionInputs<'a> {
    /// Contiguous `q [batch, t, d]`, `k [batch, s, d]`, `v [batch, s, dv]`.
    pub fn contiguous(q: &'a [f32], k: &'a [f32], v: &'a [f32], dims: AttentionDims) -> Self {
        let AttentionDims { batch, t, s, d, dv } = dims;
        check("attention", "q", q.len(), batch * t * d);
        check("attention", "k", k.len(), batch * s * d);
        check("attention", "v", v.len(), batch * s * dv);
        let layouts = [
            OperandLayout::contiguous(t, d),
            OperandLayout::contiguous(s, d),
            OperandLayout::contiguous(s, dv),
        ];
        AttentionInputs { q, k, v, layouts, heads: 1 }
    }

    /// One packed `qkv [B, t, 3 * heads * d]` buffer (self-attention: `s = t`, `dv = d`,
    /// `dims.batch = B * heads`).
    pub fn packed(qkv: &'a [f32], dims: AttentionDims, heads: usize) -> Self {
        let AttentionDims { batch, t, s, d, dv } = dims;
        assert!(
            heads > 0 && batch.is_multiple_of(heads) && s == t && dv == d,
            "attention: a packed qkv needs s = t, dv = d and whole examples, got {dims:?} with {heads} heads"
        );
        check("attention", "qkv", qkv.len(), batch * t * 3 * d);
        let layouts = [0, 1, 2].map(|part| OperandLayout::packed(part, 3, t, heads, d));
        AttentionInputs { q: qkv, k: qkv, v: qkv, layouts, heads }
    }

    fn examples(&self, dims: AttentionDims) -> usize {
        dims.batch / self.heads
    }
}

/// The forward of contiguous operands: writes `probs` (`[batch, t, s]`, the softmax before
/// dropout) and `out` (`[batch, t, dv]`, overwritten). `q` is `[batch, t, d]`, `k`
/// `[batch, s, d]`, `v` `[batch, s, dv]`.
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: AttentionDims,
    options: AttentionOptions<'_>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let inputs = AttentionInputs::contiguous(q, k, v, dims);
    attention_forward_with(inputs, dims, options, probs, out, OperandLayout::contiguous(dims.t, dims.dv));
}

/// The forward of any layout: writes `probs` (`[batch, t, s]`) and the entries' outputs into
/// `out` at `out_layout` (`[B, t, heads * dv]` with heads merged, for example); `out` must
/// end with the last example's block, and floats of it outside the entries are not written.
pub fn attention_forward_with(
    inputs: AttentionInputs<'_>,
    dims: AttentionDims,
    options: AttentionOptions<'_>,
    probs: &mut [f32],
    out: &mut [f32],
    out_layout: OperandLayout,
) {
    let AttentionDims { batch, t, s, d, dv } = dims;
    let (heads, examples) = (inputs.heads, inputs.examples(dims));
    check("attention_forward", "probs", probs.len(), batch * t * s);
    check("attention_forward", "out", out.len(), examples * out_layout.example_stride);
    if let Some(bias) = options.bias {
        check("attention_forward", "bias", bias.len(), batch * t * s);
    }
    if batch * t * s == 0 {
        out.fill(0.0);
        return;
    }
    let [ql, kl, vl] = inputs.layouts;
    let one = |(e, (p_ex, o_ex)): (usize, (&mut [f32], &mut [f32]))| {
        for (h, p) in p_ex.chunks_exact_mut(t * s).enumerate() {
            let b = e * heads + h;
            let qb = ql.matrix(inputs.q, e * ql.example_stride, h, t, d);
            let kb = kl.matrix(inputs.k, e * kl.example_stride, h, s, d);
            let vb = vl.matrix(inputs.v, e * vl.example_stride, h, s, dv);
            sgemm_in(options.precision, qb, kb.transposed(), p, false);
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
            let o = &mut o_ex[out_layout.offset + h * dv..];
            let ldo = out_layout.row_stride;
            match options.dropout {
                Some((rate, key)) => {
                    // The dropped probabilities live only as long as this product.
                    let mut dropped = vec![0.0; t * s];
                    dropout_forward(p, rate, entry_key(key, options.dropout_first_entry + b), &mut dropped);
                    let dropped = StridedMat::row_major(&dropped, t, s, false);
                    sgemm_ld_in(options.precision, dropped, vb, o, ldo, false);
                }
                None => {
                    sgemm_ld_in(options.precision, StridedMat::row_major(p, t, s, false), vb, o, ldo, false)
                }
            }
        }
    };
    let ex_out = out_layout.example_stride;
    if should_parallelize(batch * t * s * (d + dv)) {
        probs.par_chunks_mut(heads * t * s).zip(out.par_chunks_mut(ex_out)).enumerate().for_each(one);
    } else {
        probs.chunks_mut(heads * t * s).zip(out.chunks_mut(ex_out)).enumerate().for_each(one);
    }
}

/// Where [`attention_backward_with`] writes the gradients of the queries, keys and values:
/// three buffers laid out like the inputs, or one buffer of the packed layout.
#[derive(Debug)]
pub enum AttentionGrads<'a> {
    /// Contiguous `dq [batch, t, d]`, `dk [batch, s, d]`, `dv [batch, s, dv]`.
    Separate(&'a mut [f32], &'a mut [f32], &'a mut [f32]),
    /// One `dqkv` in the layout of [`AttentionInputs::packed`].
    Packed(&'a mut [f32]),
}

/// The backward of [`attention_forward`]: overwrites `dq`, `dk`, `dv` (shapes of `q`, `k`,
/// `v`) from `dout` (`[batch, t, dv]`) and the saved `probs`.
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
    let inputs = AttentionInputs::contiguous(q, k, v, dims);
    let dout_layout = OperandLayout::contiguous(dims.t, dims.dv);
    let grads = AttentionGrads::Separate(dq, dk, dv_grad);
    attention_backward_with(inputs, probs, dims, options, dout, dout_layout, grads);
}

/// The backward of any layout: overwrites the gradients (every float of each entry's
/// matrices; with [`AttentionGrads::Packed`], every float of `dqkv`) from `dout` at
/// `dout_layout` and the saved `probs`.
pub fn attention_backward_with(
    inputs: AttentionInputs<'_>,
    probs: &[f32],
    dims: AttentionDims,
    options: AttentionOptions<'_>,
    dout: &[f32],
    dout_layout: OperandLayout,
    grads: AttentionGrads<'_>,
) {
    let AttentionDims { batch, t, s, d, dv } = dims;
    let (heads, examples) = (inputs.heads, inputs.examples(dims));
    let [ql, kl, vl] = inputs.layouts;
    check("attention_backward", "dout", dout.len(), examples * dout_layout.example_stride);
    match &grads {
        AttentionGrads::Separate(dq, dk, dvg) => {
            check("attention_backward", "dq", dq.len(), batch * t * d);
            check("attention_backward", "dk", dk.len(), batch * s * d);
            check("attention_backward", "dv", dvg.len(), batch * s * dv);
        }
        AttentionGrads::Packed(dqkv) => check("attention_backward", "dqkv", dqkv.len(), inputs.q.len()),
    }
    if batch * t * s == 0 {
        match grads {
            AttentionGrads::Separate(dq, dk, dvg) => [dq, dk, dvg].into_iter().for_each(|g| g.fill(0.0)),
            AttentionGrads::Packed(dqkv) => dqkv.fill(0.0),
        }
        return;
    }
    // One example: operand i's gradient goes to `targets[slot[i]]`, this example's chunk of
    // its buffer (one chunk for all three when packed).
    let one = |e: usize, targets: &mut [&mut [f32]], slot: [usize; 3]| {
        for h in 0..heads {
            let b = e * heads + h;
            let qb = ql.matrix(inputs.q, e * ql.example_stride, h, t, d);
            let kb = kl.matrix(inputs.k, e * kl.example_stride, h, s, d);
            let vb = vl.matrix(inputs.v, e * vl.example_stride, h, s, dv);
            let pb = &probs[b * t * s..(b + 1) * t * s];
            let dob = dout_layout.matrix(dout, e * dout_layout.example_stride, h, t, dv);
            // This head's block of operand i's gradient: its chunk, the offset of the head's
            // first row in it (chunks start at the example's block) and the row stride.
            let at = |i: usize, layout: &OperandLayout, width: usize| {
                (slot[i], layout.offset + h * width, layout.row_stride)
            };
            // dP' = dO V^T, then through the dropout: dP = dropout_backward(dP').
            let mut dp = vec![0.0; t * s];
            sgemm_in(options.precision, dob, vb.transposed(), &mut dp, false);
            let dropped;
            let p_used: &[f32] = match options.dropout {
                Some((rate, key)) => {
                    let mut kept = vec![0.0; t * s];
                    dropout_forward(pb, rate, entry_key(key, options.dropout_first_entry + b), &mut kept);
                    let mut through = vec![0.0; t * s];
                    dropout_backward(
                        &dp,
                        rate,
                        entry_key(key, options.dropout_first_entry + b),
                        &mut through,
                    );
                    dp = through;
                    dropped = kept;
                    &dropped
                }
                None => pb,
            };
            // dV = P'^T dO.
            let (i, start, ld) = at(2, &vl, dv);
            sgemm_ld_in(
                options.precision,
                StridedMat::row_major(p_used, s, t, true),
                dob,
                &mut targets[i][start..],
                ld,
                false,
            );
            // dS = P * (dP - rowsum(dP * P)), scaled once here for both dQ and dK.
            for (dp_row, p_row) in dp.chunks_exact_mut(s).zip(pb.chunks_exact(s)) {
                let dot = dp_row.iter().zip(p_row).map(|(&g, &p)| g as f64 * p as f64).sum::<f64>() as f32;
                for (g, &p) in dp_row.iter_mut().zip(p_row) {
                    *g = options.scale * p * (*g - dot);
                }
            }
            // dQ = dS K, dK = dS^T Q.
            let (i, start, ld) = at(0, &ql, d);
            sgemm_ld_in(
                options.precision,
                StridedMat::row_major(&dp, t, s, false),
                kb,
                &mut targets[i][start..],
                ld,
                false,
            );
            let (i, start, ld) = at(1, &kl, d);
            sgemm_ld_in(
                options.precision,
                StridedMat::row_major(&dp, s, t, true),
                qb,
                &mut targets[i][start..],
                ld,
                false,
            );
        }
    };
    let parallel = should_parallelize(batch * t * s * (d + dv));
    match grads {
        AttentionGrads::Separate(dq, dk, dvg) => {
            let (eq, ek, ev) = (ql.example_stride, kl.example_stride, vl.example_stride);
            let run = |(e, ((a, b), c)): (usize, GradSlices<'_>)| one(e, &mut [a, b, c], [0, 1, 2]);
            if parallel {
                dq.par_chunks_mut(eq)
                    .zip(dk.par_chunks_mut(ek))
                    .zip(dvg.par_chunks_mut(ev))
                    .enumerate()
                    .for_each(run);
            } else {
                dq.chunks_mut(eq).zip(dk.chunks_mut(ek)).zip(dvg.chunks_mut(ev)).enumerate().for_each(run);
            }
        }
        AttentionGrads::Packed(dqkv) => {
            let run = |(e, g): (usize, &mut [f32])| one(e, &mut [g], [0, 0, 0]);
            if parallel {
                dqkv.par_chunks_mut(ql.example_stride).enumerate().for_each(run);
            } else {
                dqkv.chunks_mut(ql.example_stride).enumerate().for_each(run);
            }
        }
    }
}

/// One example's `((dq, dk), dv)`, as the zipped chunk iterators give them.
type GradSlices<'a> = ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]);

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
            let options = AttentionOptions {
                scale: 0.4,
                bias: None,
                causal,
                dropout: None,
                dropout_first_entry: 0,
                precision: Precision::F32,
            };
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
        let with_bias = run(
            dims,
            AttentionOptions {
                scale: 1.0,
                bias: Some(&bias),
                causal: false,
                dropout: None,
                dropout_first_entry: 0,
                precision: Precision::F32,
            },
            7,
        );
        let causal = run(
            dims,
            AttentionOptions {
                scale: 1.0,
                bias: None,
                causal: true,
                dropout: None,
                dropout_first_entry: 0,
                precision: Precision::F32,
            },
            7,
        );
        assert_eq!(with_bias, causal);
    }

    /// `qkv [B, t, 3 H d]` split into contiguous `[B H, t, d]` queries, keys and values.
    fn split_packed(qkv: &[f32], examples: usize, t: usize, heads: usize, d: usize) -> [Vec<f32>; 3] {
        let c = heads * d;
        [0, 1, 2].map(|part| {
            let mut out = Vec::with_capacity(examples * heads * t * d);
            for e in 0..examples {
                for h in 0..heads {
                    for i in 0..t {
                        let row = (e * t + i) * 3 * c + part * c + h * d;
                        out.extend_from_slice(&qkv[row..row + d]);
                    }
                }
            }
            out
        })
    }

    #[test]
    fn the_packed_layout_gives_the_bits_of_split_copies() {
        // 3 examples x 2 heads of width 4, causal with dropout, over a packed qkv [3, 5, 24]:
        // the outputs (heads merged) and the packed gradient equal the contiguous kernels'
        // on split copies, bit for bit, serially and in parallel.
        let (examples, heads, t, d) = (3, 2, 5, 4);
        let dims = AttentionDims { batch: examples * heads, t, s: t, d, dv: d };
        let options = AttentionOptions {
            scale: 0.5,
            bias: None,
            causal: true,
            dropout: Some((0.25, 9)),
            dropout_first_entry: 0,
            precision: Precision::F32,
        };
        let qkv = randn(examples * t * 3 * heads * d, 21);
        let dout_merged = randn(examples * t * heads * d, 22);
        let [q, k, v] = split_packed(&qkv, examples, t, heads, d);
        // Merged [B, t, H d] -> [B H, t, d], for dout; and back, for the output.
        let to_heads = |x: &[f32]| {
            let mut out = vec![0.0; x.len()];
            for e in 0..examples {
                for h in 0..heads {
                    for i in 0..t {
                        let src = (e * t + i) * heads * d + h * d;
                        let dst = ((e * heads + h) * t + i) * d;
                        out[dst..dst + d].copy_from_slice(&x[src..src + d]);
                    }
                }
            }
            out
        };
        let (want_probs, want_out, want_grads) = {
            let (mut probs, mut out) = (vec![0.0; dims.batch * t * t], vec![0.0; dims.batch * t * d]);
            attention_forward(&q, &k, &v, dims, options, &mut probs, &mut out);
            let dout = to_heads(&dout_merged);
            let mut grads = [vec![f32::NAN; q.len()], vec![f32::NAN; k.len()], vec![f32::NAN; v.len()]];
            let [dq, dk, dvg] = &mut grads;
            attention_backward(&q, &k, &v, &probs, dims, options, &dout, dq, dk, dvg);
            (probs, out, grads)
        };
        for mode in [Mode::Serial, Mode::Parallel] {
            with_mode(mode, || {
                let inputs = AttentionInputs::packed(&qkv, dims, heads);
                let merged = OperandLayout::contiguous(t, heads * d);
                let (mut probs, mut out) = (vec![0.0; dims.batch * t * t], vec![f32::NAN; dout_merged.len()]);
                attention_forward_with(inputs, dims, options, &mut probs, &mut out, merged);
                assert_eq!(probs, want_probs);
                assert_eq!(to_heads(&out), want_out);
                // NaN-filled: every float of the packed gradient must be written.
                let mut dqkv = vec![f32::NAN; qkv.len()];
                let grads = AttentionGrads::Packed(&mut dqkv);
                attention_backward_with(inputs, &probs, dims, options, &dout_merged, merged, grads);
                assert_eq!(split_packed(&dqkv, examples, t, heads, d), want_grads);
            });
        }
    }

    #[test]
    fn parallel_equals_serial_bit_for_bit_with_dropout() {
        let dims = AttentionDims { batch: 6, t: 7, s: 7, d: 4, dv: 5 };
        let options = AttentionOptions {
            scale: 0.5,
            bias: None,
            causal: true,
            dropout: Some((0.3, 42)),
            dropout_first_entry: 0,
            precision: Precision::F32,
        };
        let serial = with_mode(Mode::Serial, || run(dims, options, 11));
        let parallel = with_mode(Mode::Parallel, || run(dims, options, 11));
        assert_eq!(serial, parallel);
    }
}
