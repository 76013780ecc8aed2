//! Normalizations, each forward beside its backward: layer norm and RMS norm over the last
//! `cols` values of each row, and batch norm over every axis but the channel.
//!
//! All three compute `xhat` (the input centred and scaled to unit variance, or only scaled for
//! RMS norm) and then `y = xhat * weight + bias`. Their backwards share one formula: with
//! `g = dy * weight` and the means taken over the `n` values that were normalized together,
//!
//! ```text
//! dx = rstd * (g - mean(g) - xhat * mean(g * xhat))     (layer and batch norm)
//! dx = rstd * (g - xhat * mean(g * xhat))               (RMS norm: nothing was subtracted)
//! dweight = sum(dy * xhat),  dbias = sum(dy)            (over rows / over batch and space)
//! ```
//!
//! Statistics are accumulated in `f64`, so that a row of large values with a small spread
//! (where `E[x^2] - E[x]^2` would cancel) keeps its digits; the two-pass mean-then-variance
//! order does the rest.
//!
//! Row kernels split their rows over rayon above the usual work threshold; every row is
//! computed by one thread, whole, so the result does not depend on the thread count. The
//! weight and bias gradients are sums over rows, each column summed in row order by one
//! thread (blocks of columns split over threads).

use rayon::prelude::*;

use super::parallel::should_parallelize;

/// Rows per rayon task: fixed, so the split never depends on the thread count.
const ROWS_PER_TASK: usize = 64;

/// Runs `f(row_index, x_row, out_row)` on every row, in parallel when there is enough work.
fn for_each_row(
    x: &[f32],
    cols: usize,
    out: &mut [f32],
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send,
) {
    if cols == 0 {
        return;
    }
    let task = ROWS_PER_TASK * cols;
    let run = |(t, (xs, ys)): (usize, (&[f32], &mut [f32]))| {
        for (r, (x_row, y_row)) in xs.chunks_exact(cols).zip(ys.chunks_exact_mut(cols)).enumerate() {
            f(t * ROWS_PER_TASK + r, x_row, y_row);
        }
    };
    if should_parallelize(x.len()) {
        x.par_chunks(task).zip(out.par_chunks_mut(task)).enumerate().for_each(run);
    } else {
        x.chunks(task).zip(out.chunks_mut(task)).enumerate().for_each(run);
    }
}

/// The sum of `f(v)` over `values` in `f64`, kept in 8 partial sums (element `i` goes to sum
/// `i % 8`, the sums are added in order at the end): a fixed order, so the result does not
/// depend on the CPU or the threads, and unlike one running sum the loop vectorises.
#[inline(always)]
fn sum8(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut partial = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for (p, &v) in partial.iter_mut().zip(c) {
            *p += f(v);
        }
    }
    partial.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f64>()
}

/// Mean and `1 / sqrt(var + eps)` (biased variance) of one row.
fn mean_rstd(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f64;
    let mean = sum8(row, f64::from) / n;
    let var = sum8(row, |v| (v as f64 - mean).powi(2)) / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

fn check_len(op: &str, what: &str, len: usize, want: usize) {
    assert_eq!(len, want, "{op}: {what} has {len} values, want {want}");
}

// ----- layer norm ------------------------------------------------------------------------

/// Layer norm of each row of `x` (`[rows, cols]`):
/// `y = (x - mean) / sqrt(var + eps) * weight + bias` with the biased variance of the row
/// (PyTorch's `F.layer_norm`). Writes each row's mean and `rstd = 1 / sqrt(var + eps)` for
/// the backward.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward(
    x: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    cols: usize,
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    check_len("layer_norm_forward", "y", y.len(), x.len());
    check_len("layer_norm_forward", "mean", mean.len(), rows);
    check_len("layer_norm_forward", "rstd", rstd.len(), rows);
    if cols == 0 {
        return;
    }
    // Statistics and output of a row together, on the thread that owns the row (the
    // statistics were a serial pass before the parallel one).
    type Task<'a> = (((&'a [f32], &'a mut [f32]), &'a mut [f32]), &'a mut [f32]);
    let run = |(((xs, ys), ms), rs): Task<'_>| {
        let rows = xs.chunks_exact(cols).zip(ys.chunks_exact_mut(cols));
        for (((x_row, y_row), m), s) in rows.zip(ms.iter_mut()).zip(rs.iter_mut()) {
            (*m, *s) = mean_rstd(x_row, eps);
            let (m, s) = (*m, *s);
            match (weight, bias) {
                // The usual case, without an Option per element, so that the loop vectorises.
                (Some(w), Some(b)) => {
                    for ((yv, &xv), (&wv, &bv)) in y_row.iter_mut().zip(x_row).zip(w.iter().zip(b)) {
                        *yv = (xv - m) * s * wv + bv;
                    }
                }
                _ => {
                    for (j, (yv, &xv)) in y_row.iter_mut().zip(x_row).enumerate() {
                        let xhat = (xv - m) * s;
                        *yv = xhat * weight.map_or(1.0, |w| w[j]) + bias.map_or(0.0, |b| b[j]);
                    }
                }
            }
        }
    };
    let (x, y) = (&x[..rows * cols], &mut y[..rows * cols]);
    let task = ROWS_PER_TASK * cols;
    if should_parallelize(x.len()) {
        let chunks = x.par_chunks(task).zip(y.par_chunks_mut(task));
        chunks.zip(mean.par_chunks_mut(ROWS_PER_TASK)).zip(rstd.par_chunks_mut(ROWS_PER_TASK)).for_each(run);
    } else {
        let chunks = x.chunks(task).zip(y.chunks_mut(task));
        chunks.zip(mean.chunks_mut(ROWS_PER_TASK)).zip(rstd.chunks_mut(ROWS_PER_TASK)).for_each(run);
    }
}

/// The backward of [`layer_norm_forward`]: accumulates `dx` (when given) and the sums over
/// rows `dweight += sum(dy * xhat)`, `dbias += sum(dy)` (when given).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &[f32],
    weight: Option<&[f32]>,
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    cols: usize,
    dx: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) {
    check_len("layer_norm_backward", "dy", dy.len(), x.len());
    if let Some(dx) = dx {
        check_len("layer_norm_backward", "dx", dx.len(), x.len());
        row_norm_input_grad(x, weight, mean, rstd, dy, cols, true, dx);
    }
    affine_grads(x, mean, rstd, dy, cols, dweight, dbias);
}

/// `dx += rstd * (g - [mean(g)] - xhat * mean(g * xhat))` row by row, `g = dy * weight`;
/// `centred` says whether the forward subtracted the mean (layer norm) or not (RMS norm).
#[allow(clippy::too_many_arguments)]
fn row_norm_input_grad(
    x: &[f32],
    weight: Option<&[f32]>,
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    cols: usize,
    centred: bool,
    dx: &mut [f32],
) {
    let n = cols as f64;
    let ones;
    let weight = match weight {
        Some(w) => w,
        None => {
            ones = vec![1.0; cols];
            &ones
        }
    };
    // dy is passed through the row split with x, zipped by row index.
    for_each_row(x, cols, dx, |r, x_row, dx_row| {
        let dy_row = &dy[r * cols..(r + 1) * cols];
        let (m, s) = (if centred { mean[r] } else { 0.0 }, rstd[r]);
        // Both sums in 8 partial f64 sums each, as `sum8` keeps them (vectorised, fixed order).
        let (mut part_g, mut part_gx) = ([0.0f64; 8], [0.0f64; 8]);
        let (mut sum_g, mut sum_g_xhat) = (0.0f64, 0.0f64);
        let body = cols - cols % 8;
        let blocks = x_row[..body].chunks_exact(8).zip(dy_row[..body].chunks_exact(8));
        for ((xs, ds), ws) in blocks.zip(weight[..body].chunks_exact(8)) {
            for (l, ((&xv, &d), &wv)) in xs.iter().zip(ds).zip(ws).enumerate() {
                let g = d * wv;
                part_g[l] += g as f64;
                part_gx[l] += (g * (xv - m) * s) as f64;
            }
        }
        for j in body..cols {
            let g = dy_row[j] * weight[j];
            sum_g += g as f64;
            sum_g_xhat += (g * (x_row[j] - m) * s) as f64;
        }
        let sum_g = part_g.iter().sum::<f64>() + sum_g;
        let sum_g_xhat = part_gx.iter().sum::<f64>() + sum_g_xhat;
        let mean_g = if centred { (sum_g / n) as f32 } else { 0.0 };
        let mean_g_xhat = (sum_g_xhat / n) as f32;
        for ((dxv, &xv), (&d, &wv)) in dx_row.iter_mut().zip(x_row).zip(dy_row.iter().zip(weight)) {
            let g = d * wv;
            let xhat = (xv - m) * s;
            *dxv += s * (g - mean_g - xhat * mean_g_xhat);
        }
    });
}

/// Columns per task of [`affine_grads`]: two cache lines of each row.
const COLUMNS_PER_TASK: usize = 32;

/// `dweight += sum over rows of dy * xhat`, `dbias += sum over rows of dy`, each column summed
/// in row order (bit-reproducible); blocks of columns go to different threads when there is
/// enough work. `mean` is all zeros for RMS norm's uncentred `xhat`.
fn affine_grads(
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    cols: usize,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) {
    if cols == 0 {
        return;
    }
    let parallel = should_parallelize(x.len()) && cols > COLUMNS_PER_TASK;
    if let Some(dw) = dweight {
        check_len("norm backward", "dweight", dw.len(), cols);
        let block = |(t, dw): (usize, &mut [f32])| {
            let c0 = t * COLUMNS_PER_TASK;
            for (r, (x_row, dy_row)) in x.chunks_exact(cols).zip(dy.chunks_exact(cols)).enumerate() {
                let (m, s) = (mean[r], rstd[r]);
                for ((w, &xv), &d) in dw.iter_mut().zip(&x_row[c0..]).zip(&dy_row[c0..]) {
                    *w += d * (xv - m) * s;
                }
            }
        };
        if parallel {
            dw.par_chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(block);
        } else {
            dw.chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(block);
        }
    }
    if let Some(db) = dbias {
        check_len("norm backward", "dbias", db.len(), cols);
        let block = |(t, db): (usize, &mut [f32])| {
            let c0 = t * COLUMNS_PER_TASK;
            for dy_row in dy.chunks_exact(cols) {
                for (b, &d) in db.iter_mut().zip(&dy_row[c0..]) {
                    *b += d;
                }
            }
        };
        if parallel {
            db.par_chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(block);
        } else {
            db.chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(block);
        }
    }
}

// ----- RMS norm --------------------------------------------------------------------------

/// RMS norm of each row of `x` (`[rows, cols]`): `y = x / sqrt(mean(x^2) + eps) * weight`
/// (PyTorch's `F.rms_norm`). Writes each row's `rstd = 1 / sqrt(mean(x^2) + eps)`.
pub fn rms_norm_forward(
    x: &[f32],
    weight: Option<&[f32]>,
    cols: usize,
    eps: f32,
    y: &mut [f32],
    rstd: &mut [f32],
) {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    check_len("rms_norm_forward", "y", y.len(), x.len());
    check_len("rms_norm_forward", "rstd", rstd.len(), rows);
    for (r, row) in x.chunks_exact(cols.max(1)).enumerate().take(rows) {
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
        rstd[r] = (1.0 / (ms + eps as f64).sqrt()) as f32;
    }
    let rstd = &*rstd;
    for_each_row(x, cols, y, |r, x_row, y_row| {
        for (j, (yv, &xv)) in y_row.iter_mut().zip(x_row).enumerate() {
            *yv = xv * rstd[r] * weight.map_or(1.0, |w| w[j]);
        }
    });
}

/// The backward of [`rms_norm_forward`]: accumulates `dx` and `dweight += sum(dy * xhat)`
/// (each when given).
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward(
    x: &[f32],
    weight: Option<&[f32]>,
    rstd: &[f32],
    dy: &[f32],
    cols: usize,
    dx: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
) {
    check_len("rms_norm_backward", "dy", dy.len(), x.len());
    let zeros = vec![0.0; rstd.len()];
    if let Some(dx) = dx {
        check_len("rms_norm_backward", "dx", dx.len(), x.len());
        row_norm_input_grad(x, weight, &zeros, rstd, dy, cols, false, dx);
    }
    affine_grads(x, &zeros, rstd, dy, cols, dweight, None);
}

// ----- batch norm ------------------------------------------------------------------------

/// The layout batch norm sees: `x` is `[batch, channels, inner]` (`inner` the product of the
/// spatial axes, 1 for `[N, C]` input); each channel is normalized over `batch * inner` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    /// Leading axis (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// Values per channel per example (H*W, L, or 1).
    pub inner: usize,
}

impl ChannelLayout {
    /// The values of channel `c`, in memory order.
    fn channel<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = f32> + Clone + 'a {
        let (cs, inner) = (self.channels * self.inner, self.inner);
        (0..self.batch).flat_map(move |b| x[b * cs + c * inner..b * cs + (c + 1) * inner].iter().copied())
    }

    /// Number of values per channel.
    pub fn count(&self) -> usize {
        self.batch * self.inner
    }
}

/// Per-channel mean and biased variance of `x` (`mean`, `var` have `channels` values).
pub fn batch_norm_stats(x: &[f32], layout: ChannelLayout, mean: &mut [f32], var: &mut [f32]) {
    let n = layout.count() as f64;
    for c in 0..layout.channels {
        let m = layout.channel(x, c).map(f64::from).sum::<f64>() / n;
        mean[c] = m as f32;
        var[c] = (layout.channel(x, c).map(|v| (v as f64 - m).powi(2)).sum::<f64>() / n) as f32;
    }
}

/// `y = (x - mean[c]) * rstd[c] * weight[c] + bias[c]` for every value of channel `c`.
pub fn batch_norm_apply(
    x: &[f32],
    layout: ChannelLayout,
    mean: &[f32],
    rstd: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    check_len("batch_norm_apply", "y", y.len(), x.len());
    let inner = layout.inner.max(1);
    for (k, (y_run, x_run)) in y.chunks_exact_mut(inner).zip(x.chunks_exact(inner)).enumerate() {
        let c = k % layout.channels;
        let (scale, shift) = (rstd[c] * weight.map_or(1.0, |w| w[c]), bias.map_or(0.0, |b| b[c]));
        for (yv, &xv) in y_run.iter_mut().zip(x_run) {
            *yv = (xv - mean[c]) * scale + shift;
        }
    }
}

/// The backward of batch norm. With `batch_stats` (training), the mean and variance were
/// computed from `x` itself and the full formula applies; without (evaluation, running
/// statistics as constants), `dx = dy * weight * rstd`. Accumulates `dx`, `dweight`, `dbias`
/// (each when given).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &[f32],
    layout: ChannelLayout,
    mean: &[f32],
    rstd: &[f32],
    weight: Option<&[f32]>,
    dy: &[f32],
    batch_stats: bool,
    dx: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) {
    check_len("batch_norm_backward", "dy", dy.len(), x.len());
    let channels = layout.channels;
    let n = layout.count() as f64;
    // Per channel: sum(dy) and sum(dy * xhat), the two sums every gradient needs.
    let mut sum_dy = vec![0.0f64; channels];
    let mut sum_dy_xhat = vec![0.0f64; channels];
    for c in 0..channels {
        for (d, xv) in layout.channel(dy, c).zip(layout.channel(x, c)) {
            sum_dy[c] += d as f64;
            sum_dy_xhat[c] += (d * (xv - mean[c]) * rstd[c]) as f64;
        }
    }
    if let Some(dw) = dweight {
        check_len("batch_norm_backward", "dweight", dw.len(), channels);
        for (w, s) in dw.iter_mut().zip(&sum_dy_xhat) {
            *w += *s as f32;
        }
    }
    if let Some(db) = dbias {
        check_len("batch_norm_backward", "dbias", db.len(), channels);
        for (b, s) in db.iter_mut().zip(&sum_dy) {
            *b += *s as f32;
        }
    }
    if let Some(dx) = dx {
        check_len("batch_norm_backward", "dx", dx.len(), x.len());
        let inner = layout.inner.max(1);
        for (k, ((dx_run, x_run), dy_run)) in
            dx.chunks_exact_mut(inner).zip(x.chunks_exact(inner)).zip(dy.chunks_exact(inner)).enumerate()
        {
            let c = k % channels;
            let w = weight.map_or(1.0, |w| w[c]);
            // g = dy * w, so mean(g) = w * mean(dy) and mean(g * xhat) = w * mean(dy * xhat).
            let (mean_g, mean_g_xhat) = if batch_stats {
                ((w as f64 * sum_dy[c] / n) as f32, (w as f64 * sum_dy_xhat[c] / n) as f32)
            } else {
                (0.0, 0.0)
            };
            for ((dxv, &xv), &d) in dx_run.iter_mut().zip(x_run).zip(dy_run) {
                let xhat = (xv - mean[c]) * rstd[c];
                *dxv += rstd[c] * (d * w - mean_g - xhat * mean_g_xhat);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::parallel::{with_mode, Mode};
    use crate::testing::{assert_close, randn};

    /// Naive layer norm of one row, in f64: the reference.
    fn naive_norm(row: &[f32], centred: bool, eps: f64) -> Vec<f64> {
        let n = row.len() as f64;
        let mean = if centred { row.iter().map(|&v| v as f64).sum::<f64>() / n } else { 0.0 };
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        row.iter().map(|&v| (v as f64 - mean) / (var + eps).sqrt()).collect()
    }

    #[test]
    fn layer_norm_matches_naive_with_and_without_affine() {
        let (rows, cols) = (5, 7);
        let x = randn(rows * cols, 1);
        let w = randn(cols, 2);
        let b = randn(cols, 3);
        let mut y = vec![0.0; rows * cols];
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        layer_norm_forward(&x, Some(&w), Some(&b), cols, 1e-5, &mut y, &mut mean, &mut rstd);
        let want: Vec<f64> = x
            .chunks(cols)
            .flat_map(|row| naive_norm(row, true, 1e-5))
            .enumerate()
            .map(|(i, v)| v * w[i % cols] as f64 + b[i % cols] as f64)
            .collect();
        assert_close(&y, &want, 1e-5, "layer_norm affine");
        layer_norm_forward(&x, None, None, cols, 1e-5, &mut y, &mut mean, &mut rstd);
        let want: Vec<f64> = x.chunks(cols).flat_map(|row| naive_norm(row, true, 1e-5)).collect();
        assert_close(&y, &want, 1e-5, "layer_norm plain");
    }

    #[test]
    fn rms_norm_matches_naive() {
        let (rows, cols) = (4, 6);
        let x = randn(rows * cols, 4);
        let w = randn(cols, 5);
        let (mut y, mut rstd) = (vec![0.0; rows * cols], vec![0.0; rows]);
        rms_norm_forward(&x, Some(&w), cols, 1e-6, &mut y, &mut rstd);
        let want: Vec<f64> = x
            .chunks(cols)
            .flat_map(|row| naive_norm(row, false, 1e-6))
            .enumerate()
            .map(|(i, v)| v * w[i % cols] as f64)
            .collect();
        assert_close(&y, &want, 1e-5, "rms_norm");
    }

    /// Central differences of `sum(f(x) * r)` in f64 through the f32 kernel, element by element.
    fn numeric_grad(x: &[f32], r: &[f32], f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f64> {
        let h = 1e-2f32;
        let loss = |x: &[f32]| f(x).iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum::<f64>();
        (0..x.len())
            .map(|i| {
                let (mut up, mut down) = (x.to_vec(), x.to_vec());
                up[i] += h;
                down[i] -= h;
                (loss(&up) - loss(&down)) / (2.0 * h as f64)
            })
            .collect()
    }

    #[test]
    fn layer_and_rms_norm_input_gradients_match_finite_differences() {
        let (rows, cols) = (3, 5);
        let x = randn(rows * cols, 6);
        let w = randn(cols, 7);
        let r = randn(rows * cols, 8);
        for centred in [true, false] {
            let forward = |x: &[f32]| {
                let mut y = vec![0.0; x.len()];
                let mut stat = vec![0.0; rows];
                if centred {
                    let mut mean = vec![0.0; rows];
                    layer_norm_forward(x, Some(&w), None, cols, 1e-5, &mut y, &mut mean, &mut stat);
                } else {
                    rms_norm_forward(x, Some(&w), cols, 1e-5, &mut y, &mut stat);
                }
                y
            };
            let mut y = vec![0.0; x.len()];
            let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
            let mut dx = vec![0.0; x.len()];
            if centred {
                layer_norm_forward(&x, Some(&w), None, cols, 1e-5, &mut y, &mut mean, &mut rstd);
                layer_norm_backward(&x, Some(&w), &mean, &rstd, &r, cols, Some(&mut dx), None, None);
            } else {
                rms_norm_forward(&x, Some(&w), cols, 1e-5, &mut y, &mut rstd);
                rms_norm_backward(&x, Some(&w), &rstd, &r, cols, Some(&mut dx), None);
            }
            assert_close(&dx, &numeric_grad(&x, &r, forward), 2e-3, "norm dx");
        }
    }

    #[test]
    fn batch_norm_stats_and_backward_match_naive() {
        let layout = ChannelLayout { batch: 3, channels: 2, inner: 4 };
        let x = randn(24, 9);
        let (mut mean, mut var) = (vec![0.0; 2], vec![0.0; 2]);
        batch_norm_stats(&x, layout, &mut mean, &mut var);
        for c in 0..2 {
            let vals: Vec<f32> = (0..3).flat_map(|b| x[b * 8 + c * 4..b * 8 + c * 4 + 4].to_vec()).collect();
            let m = vals.iter().map(|&v| v as f64).sum::<f64>() / 12.0;
            let v = vals.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / 12.0;
            assert_close(&[mean[c], var[c]], &[m, v], 1e-6, "batch_norm_stats");
        }
        let w = [0.5, -2.0];
        let r = randn(24, 10);
        let forward = |x: &[f32]| {
            let (mut mean, mut var) = (vec![0.0; 2], vec![0.0; 2]);
            batch_norm_stats(x, layout, &mut mean, &mut var);
            let rstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
            let mut y = vec![0.0; x.len()];
            batch_norm_apply(x, layout, &mean, &rstd, Some(&w), None, &mut y);
            y
        };
        let rstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let mut dx = vec![0.0; 24];
        batch_norm_backward(&x, layout, &mean, &rstd, Some(&w), &r, true, Some(&mut dx), None, None);
        assert_close(&dx, &numeric_grad(&x, &r, forward), 2e-3, "batch_norm dx");
    }

    #[test]
    fn parallel_rows_equal_serial_rows_bit_for_bit() {
        let (rows, cols) = (300, 33);
        let x = randn(rows * cols, 11);
        let w = randn(cols, 12);
        let dy = randn(rows * cols, 13);
        let run = |mode| {
            with_mode(mode, || {
                let mut y = vec![0.0; x.len()];
                let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
                layer_norm_forward(&x, Some(&w), None, cols, 1e-5, &mut y, &mut mean, &mut rstd);
                let mut dx = vec![0.0; x.len()];
                layer_norm_backward(&x, Some(&w), &mean, &rstd, &dy, cols, Some(&mut dx), None, None);
                (y, dx)
            })
        };
        assert_eq!(run(Mode::Serial), run(Mode::Parallel));
    }
}
