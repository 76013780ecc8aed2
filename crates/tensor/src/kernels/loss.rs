//! Fused, numerically stable losses: softmax cross-entropy, binary cross-entropy with
//! logits, mean squared error and the Gaussian KL term of a VAE.
//!
//! Each forward returns the loss as an `f32` accumulated in `f64` over fixed chunks (so the
//! value does not depend on the thread count). Each backward ACCUMULATES `g * dloss/dinput`
//! into the gradient buffer, where `g` is the upstream gradient of the scalar loss.

use super::parallel::{for_each_block_mut, for_each_chunk_mut, CHUNK};
use super::reduce::chunked_sum_f64;
use super::softmax::{check_rows, log_softmax_rows, row_block};
use super::vecmath;

/// How an elementwise loss combines its per-element terms into one scalar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The sum over all elements.
    Sum,
    /// The sum divided by the number of elements (torch's default `reduction='mean'`).
    #[default]
    Mean,
}

impl Reduction {
    /// The factor applied to the summed loss of `n` elements (NaN for a mean over nothing).
    fn factor(self, n: usize) -> f64 {
        match self {
            Reduction::Sum => 1.0,
            Reduction::Mean => 1.0 / n as f64,
        }
    }
}

/// Checks that two same-shaped arguments of an elementwise loss have equal lengths.
fn check_same(op: &str, names: [&str; 2], a: usize, b: usize) {
    assert_eq!(a, b, "{op}: {} has {a} elements but {} has {b}", names[0], names[1]);
}

/// Adds `term(i)` to each `dx[i]`, over fixed chunks, in parallel when large.
fn accumulate(dx: &mut [f32], term: impl Fn(usize) -> f32 + Sync + Send) {
    for_each_chunk_mut(dx, |c, d| {
        for (j, d) in d.iter_mut().enumerate() {
            *d += term(c * CHUNK + j);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy
// ---------------------------------------------------------------------------------------------

/// Checks the labels of the softmax cross-entropy kernels: one per row, each below `cols`.
fn check_labels(op: &str, rows: usize, cols: usize, labels: &[usize]) {
    assert_eq!(labels.len(), rows, "{op}: {} labels for {rows} rows", labels.len());
    for (r, &l) in labels.iter().enumerate() {
        assert!(l < cols, "{op}: label {l} at row {r} is out of range for {cols} classes");
    }
}

/// Mean over rows of `-log_softmax(logits)[row, labels[row]]` for `logits` `[rows, cols]` and
/// `labels` `[rows]`; writes the log-softmax into `log_probs` (`[rows, cols]`) for the
/// backward. NaN when `rows == 0` (a mean over nothing, as in torch).
///
/// # Panics
/// If a length does not match, or a label is `>= cols` (naming the row and the label).
pub fn softmax_cross_entropy_forward(
    logits: &[f32],
    rows: usize,
    cols: usize,
    labels: &[usize],
    log_probs: &mut [f32],
) -> f32 {
    let op = "softmax_cross_entropy_forward";
    check_rows(op, "logits", logits.len(), rows, cols);
    check_rows(op, "log_probs", log_probs.len(), rows, cols);
    check_labels(op, rows, cols, labels);
    log_softmax_rows(logits, rows, cols, log_probs);
    let lp = &*log_probs;
    let total = chunked_sum_f64(rows, |r| r.map(|r| -(lp[r * cols + labels[r]] as f64)).sum());
    (total / rows as f64) as f32
}

/// Backward of [`softmax_cross_entropy_forward`]: `dx += g * (softmax - onehot(labels)) / rows`,
/// with `log_probs` the forward's log-softmax and `dx` `[rows, cols]`.
///
/// # Panics
/// If a length does not match, or a label is `>= cols` (naming the row and the label).
pub fn softmax_cross_entropy_backward(
    log_probs: &[f32],
    rows: usize,
    cols: usize,
    labels: &[usize],
    g: f32,
    dx: &mut [f32],
) {
    let op = "softmax_cross_entropy_backward";
    check_rows(op, "log_probs", log_probs.len(), rows, cols);
    check_rows(op, "dx", dx.len(), rows, cols);
    check_labels(op, rows, cols, labels);
    let scale = (g as f64 / rows as f64) as f32;
    let rb = row_block(cols);
    for_each_block_mut(dx, rb * cols, rows * cols, |b, d| {
        for (i, d) in d.chunks_exact_mut(cols).enumerate() {
            let r = b * rb + i;
            for (d, &lp) in d.iter_mut().zip(&log_probs[r * cols..(r + 1) * cols]) {
                *d += scale * lp.exp();
            }
            d[labels[r]] -= scale;
        }
    });
}

/// The options of [`softmax_cross_entropy_with_forward`], PyTorch's arguments of
/// `F.cross_entropy`: `CrossEntropy { ignore_index: Some(0), ..Default::default() }`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropy {
    /// Rows whose target equals this id contribute nothing and are left out of the mean
    /// (torch's `ignore_index`; torch's default -100 never matches, here `None`). When every
    /// row is ignored the mean is NaN (0 / 0), as in torch, and the gradient is zero.
    pub ignore_index: Option<usize>,
    /// `eps` in `[0, 1]`: the target distribution is `(1 - eps) onehot + eps / V` (torch's
    /// `label_smoothing`; default 0, plain cross-entropy).
    pub label_smoothing: f32,
    /// Sum or mean over the rows that are not ignored (torch's `reduction`; default mean).
    pub reduction: Reduction,
}

impl CrossEntropy {
    /// Checks the options and the labels (each below `cols` unless ignored); returns the
    /// number of rows that count.
    fn check(&self, op: &str, rows: usize, cols: usize, labels: &[usize]) -> usize {
        let eps = self.label_smoothing;
        assert!((0.0..=1.0).contains(&eps), "{op}: label_smoothing must be in [0, 1], got {eps}");
        assert_eq!(labels.len(), rows, "{op}: {} labels for {rows} rows", labels.len());
        let mut counted = 0;
        for (r, &l) in labels.iter().enumerate() {
            if Some(l) == self.ignore_index {
                continue;
            }
            assert!(l < cols, "{op}: label {l} at row {r} is out of range for {cols} classes");
            counted += 1;
        }
        counted
    }
}

/// Softmax cross-entropy of `logits` (`[rows, cols]`) against `labels` (`[rows]`) with the
/// options of torch's `F.cross_entropy` (ignored rows, label smoothing, sum or mean); writes
/// the log-softmax into `log_probs` for the backward. A counted row with label `t` adds
/// `-(1 - eps) log_probs[t] - eps / cols * sum(log_probs)`.
///
/// # Panics
/// If a length does not match, `label_smoothing` is outside `[0, 1]`, or a label that is not
/// ignored is `>= cols`.
pub fn softmax_cross_entropy_with_forward(
    logits: &[f32],
    rows: usize,
    cols: usize,
    labels: &[usize],
    opts: &CrossEntropy,
    log_probs: &mut [f32],
) -> f32 {
    let op = "softmax_cross_entropy_with_forward";
    check_rows(op, "logits", logits.len(), rows, cols);
    check_rows(op, "log_probs", log_probs.len(), rows, cols);
    let counted = opts.check(op, rows, cols, labels);
    log_softmax_rows(logits, rows, cols, log_probs);
    let lp = &*log_probs;
    let eps = opts.label_smoothing as f64;
    let row_loss = |r: usize| {
        if Some(labels[r]) == opts.ignore_index {
            return 0.0;
        }
        let row = &lp[r * cols..(r + 1) * cols];
        let nll = -(row[labels[r]] as f64);
        // The smoothing term is skipped at eps = 0, so that a -inf log-probability elsewhere
        // in the row cannot turn 0 * inf into NaN.
        if eps == 0.0 {
            nll
        } else {
            (1.0 - eps) * nll - eps / cols as f64 * row.iter().fold(0.0f64, |a, &v| a + v as f64)
        }
    };
    let total = chunked_sum_f64(rows, |r| r.map(row_loss).sum());
    (total * opts.reduction.factor(counted)) as f32
}

/// Backward of [`softmax_cross_entropy_with_forward`]: for each counted row, `dx += g * f *
/// (softmax - (1 - eps) onehot(label) - eps / cols)`, `f` being 1 for a sum and one over the
/// counted rows for a mean; ignored rows get nothing.
///
/// # Panics
/// As the forward.
pub fn softmax_cross_entropy_with_backward(
    log_probs: &[f32],
    rows: usize,
    cols: usize,
    labels: &[usize],
    opts: &CrossEntropy,
    g: f32,
    dx: &mut [f32],
) {
    let op = "softmax_cross_entropy_with_backward";
    check_rows(op, "log_probs", log_probs.len(), rows, cols);
    check_rows(op, "dx", dx.len(), rows, cols);
    let counted = opts.check(op, rows, cols, labels);
    if counted == 0 {
        return;
    }
    let scale = (g as f64 * opts.reduction.factor(counted)) as f32;
    let eps = opts.label_smoothing;
    let (hit, spread) = (scale * (1.0 - eps), scale * eps / cols as f32);
    let rb = row_block(cols);
    for_each_block_mut(dx, rb * cols, rows * cols, |b, d| {
        for (i, d) in d.chunks_exact_mut(cols).enumerate() {
            let r = b * rb + i;
            if Some(labels[r]) == opts.ignore_index {
                continue;
            }
            for (d, &lp) in d.iter_mut().zip(&log_probs[r * cols..(r + 1) * cols]) {
                *d += scale * lp.exp() - spread;
            }
            d[labels[r]] -= hit;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Binary cross-entropy with logits
// ---------------------------------------------------------------------------------------------

/// Binary cross-entropy between `sigmoid(logits)` and `targets` (same length, any shape,
/// targets in `[0, 1]`), reduced by `reduction` (Mean over all elements, as in torch).
///
/// Uses the stable form `max(x, 0) - x*t + log1p(exp(-|x|))`, finite for any finite logit.
///
/// # Panics
/// If `logits.len() != targets.len()`.
pub fn bce_with_logits_forward(logits: &[f32], targets: &[f32], reduction: Reduction) -> f32 {
    let op = "bce_with_logits_forward";
    check_same(op, ["logits", "targets"], logits.len(), targets.len());
    let total = chunked_sum_f64(logits.len(), |r| {
        let mut sum = 0.0;
        let mut tails = [0.0f32; 256];
        for (xs, ts) in logits[r.clone()].chunks(tails.len()).zip(targets[r].chunks(tails.len())) {
            // The softplus tail lies in [0, ln 2], so f32 is accurate enough for it; it is the
            // costly part, computed in a loop of its own so that it vectorises.
            vecmath::softplus_tail_into(xs, &mut tails[..xs.len()]);
            // The possibly cancelling linear part, in f64.
            sum = xs.iter().zip(ts).zip(&tails).fold(sum, |acc, ((&x, &t), &tail)| {
                let (x, t) = (x as f64, t as f64);
                acc + (x.max(0.0) - x * t + tail as f64)
            });
        }
        sum
    });
    (total * reduction.factor(logits.len())) as f32
}

/// Backward of [`bce_with_logits_forward`]: `dx += g * (sigmoid(logits) - targets)`, divided
/// by the number of elements for [`Reduction::Mean`]; `dx` has the length of `logits`.
///
/// # Panics
/// If the three lengths differ.
pub fn bce_with_logits_backward(
    logits: &[f32],
    targets: &[f32],
    reduction: Reduction,
    g: f32,
    dx: &mut [f32],
) {
    let op = "bce_with_logits_backward";
    check_same(op, ["logits", "targets"], logits.len(), targets.len());
    check_same(op, ["logits", "dx"], logits.len(), dx.len());
    let scale = (g as f64 * reduction.factor(logits.len())) as f32;
    for_each_chunk_mut(dx, |c, d| {
        let range = c * CHUNK..c * CHUNK + d.len();
        vecmath::add_scaled_sigmoid_minus(&logits[range.clone()], &targets[range], scale, d);
    });
}

// ---------------------------------------------------------------------------------------------
// Mean squared error
// ---------------------------------------------------------------------------------------------

/// Squared error `sum((pred - target)^2)` over all elements (same length, any shape), divided
/// by the number of elements for [`Reduction::Mean`].
///
/// # Panics
/// If `pred.len() != target.len()`.
pub fn mse_forward(pred: &[f32], target: &[f32], reduction: Reduction) -> f32 {
    check_same("mse_forward", ["pred", "target"], pred.len(), target.len());
    let total = chunked_sum_f64(pred.len(), |r| {
        pred[r.clone()].iter().zip(&target[r]).map(|(&p, &t)| (p as f64 - t as f64).powi(2)).sum()
    });
    (total * reduction.factor(pred.len())) as f32
}

/// Backward of [`mse_forward`]: `dpred += g * 2 * (pred - target)`, divided by the number of
/// elements for [`Reduction::Mean`].
///
/// # Panics
/// If the three lengths differ.
pub fn mse_backward(pred: &[f32], target: &[f32], reduction: Reduction, g: f32, dpred: &mut [f32]) {
    check_same("mse_backward", ["pred", "target"], pred.len(), target.len());
    check_same("mse_backward", ["pred", "dpred"], pred.len(), dpred.len());
    let scale = (2.0 * g as f64 * reduction.factor(pred.len())) as f32;
    accumulate(dpred, |i| scale * (pred[i] - target[i]));
}

// ---------------------------------------------------------------------------------------------
// Gaussian KL divergence (VAE)
// ---------------------------------------------------------------------------------------------

/// `KL(N(mu, exp(logvar)) || N(0, 1)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))` over all
/// elements of `mu` and `logvar` (same length), as in Kingma & Welling's VAE.
///
/// [`Reduction::Mean`] divides by the number of ELEMENTS (batch x latent), which is rarely
/// what a VAE wants: the VAE loss uses [`Reduction::Sum`] and divides by the batch size
/// itself, so the KL is per example, like its summed reconstruction term.
///
/// # Panics
/// If `mu.len() != logvar.len()`.
pub fn gaussian_kl_forward(mu: &[f32], logvar: &[f32], reduction: Reduction) -> f32 {
    check_same("gaussian_kl_forward", ["mu", "logvar"], mu.len(), logvar.len());
    let total = chunked_sum_f64(mu.len(), |r| {
        mu[r.clone()]
            .iter()
            .zip(&logvar[r])
            .map(|(&m, &lv)| {
                let (m, lv) = (m as f64, lv as f64);
                // exp_m1 keeps `exp(lv) - 1 - lv` accurate when logvar is near 0.
                0.5 * (m * m + lv.exp_m1() - lv)
            })
            .sum()
    });
    (total * reduction.factor(mu.len())) as f32
}

/// Backward of [`gaussian_kl_forward`]: `dmu += g * mu` and
/// `dlogvar += g * 0.5 * (exp(logvar) - 1)`, divided by the number of elements for
/// [`Reduction::Mean`].
///
/// # Panics
/// If the four lengths differ.
pub fn gaussian_kl_backward(
    mu: &[f32],
    logvar: &[f32],
    reduction: Reduction,
    g: f32,
    dmu: &mut [f32],
    dlogvar: &mut [f32],
) {
    let op = "gaussian_kl_backward";
    check_same(op, ["mu", "logvar"], mu.len(), logvar.len());
    check_same(op, ["mu", "dmu"], mu.len(), dmu.len());
    check_same(op, ["logvar", "dlogvar"], logvar.len(), dlogvar.len());
    let scale = (g as f64 * reduction.factor(mu.len())) as f32;
    accumulate(dmu, |i| scale * mu[i]);
    accumulate(dlogvar, |i| scale * 0.5 * logvar[i].exp_m1());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;
    use crate::testing::{assert_par_eq_serial, bits, close, randn};
    use rand::Rng as _;

    fn uniform01(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = seeded(seed);
        (0..n).map(|_| rng.random::<f32>()).collect()
    }

    fn labels(rows: usize, cols: usize, seed: u64) -> Vec<usize> {
        let mut rng = seeded(seed);
        (0..rows).map(|_| rng.random_range(0..cols)).collect()
    }

    /// Central finite differences of `loss` at `x`, in f64 on the f32 loss values; the step
    /// is measured after rounding `x +- h` to f32.
    fn finite_diff(x: &[f32], h: f32, loss: impl Fn(&[f32]) -> f32) -> Vec<f64> {
        (0..x.len())
            .map(|i| {
                let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
                xp[i] += h;
                xm[i] -= h;
                (loss(&xp) as f64 - loss(&xm) as f64) / (xp[i] as f64 - xm[i] as f64)
            })
            .collect()
    }

    /// Asserts `got - start == g * fd` elementwise (the kernel accumulated onto `start`).
    fn assert_grad(got: &[f32], start: &[f32], g: f32, fd: &[f64], tol: f64, what: &str) {
        for i in 0..got.len() {
            let kernel = got[i] as f64 - start[i] as f64;
            let want = g as f64 * fd[i];
            assert!((kernel - want).abs() < tol, "{what}[{i}]: kernel {kernel}, fd {want}");
        }
    }

    const ROW_SHAPES: &[(usize, usize)] = &[(1, 1), (1, 7), (1, 10), (3, 1), (3, 7), (3, 10)];

    // ---- softmax cross-entropy ----

    fn naive_cross_entropy(x: &[f32], rows: usize, cols: usize, labels: &[usize]) -> f64 {
        let mut total = 0.0;
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            total += lse - row[labels[r]] as f64;
        }
        total / rows as f64
    }

    #[test]
    fn cross_entropy_forward_matches_reference() {
        for &(rows, cols) in ROW_SHAPES {
            let x: Vec<f32> = randn(rows * cols, 10 + cols as u64).iter().map(|v| v * 3.0).collect();
            let y = labels(rows, cols, 11);
            let mut lp = vec![0.0; rows * cols];
            let loss = softmax_cross_entropy_forward(&x, rows, cols, &y, &mut lp);
            let want = naive_cross_entropy(&x, rows, cols, &y);
            assert!(close(loss as f64, want, 1e-6), "[{rows}, {cols}]: {loss} vs {want}");
            // The stored log-probabilities are the log-softmax.
            for row in lp.chunks(cols) {
                let s: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
                assert!(close(s, 1.0, 1e-6));
            }
        }
    }

    #[test]
    fn cross_entropy_single_class_is_zero() {
        let mut lp = [1.0; 3];
        assert_eq!(softmax_cross_entropy_forward(&[5.0, -2.0, 0.0], 3, 1, &[0, 0, 0], &mut lp), 0.0);
        let mut dx = [0.0; 3];
        softmax_cross_entropy_backward(&lp, 3, 1, &[0, 0, 0], 1.0, &mut dx);
        assert_eq!(dx, [0.0; 3]);
    }

    #[test]
    fn cross_entropy_extreme_logits_are_finite() {
        let x = [1e4, -1e4, 0.0, -1e4, 1e4, 1e4];
        let mut lp = [0.0; 6];
        // Row 0 is right with a margin of 1e4; row 1 picks a class 2e4 below the top two.
        let loss = softmax_cross_entropy_forward(&x, 2, 3, &[0, 0], &mut lp);
        let want = (0.0 + 2e4 + 2f64.ln()) / 2.0;
        assert!(loss.is_finite() && close(loss as f64, want, 1e-6), "{loss} vs {want}");
        let mut dx = [0.0; 6];
        softmax_cross_entropy_backward(&lp, 2, 3, &[0, 0], 1.0, &mut dx);
        assert!(dx.iter().all(|v| v.is_finite()), "{dx:?}");
        assert_eq!(dx, [0.0, 0.0, 0.0, -0.5, 0.25, 0.25]);
    }

    #[test]
    fn cross_entropy_backward_matches_reference_and_accumulates() {
        for &(rows, cols) in ROW_SHAPES {
            let x = randn(rows * cols, 20 + cols as u64);
            let y = labels(rows, cols, 21);
            let mut lp = vec![0.0; rows * cols];
            softmax_cross_entropy_forward(&x, rows, cols, &y, &mut lp);
            let start = randn(rows * cols, 22);
            let mut dx = start.clone();
            softmax_cross_entropy_backward(&lp, rows, cols, &y, 0.7, &mut dx);
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
                for (c, &v) in row.iter().enumerate() {
                    let i = r * cols + c;
                    let onehot = if c == y[r] { 1.0 } else { 0.0 };
                    let want = start[i] as f64 + 0.7 * ((v as f64).exp() / z - onehot) / rows as f64;
                    assert!(close(dx[i] as f64, want, 1e-6), "[{rows}, {cols}] dx[{i}]");
                }
            }
        }
    }

    #[test]
    fn cross_entropy_backward_matches_finite_differences() {
        for &(rows, cols) in &[(1, 7), (3, 10), (3, 1)] {
            let x = randn(rows * cols, 30 + cols as u64);
            let y = labels(rows, cols, 31);
            let loss =
                |x: &[f32]| softmax_cross_entropy_forward(x, rows, cols, &y, &mut vec![0.0; rows * cols]);
            let fd = finite_diff(&x, 1e-2, loss);
            let mut lp = vec![0.0; rows * cols];
            softmax_cross_entropy_forward(&x, rows, cols, &y, &mut lp);
            let start = vec![0.25; rows * cols];
            let mut dx = start.clone();
            softmax_cross_entropy_backward(&lp, rows, cols, &y, 1.5, &mut dx);
            assert_grad(&dx, &start, 1.5, &fd, 1e-3, "cross-entropy dx");
        }
    }

    #[test]
    fn cross_entropy_parallel_equals_serial_bitwise() {
        for (rows, cols) in [(3, 10), (3 * (CHUNK / 10) + 7, 10), (2 * CHUNK + 1, 1)] {
            let x: Vec<f32> = randn(rows * cols, 40).iter().map(|v| v * 5.0).collect();
            let y = labels(rows, cols, 41);
            let (loss, lp) = assert_par_eq_serial(|| {
                let mut lp = vec![0.0; rows * cols];
                let l = softmax_cross_entropy_forward(&x, rows, cols, &y, &mut lp);
                (l.to_bits(), bits(&lp))
            });
            assert!(f32::from_bits(loss).is_finite());
            let lp: Vec<f32> = lp.into_iter().map(f32::from_bits).collect();
            assert_par_eq_serial(|| {
                let mut dx = vec![0.1; rows * cols];
                softmax_cross_entropy_backward(&lp, rows, cols, &y, 0.9, &mut dx);
                bits(&dx)
            });
        }
    }

    #[test]
    #[should_panic(
        expected = "softmax_cross_entropy_forward: label 7 at row 2 is out of range for 7 classes"
    )]
    fn cross_entropy_forward_label_out_of_range_panics() {
        softmax_cross_entropy_forward(&[0.0; 21], 3, 7, &[0, 6, 7], &mut [0.0; 21]);
    }

    #[test]
    #[should_panic(
        expected = "softmax_cross_entropy_backward: label 10 at row 0 is out of range for 10 classes"
    )]
    fn cross_entropy_backward_label_out_of_range_panics() {
        softmax_cross_entropy_backward(&[0.0; 10], 1, 10, &[10], 1.0, &mut [0.0; 10]);
    }

    #[test]
    #[should_panic(expected = "softmax_cross_entropy_forward: 2 labels for 3 rows")]
    fn cross_entropy_label_count_mismatch_panics() {
        softmax_cross_entropy_forward(&[0.0; 21], 3, 7, &[0, 1], &mut [0.0; 21]);
    }

    #[test]
    #[should_panic(expected = "softmax_cross_entropy_forward: logits has 20 elements, expected [3, 7]")]
    fn cross_entropy_logits_length_mismatch_panics() {
        softmax_cross_entropy_forward(&[0.0; 20], 3, 7, &[0, 1, 2], &mut [0.0; 21]);
    }

    // ---- softmax cross-entropy with options ----

    /// Naive loss with options, in f64: each counted row adds -sum(q log p) with the target
    /// distribution q = (1 - eps) onehot + eps / cols.
    fn naive_cross_entropy_with(
        x: &[f32],
        rows: usize,
        cols: usize,
        labels: &[usize],
        o: &CrossEntropy,
    ) -> f64 {
        let (mut total, mut counted) = (0.0, 0);
        for r in 0..rows {
            if Some(labels[r]) == o.ignore_index {
                continue;
            }
            counted += 1;
            let row = &x[r * cols..(r + 1) * cols];
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            let eps = o.label_smoothing as f64;
            for (c, &v) in row.iter().enumerate() {
                let q = eps / cols as f64 + if c == labels[r] { 1.0 - eps } else { 0.0 };
                total -= q * (v as f64 - lse);
            }
        }
        match o.reduction {
            Reduction::Sum => total,
            Reduction::Mean => total / counted as f64,
        }
    }

    fn options() -> Vec<CrossEntropy> {
        let mut all = vec![];
        for ignore_index in [None, Some(1)] {
            for label_smoothing in [0.0, 0.1, 1.0] {
                for reduction in [Reduction::Sum, Reduction::Mean] {
                    all.push(CrossEntropy { ignore_index, label_smoothing, reduction });
                }
            }
        }
        all
    }

    #[test]
    fn cross_entropy_with_matches_reference_and_finite_differences() {
        for &(rows, cols) in &[(1, 7), (3, 10), (5, 3), (3, 1)] {
            let x: Vec<f32> = randn(rows * cols, 130 + cols as u64).iter().map(|v| v * 2.0).collect();
            let mut y = labels(rows, cols, 131);
            if rows > 1 && cols > 1 {
                y[0] = 1; // at least one ignored row for ignore_index = Some(1)
            }
            for o in options() {
                let what = format!("[{rows}, {cols}] {o:?}");
                let mut lp = vec![0.0; rows * cols];
                let loss = softmax_cross_entropy_with_forward(&x, rows, cols, &y, &o, &mut lp);
                let want = naive_cross_entropy_with(&x, rows, cols, &y, &o);
                if want.is_nan() {
                    assert!(loss.is_nan(), "{what}: {loss}");
                    continue;
                }
                assert!(close(loss as f64, want, 1e-6), "{what}: {loss} vs {want}");
                let f = |x: &[f32]| {
                    softmax_cross_entropy_with_forward(x, rows, cols, &y, &o, &mut vec![0.0; rows * cols])
                };
                let fd = finite_diff(&x, 1e-2, f);
                let start = randn(rows * cols, 132);
                let mut dx = start.clone();
                softmax_cross_entropy_with_backward(&lp, rows, cols, &y, &o, 0.7, &mut dx);
                assert_grad(&dx, &start, 0.7, &fd, 2e-3, &what);
            }
        }
    }

    #[test]
    fn cross_entropy_with_defaults_equals_plain_cross_entropy() {
        let (rows, cols) = (6, 9);
        let x = randn(rows * cols, 140);
        let y = labels(rows, cols, 141);
        let (mut a, mut b) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
        let plain = softmax_cross_entropy_forward(&x, rows, cols, &y, &mut a);
        let with = softmax_cross_entropy_with_forward(&x, rows, cols, &y, &CrossEntropy::default(), &mut b);
        assert_eq!(plain.to_bits(), with.to_bits());
        let (mut da, mut db) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
        softmax_cross_entropy_backward(&a, rows, cols, &y, 1.3, &mut da);
        softmax_cross_entropy_with_backward(&b, rows, cols, &y, &CrossEntropy::default(), 1.3, &mut db);
        for (p, q) in da.iter().zip(&db) {
            assert!(close(*p as f64, *q as f64, 1e-7), "{p} vs {q}");
        }
    }

    #[test]
    fn cross_entropy_with_all_ignored_is_nan_for_mean_zero_for_sum_and_zero_gradient() {
        let x = randn(6, 150);
        let mut lp = [0.0; 6];
        let o = CrossEntropy { ignore_index: Some(7), label_smoothing: 0.2, ..Default::default() };
        // Ignored ids may be out of range (torch's -100 convention).
        assert!(softmax_cross_entropy_with_forward(&x, 2, 3, &[7, 7], &o, &mut lp).is_nan());
        let mut dx = [0.25; 6];
        softmax_cross_entropy_with_backward(&lp, 2, 3, &[7, 7], &o, 1.0, &mut dx);
        assert_eq!(dx, [0.25; 6]);
        let sum = CrossEntropy { reduction: Reduction::Sum, ..o };
        assert_eq!(softmax_cross_entropy_with_forward(&x, 2, 3, &[7, 7], &sum, &mut lp), 0.0);
    }

    #[test]
    fn cross_entropy_with_parallel_equals_serial_bitwise() {
        let (rows, cols) = (3 * (CHUNK / 10) + 7, 10);
        let x: Vec<f32> = randn(rows * cols, 160).iter().map(|v| v * 5.0).collect();
        let y = labels(rows, cols, 161);
        let o = CrossEntropy { ignore_index: Some(3), label_smoothing: 0.1, reduction: Reduction::Mean };
        let (_, lp) = assert_par_eq_serial(|| {
            let mut lp = vec![0.0; rows * cols];
            let l = softmax_cross_entropy_with_forward(&x, rows, cols, &y, &o, &mut lp);
            (l.to_bits(), bits(&lp))
        });
        let lp: Vec<f32> = lp.into_iter().map(f32::from_bits).collect();
        assert_par_eq_serial(|| {
            let mut dx = vec![0.1; rows * cols];
            softmax_cross_entropy_with_backward(&lp, rows, cols, &y, &o, 0.9, &mut dx);
            bits(&dx)
        });
    }

    #[test]
    #[should_panic(
        expected = "softmax_cross_entropy_with_forward: label_smoothing must be in [0, 1], got 1.5"
    )]
    fn cross_entropy_with_bad_smoothing_panics() {
        let o = CrossEntropy { label_smoothing: 1.5, ..Default::default() };
        softmax_cross_entropy_with_forward(&[0.0; 6], 2, 3, &[0, 1], &o, &mut [0.0; 6]);
    }

    #[test]
    #[should_panic(
        expected = "softmax_cross_entropy_with_forward: label 3 at row 1 is out of range for 3 classes"
    )]
    fn cross_entropy_with_label_out_of_range_panics() {
        let o = CrossEntropy { ignore_index: Some(0), ..Default::default() };
        softmax_cross_entropy_with_forward(&[0.0; 6], 2, 3, &[0, 3], &o, &mut [0.0; 6]);
    }

    // ---- BCE with logits ----

    fn naive_bce(x: &[f32], t: &[f32], reduction: Reduction) -> f64 {
        let mut total = 0.0;
        for (&x, &t) in x.iter().zip(t) {
            let (x, t) = (x as f64, t as f64);
            let p = 1.0 / (1.0 + (-x).exp());
            total += -(t * p.ln() + (1.0 - t) * (1.0 - p).ln());
        }
        match reduction {
            Reduction::Sum => total,
            Reduction::Mean => total / x.len() as f64,
        }
    }

    #[test]
    fn bce_forward_matches_reference() {
        for (n, seed) in [(1, 50), (7, 51), (10, 52), (21, 53)] {
            let x: Vec<f32> = randn(n, seed).iter().map(|v| v * 3.0).collect();
            let t = uniform01(n, seed + 100);
            for red in [Reduction::Sum, Reduction::Mean] {
                let got = bce_with_logits_forward(&x, &t, red);
                let want = naive_bce(&x, &t, red);
                assert!(close(got as f64, want, 1e-6), "n={n} {red:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn bce_extreme_logits_are_finite_and_exact() {
        let x = [1e4, -1e4, 1e4, -1e4, 0.0];
        let t = [1.0, 0.0, 0.0, 1.0, 0.5];
        let sum = bce_with_logits_forward(&x, &t, Reduction::Sum);
        // Right with huge margin: 0; wrong: 1e4 each; at 0: ln 2.
        let want = 2e4 + 2f64.ln();
        assert!(sum.is_finite() && close(sum as f64, want, 1e-7), "{sum}");
        let mut dx = [0.0; 5];
        bce_with_logits_backward(&x, &t, Reduction::Sum, 1.0, &mut dx);
        assert_eq!(dx, [0.0, 0.0, 1.0, -1.0, 0.0]);
    }

    #[test]
    fn bce_backward_matches_finite_differences() {
        for (n, seed) in [(1, 60), (7, 61), (30, 62)] {
            let x = randn(n, seed);
            let t = uniform01(n, seed + 1);
            for red in [Reduction::Sum, Reduction::Mean] {
                let fd = finite_diff(&x, 1e-2, |x| bce_with_logits_forward(x, &t, red));
                let start = randn(n, seed + 2);
                let mut dx = start.clone();
                bce_with_logits_backward(&x, &t, red, -0.8, &mut dx);
                assert_grad(&dx, &start, -0.8, &fd, 2e-3, &format!("bce dx n={n} {red:?}"));
            }
        }
    }

    #[test]
    fn bce_mean_is_sum_over_n_and_default_is_mean() {
        let x = randn(10, 70);
        let t = uniform01(10, 71);
        let s = bce_with_logits_forward(&x, &t, Reduction::Sum);
        let m = bce_with_logits_forward(&x, &t, Reduction::default());
        assert!(close(m as f64, s as f64 / 10.0, 1e-6));
        assert!(bce_with_logits_forward(&[], &[], Reduction::Mean).is_nan());
        assert_eq!(bce_with_logits_forward(&[], &[], Reduction::Sum), 0.0);
    }

    #[test]
    #[should_panic(expected = "bce_with_logits_forward: logits has 3 elements but targets has 2")]
    fn bce_length_mismatch_panics() {
        bce_with_logits_forward(&[0.0; 3], &[0.0; 2], Reduction::Mean);
    }

    #[test]
    #[should_panic(expected = "bce_with_logits_backward: logits has 3 elements but dx has 4")]
    fn bce_backward_length_mismatch_panics() {
        bce_with_logits_backward(&[0.0; 3], &[0.0; 3], Reduction::Mean, 1.0, &mut [0.0; 4]);
    }

    // ---- MSE ----

    #[test]
    fn mse_forward_and_backward_match_reference() {
        for (n, seed) in [(1, 80), (7, 81), (10, 82)] {
            let p = randn(n, seed);
            let t = randn(n, seed + 1);
            let sum: f64 = p.iter().zip(&t).map(|(&p, &t)| (p as f64 - t as f64).powi(2)).sum();
            assert!(close(mse_forward(&p, &t, Reduction::Sum) as f64, sum, 1e-6));
            assert!(close(mse_forward(&p, &t, Reduction::Mean) as f64, sum / n as f64, 1e-6));
            let start = randn(n, seed + 2);
            let mut d = start.clone();
            mse_backward(&p, &t, Reduction::Mean, 0.5, &mut d);
            for i in 0..n {
                let want = start[i] as f64 + 0.5 * 2.0 * (p[i] as f64 - t[i] as f64) / n as f64;
                assert!(close(d[i] as f64, want, 1e-6), "dpred[{i}]");
            }
        }
    }

    #[test]
    fn mse_backward_matches_finite_differences() {
        let p = randn(7, 90);
        let t = randn(7, 91);
        for red in [Reduction::Sum, Reduction::Mean] {
            let fd = finite_diff(&p, 1e-2, |p| mse_forward(p, &t, red));
            let start = vec![-0.3; 7];
            let mut d = start.clone();
            mse_backward(&p, &t, red, 1.3, &mut d);
            assert_grad(&d, &start, 1.3, &fd, 1e-3, &format!("mse {red:?}"));
        }
    }

    #[test]
    #[should_panic(expected = "mse_forward: pred has 2 elements but target has 3")]
    fn mse_length_mismatch_panics() {
        mse_forward(&[0.0; 2], &[0.0; 3], Reduction::Sum);
    }

    // ---- Gaussian KL ----

    #[test]
    fn gaussian_kl_matches_reference() {
        for (n, seed) in [(1, 100), (7, 101), (30, 102)] {
            let mu = randn(n, seed);
            let lv: Vec<f32> = randn(n, seed + 1).iter().map(|v| v * 0.5).collect();
            let sum: f64 = -0.5
                * mu.iter()
                    .zip(&lv)
                    .map(|(&m, &l)| 1.0 + l as f64 - (m as f64).powi(2) - (l as f64).exp())
                    .sum::<f64>();
            assert!(close(gaussian_kl_forward(&mu, &lv, Reduction::Sum) as f64, sum, 1e-6));
            let mean = gaussian_kl_forward(&mu, &lv, Reduction::Mean) as f64;
            assert!(close(mean, sum / n as f64, 1e-6));
        }
    }

    #[test]
    fn gaussian_kl_is_zero_at_standard_normal_and_positive_elsewhere() {
        assert_eq!(gaussian_kl_forward(&[0.0; 5], &[0.0; 5], Reduction::Sum), 0.0);
        let (mut dmu, mut dlv) = ([0.0; 5], [0.0; 5]);
        gaussian_kl_backward(&[0.0; 5], &[0.0; 5], Reduction::Sum, 1.0, &mut dmu, &mut dlv);
        assert_eq!((dmu, dlv), ([0.0; 5], [0.0; 5]));
        // A tiny logvar: KL = 0.5 * (e^lv - 1 - lv) ~ lv^2 / 4, lost without exp_m1.
        let kl = gaussian_kl_forward(&[0.0], &[1e-4], Reduction::Sum) as f64;
        assert!(close(kl, 2.5e-9, 1e-4) && kl > 0.0, "{kl}");
        assert!(gaussian_kl_forward(&[0.5, -2.0], &[-1.0, 1.0], Reduction::Mean) > 0.0);
    }

    #[test]
    fn gaussian_kl_backward_matches_finite_differences() {
        let n = 7;
        let mu = randn(n, 110);
        let lv: Vec<f32> = randn(n, 111).iter().map(|v| v * 0.5).collect();
        for red in [Reduction::Sum, Reduction::Mean] {
            let fd_mu = finite_diff(&mu, 1e-2, |m| gaussian_kl_forward(m, &lv, red));
            let fd_lv = finite_diff(&lv, 1e-2, |l| gaussian_kl_forward(&mu, l, red));
            let (s_mu, s_lv) = (randn(n, 112), randn(n, 113));
            let (mut dmu, mut dlv) = (s_mu.clone(), s_lv.clone());
            gaussian_kl_backward(&mu, &lv, red, 0.6, &mut dmu, &mut dlv);
            assert_grad(&dmu, &s_mu, 0.6, &fd_mu, 1e-3, &format!("kl dmu {red:?}"));
            assert_grad(&dlv, &s_lv, 0.6, &fd_lv, 1e-3, &format!("kl dlogvar {red:?}"));
        }
    }

    #[test]
    #[should_panic(expected = "gaussian_kl_backward: logvar has 3 elements but dlogvar has 2")]
    fn gaussian_kl_backward_length_mismatch_panics() {
        gaussian_kl_backward(&[0.0; 3], &[0.0; 3], Reduction::Sum, 1.0, &mut [0.0; 3], &mut [0.0; 2]);
    }

    // ---- determinism of the elementwise losses ----

    #[test]
    fn elementwise_losses_parallel_equal_serial_bitwise() {
        let n = 5 * CHUNK + 3;
        let x: Vec<f32> = randn(n, 120).iter().map(|v| v * 4.0).collect();
        let t = uniform01(n, 121);
        for red in [Reduction::Sum, Reduction::Mean] {
            assert_par_eq_serial(|| {
                let mut dx = vec![0.2; n];
                bce_with_logits_backward(&x, &t, red, 1.1, &mut dx);
                (bce_with_logits_forward(&x, &t, red).to_bits(), bits(&dx))
            });
            assert_par_eq_serial(|| {
                let mut d = vec![0.2; n];
                mse_backward(&x, &t, red, 1.1, &mut d);
                (mse_forward(&x, &t, red).to_bits(), bits(&d))
            });
            assert_par_eq_serial(|| {
                let (mut dmu, mut dlv) = (vec![0.2; n], vec![0.2; n]);
                gaussian_kl_backward(&t, &x, red, 1.1, &mut dmu, &mut dlv);
                (gaussian_kl_forward(&t, &x, red).to_bits(), bits(&dmu), bits(&dlv))
            });
        }
    }
}
