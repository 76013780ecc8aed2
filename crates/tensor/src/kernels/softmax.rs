//! The softmax family, forward beside backward: over the last axis `logsumexp_rows`,
//! `log_softmax_rows` with its backward `log_softmax_backward`, and `softmax_rows`; over any
//! axis `logsumexp_axis`, `log_softmax_axis`, `softmax_axis`, each with its `_backward`, which
//! run the row kernels when the axis is the last one.
//!
//! The row kernels work on `x` viewed as `[rows, cols]`, one row at a time (the axis kernels
//! the same way on each lane of the axis): shift by the row maximum
//! (so `exp` cannot overflow), sum in `f64`, round once. Rows are cut into fixed blocks of
//! about [`CHUNK`] elements, so parallel and serial runs agree bit for bit. The fused
//! softmax cross-entropy, which calls `log_softmax_rows`, is with the other losses in the
//! [`loss` module](mod@super::loss).

use super::parallel::{for_each_block_mut, CHUNK};
use super::reduce::{beats, map_lanes, reduce_lanes, sum_f64, Lanes};

/// Rows per parallel task of the row-wise kernels: about [`CHUNK`] elements each.
pub(super) fn row_block(cols: usize) -> usize {
    (CHUNK / cols.max(1)).max(1)
}

/// Checks the `[rows, cols]` length of a row-wise kernel's argument.
pub(super) fn check_rows(op: &str, what: &str, len: usize, rows: usize, cols: usize) {
    assert_eq!(
        len,
        rows * cols,
        "{op}: {what} has {len} elements, expected [{rows}, {cols}] = {}",
        rows * cols
    );
}

/// NaN-propagating maximum of a row; `-inf` for an empty row.
fn row_max(row: &[f32]) -> f32 {
    row.iter().fold(f32::NEG_INFINITY, |m, &v| if beats(v, m) { v } else { m })
}

/// Log-sum-exp of a row in `f64`, shifted by the row maximum so `exp` cannot overflow.
///
/// An infinite maximum is returned as is: `-inf` (all `-inf`, or empty) would otherwise give
/// `-inf - -inf = NaN` in the shift, and `+inf` is the true value.
fn row_lse(row: &[f32]) -> f64 {
    let m = row_max(row);
    if m.is_infinite() {
        return m as f64;
    }
    let s: f64 = row.iter().map(|&v| (v - m).exp() as f64).sum();
    m as f64 + s.ln()
}

/// `log(sum(exp(x[r, :])))` for each row of `x` (`[rows, cols]`) into `out` (`[rows]`,
/// overwritten); `-inf` for rows whose maximum is `-inf` (or `cols == 0`).
///
/// # Panics
/// If `x.len() != rows * cols` or `out.len() != rows`.
pub fn logsumexp_rows(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    check_rows("logsumexp_rows", "input", x.len(), rows, cols);
    check_rows("logsumexp_rows", "output", out.len(), rows, 1);
    let rb = row_block(cols);
    for_each_block_mut(out, rb, rows * cols, |b, o| {
        for (i, v) in o.iter_mut().enumerate() {
            let r = b * rb + i;
            *v = row_lse(&x[r * cols..(r + 1) * cols]) as f32;
        }
    });
}

/// Log-softmax of each row of `x` (`[rows, cols]`) into `out` (`[rows, cols]`, overwritten).
///
/// A row whose maximum is `-inf` gives `-inf` everywhere (log of all-zero probabilities)
/// where torch gives NaN; a row containing `+inf` gives NaN there, as in torch.
///
/// # Panics
/// If `x.len()` or `out.len()` is not `rows * cols`.
pub fn log_softmax_rows(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    check_rows("log_softmax_rows", "input", x.len(), rows, cols);
    check_rows("log_softmax_rows", "output", out.len(), rows, cols);
    let rb = row_block(cols);
    for_each_block_mut(out, rb * cols, rows * cols, |b, o| {
        for (i, y) in o.chunks_exact_mut(cols).enumerate() {
            let r = b * rb + i;
            let row = &x[r * cols..(r + 1) * cols];
            let lse = row_lse(row);
            if lse == f64::NEG_INFINITY {
                y.fill(f32::NEG_INFINITY);
                continue;
            }
            for (y, &v) in y.iter_mut().zip(row) {
                *y = (v as f64 - lse) as f32;
            }
        }
    });
}

/// Backward of [`log_softmax_rows`]: `dx += dy - exp(y) * sum_row(dy)`, where `y` is the
/// log-softmax output; `y`, `dy` and `dx` are `[rows, cols]`.
///
/// # Panics
/// If any of the three lengths is not `rows * cols`.
pub fn log_softmax_backward(y: &[f32], dy: &[f32], rows: usize, cols: usize, dx: &mut [f32]) {
    check_rows("log_softmax_backward", "output y", y.len(), rows, cols);
    check_rows("log_softmax_backward", "upstream gradient dy", dy.len(), rows, cols);
    check_rows("log_softmax_backward", "gradient dx", dx.len(), rows, cols);
    let rb = row_block(cols);
    for_each_block_mut(dx, rb * cols, rows * cols, |b, d| {
        for (i, d) in d.chunks_exact_mut(cols).enumerate() {
            let r = b * rb + i;
            let (y, dy) = (&y[r * cols..(r + 1) * cols], &dy[r * cols..(r + 1) * cols]);
            let s = sum_f64(dy) as f32;
            for ((d, &y), &g) in d.iter_mut().zip(y).zip(dy) {
                *d += g - y.exp() * s;
            }
        }
    });
}

/// Softmax of each row of `x` (`[rows, cols]`) into `out` (`[rows, cols]`, overwritten).
///
/// A row whose maximum is `-inf` gives all zeros (torch gives NaN).
///
/// # Panics
/// If `x.len()` or `out.len()` is not `rows * cols`.
pub fn softmax_rows(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    check_rows("softmax_rows", "input", x.len(), rows, cols);
    check_rows("softmax_rows", "output", out.len(), rows, cols);
    let rb = row_block(cols);
    for_each_block_mut(out, rb * cols, rows * cols, |b, o| {
        for (i, p) in o.chunks_exact_mut(cols).enumerate() {
            let r = b * rb + i;
            let row = &x[r * cols..(r + 1) * cols];
            let m = row_max(row);
            if m == f32::NEG_INFINITY {
                p.fill(0.0);
                continue;
            }
            let mut s = 0.0f64;
            for (p, &v) in p.iter_mut().zip(row) {
                *p = (v - m).exp();
                s += *p as f64;
            }
            let inv = 1.0 / s;
            for p in p.iter_mut() {
                *p = (*p as f64 * inv) as f32;
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Any axis: the same functions over the lanes of one axis
// ---------------------------------------------------------------------------------------------

/// NaN-propagating maximum of a lane; `-inf` for an empty lane.
fn lane_max(lane: impl Iterator<Item = f32>) -> f32 {
    lane.fold(f32::NEG_INFINITY, |m, v| if beats(v, m) { v } else { m })
}

/// Log-sum-exp of a lane in `f64`, as [`row_lse`].
fn lane_lse(lane: impl Iterator<Item = f32> + Clone) -> f64 {
    let m = lane_max(lane.clone());
    if m.is_infinite() {
        return m as f64;
    }
    m as f64 + lane.map(|v| (v - m).exp() as f64).sum::<f64>().ln()
}

/// `log(sum(exp(x)))` over `axis` of `x` (row-major, `shape`) into `out` (the reduced shape,
/// overwritten): torch's `torch.logsumexp(x, dim)`. The last axis runs [`logsumexp_rows`].
///
/// # Panics
/// If `axis >= shape.len()` or a length does not match `shape`.
pub fn logsumexp_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) {
    let lanes = Lanes::of("logsumexp_axis", x.len(), shape, axis);
    lanes.check_reduced("logsumexp_axis", "output", out.len());
    if lanes.inner == 1 {
        return logsumexp_rows(x, lanes.outer, lanes.n, out);
    }
    reduce_lanes(lanes, out, |j| lane_lse(lanes.lane(x, j)) as f32);
}

/// Backward of [`logsumexp_axis`]: `dx += dy[j] * exp(x - lse[j])` (the softmax of the lane).
///
/// # Panics
/// If a length does not match `shape`.
pub fn logsumexp_axis_backward(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    lse: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let op = "logsumexp_axis_backward";
    let lanes = Lanes::of(op, x.len(), shape, axis);
    lanes.check_reduced(op, "lse", lse.len());
    lanes.check_reduced(op, "dy", dy.len());
    lanes.check_full(op, "dx", dx.len());
    map_lanes(lanes, dx, |j, d| {
        let (g, l) = (dy[j], lse[j]);
        for (d, v) in d.zip(lanes.lane(x, j)) {
            *d += g * (v - l).exp();
        }
    });
}

/// Softmax over `axis` of `x` (row-major, `shape`) into `out` (same shape, overwritten):
/// torch's `torch.softmax(x, dim)`. A lane whose maximum is `-inf` gives zeros (torch: NaN).
/// The last axis runs [`softmax_rows`].
///
/// # Panics
/// If `axis >= shape.len()` or a length does not match `shape`.
pub fn softmax_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) {
    let lanes = Lanes::of("softmax_axis", x.len(), shape, axis);
    lanes.check_full("softmax_axis", "output", out.len());
    if lanes.inner == 1 {
        return softmax_rows(x, lanes.outer, lanes.n, out);
    }
    map_lanes(lanes, out, |j, p| {
        let m = lane_max(lanes.lane(x, j));
        if m == f32::NEG_INFINITY {
            p.for_each(|p| *p = 0.0);
            return;
        }
        let s: f64 = lanes.lane(x, j).map(|v| (v - m).exp() as f64).sum();
        let inv = 1.0 / s;
        for (p, v) in p.zip(lanes.lane(x, j)) {
            *p = ((v - m).exp() as f64 * inv) as f32;
        }
    });
}

/// Backward of [`softmax_axis`] from its output `y`: `dx += y * (dy - sum_lane(dy * y))`.
///
/// # Panics
/// If a length does not match `shape`.
pub fn softmax_axis_backward(y: &[f32], dy: &[f32], shape: &[usize], axis: usize, dx: &mut [f32]) {
    let op = "softmax_axis_backward";
    let lanes = Lanes::of(op, y.len(), shape, axis);
    lanes.check_full(op, "dy", dy.len());
    lanes.check_full(op, "dx", dx.len());
    map_lanes(lanes, dx, |j, d| {
        let dot = lanes.lane(y, j).zip(lanes.lane(dy, j)).fold(0.0f64, |a, (y, g)| a + y as f64 * g as f64);
        let dot = dot as f32;
        for ((d, y), g) in d.zip(lanes.lane(y, j)).zip(lanes.lane(dy, j)) {
            *d += y * (g - dot);
        }
    });
}

/// Log-softmax over `axis` of `x` (row-major, `shape`) into `out` (same shape, overwritten):
/// torch's `torch.log_softmax(x, dim)`, with [`log_softmax_rows`]'s conventions. The last
/// axis runs [`log_softmax_rows`] (the loss of every classifier: no extra cost there).
///
/// # Panics
/// If `axis >= shape.len()` or a length does not match `shape`.
pub fn log_softmax_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) {
    let lanes = Lanes::of("log_softmax_axis", x.len(), shape, axis);
    lanes.check_full("log_softmax_axis", "output", out.len());
    if lanes.inner == 1 {
        return log_softmax_rows(x, lanes.outer, lanes.n, out);
    }
    map_lanes(lanes, out, |j, y| {
        let lse = lane_lse(lanes.lane(x, j));
        if lse == f64::NEG_INFINITY {
            y.for_each(|y| *y = f32::NEG_INFINITY);
            return;
        }
        for (y, v) in y.zip(lanes.lane(x, j)) {
            *y = (v as f64 - lse) as f32;
        }
    });
}

/// Backward of [`log_softmax_axis`] from its output `y`: `dx += dy - exp(y) * sum_lane(dy)`.
/// The last axis runs [`log_softmax_backward`].
///
/// # Panics
/// If a length does not match `shape`.
pub fn log_softmax_axis_backward(y: &[f32], dy: &[f32], shape: &[usize], axis: usize, dx: &mut [f32]) {
    let op = "log_softmax_axis_backward";
    let lanes = Lanes::of(op, y.len(), shape, axis);
    lanes.check_full(op, "dy", dy.len());
    lanes.check_full(op, "dx", dx.len());
    if lanes.inner == 1 {
        return log_softmax_backward(y, dy, lanes.outer, lanes.n, dx);
    }
    map_lanes(lanes, dx, |j, d| {
        let s = lanes.lane(dy, j).fold(0.0f64, |a, g| a + g as f64) as f32;
        for ((d, y), g) in d.zip(lanes.lane(y, j)).zip(lanes.lane(dy, j)) {
            *d += g - y.exp() * s;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, assert_par_eq_serial, bits, close, randn};

    const ROW_SHAPES: &[(usize, usize)] = &[(1, 1), (1, 7), (1, 10), (3, 1), (3, 7), (3, 10)];

    fn naive_lse(row: &[f32]) -> f64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
    }

    #[test]
    fn logsumexp_rows_matches_reference() {
        for &(rows, cols) in ROW_SHAPES {
            let x: Vec<f32> = randn(rows * cols, 500 + cols as u64).iter().map(|v| v * 3.0).collect();
            let want: Vec<f64> = x.chunks(cols).map(naive_lse).collect();
            let mut out = vec![0.0; rows];
            logsumexp_rows(&x, rows, cols, &mut out);
            assert_close(&out, &want, 1e-6, &format!("logsumexp [{rows}, {cols}]"));
        }
    }

    #[test]
    fn logsumexp_rows_extremes() {
        let x = [1e4, -1e4, 0.0, -1e4, -1e4, -1e4];
        let mut out = [0.0; 2];
        logsumexp_rows(&x, 2, 3, &mut out);
        assert_eq!(out[0], 1e4);
        assert!(close(out[1] as f64, -1e4 + 3f64.ln(), 1e-7), "{}", out[1]);
        let ninf = f32::NEG_INFINITY;
        logsumexp_rows(&[ninf, ninf, 1.0, f32::INFINITY], 2, 2, &mut out);
        assert_eq!(out, [ninf, f32::INFINITY]);
        // Empty rows: the log of an empty sum.
        let mut out = [0.0; 3];
        logsumexp_rows(&[], 3, 0, &mut out);
        assert_eq!(out, [ninf; 3]);
    }

    #[test]
    fn log_softmax_and_softmax_match_reference() {
        for &(rows, cols) in ROW_SHAPES {
            let x: Vec<f32> = randn(rows * cols, 600 + cols as u64).iter().map(|v| v * 3.0).collect();
            let want: Vec<f64> = x
                .chunks(cols)
                .flat_map(|row| {
                    let l = naive_lse(row);
                    row.iter().map(move |&v| v as f64 - l)
                })
                .collect();
            let mut out = vec![0.0; rows * cols];
            log_softmax_rows(&x, rows, cols, &mut out);
            assert_close(&out, &want, 1e-6, &format!("log_softmax [{rows}, {cols}]"));
            let probs: Vec<f64> = want.iter().map(|v| v.exp()).collect();
            softmax_rows(&x, rows, cols, &mut out);
            assert_close(&out, &probs, 1e-6, &format!("softmax [{rows}, {cols}]"));
            for row in out.chunks(cols) {
                assert!(close(row.iter().map(|&p| p as f64).sum(), 1.0, 1e-6));
            }
        }
    }

    #[test]
    fn softmax_family_extreme_logits_stay_finite() {
        let x = [1e4, -1e4, 0.0, 1e4, 1e4, -1e4, -1e4, -1e4, -1e4];
        let (mut ls, mut p) = ([0.0; 9], [0.0; 9]);
        log_softmax_rows(&x, 3, 3, &mut ls);
        softmax_rows(&x, 3, 3, &mut p);
        assert!(ls.iter().all(|v| v.is_finite()), "{ls:?}");
        assert!(p.iter().all(|v| v.is_finite()), "{p:?}");
        assert_eq!(&ls[..3], &[0.0, -2e4, -1e4]);
        assert_eq!(&p[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(&p[3..6], &[0.5, 0.5, 0.0]);
        let third = 1.0 / 3.0;
        assert!(p[6..].iter().all(|&v| close(v as f64, third, 1e-7)));
    }

    #[test]
    fn softmax_family_all_neg_inf_row_has_no_nan() {
        let ninf = f32::NEG_INFINITY;
        let x = [ninf, ninf, 0.0, 1.0];
        let (mut ls, mut p) = ([0.0; 4], [0.0; 4]);
        log_softmax_rows(&x, 2, 2, &mut ls);
        softmax_rows(&x, 2, 2, &mut p);
        assert_eq!(&ls[..2], &[ninf, ninf]);
        assert_eq!(&p[..2], &[0.0, 0.0]);
        let mut dx = [0.0; 4];
        log_softmax_backward(&ls, &[1.0, 2.0, 0.5, 0.5], 2, 2, &mut dx);
        assert!(dx.iter().all(|v| v.is_finite()), "{dx:?}");
    }

    #[test]
    fn log_softmax_backward_matches_reference_and_accumulates() {
        for &(rows, cols) in ROW_SHAPES {
            let x = randn(rows * cols, 700 + cols as u64);
            let dy = randn(rows * cols, 701 + cols as u64);
            let mut y = vec![0.0; rows * cols];
            log_softmax_rows(&x, rows, cols, &mut y);
            let start = randn(rows * cols, 702);
            let mut dx = start.clone();
            log_softmax_backward(&y, &dy, rows, cols, &mut dx);
            let mut want = vec![];
            for r in 0..rows {
                let s: f64 = (0..cols).map(|c| dy[r * cols + c] as f64).sum();
                for c in 0..cols {
                    let i = r * cols + c;
                    want.push(start[i] as f64 + dy[i] as f64 - (y[i] as f64).exp() * s);
                }
            }
            assert_close(&dx, &want, 1e-5, &format!("log_softmax_backward [{rows}, {cols}]"));
        }
    }

    #[test]
    fn log_softmax_backward_matches_finite_differences() {
        let (rows, cols) = (3, 7);
        let x = randn(rows * cols, 800);
        let w = randn(rows * cols, 801);
        // L(x) = sum(w * log_softmax(x)), so dL/dx is the backward of dy = w.
        let loss = |x: &[f32]| {
            let mut y = vec![0.0; rows * cols];
            log_softmax_rows(x, rows, cols, &mut y);
            y.iter().zip(&w).map(|(&y, &w)| y as f64 * w as f64).sum::<f64>()
        };
        let mut y = vec![0.0; rows * cols];
        log_softmax_rows(&x, rows, cols, &mut y);
        let mut dx = vec![0.0; rows * cols];
        log_softmax_backward(&y, &w, rows, cols, &mut dx);
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += 1e-2;
            xm[i] -= 1e-2;
            let fd = (loss(&xp) - loss(&xm)) / (xp[i] as f64 - xm[i] as f64);
            assert!((fd - dx[i] as f64).abs() < 1e-3, "dx[{i}]: fd {fd}, kernel {}", dx[i]);
        }
    }

    #[test]
    fn softmax_family_parallel_equals_serial_bitwise() {
        for (rows, cols) in [(3, 7), (3 * (CHUNK / 10) + 7, 10), (5, 9000)] {
            let x: Vec<f32> = randn(rows * cols, 900).iter().map(|v| v * 4.0).collect();
            let dy = randn(rows * cols, 901);
            assert_par_eq_serial(|| {
                let mut out = vec![0.0; rows];
                logsumexp_rows(&x, rows, cols, &mut out);
                bits(&out)
            });
            let y = assert_par_eq_serial(|| {
                let mut out = vec![0.0; rows * cols];
                log_softmax_rows(&x, rows, cols, &mut out);
                out
            });
            assert_par_eq_serial(|| {
                let mut out = vec![0.0; rows * cols];
                softmax_rows(&x, rows, cols, &mut out);
                bits(&out)
            });
            assert_par_eq_serial(|| {
                let mut dx = vec![0.5; rows * cols];
                log_softmax_backward(&y, &dy, rows, cols, &mut dx);
                bits(&dx)
            });
        }
    }

    // ---- any axis ----

    const AXIS_SHAPES: &[&[usize]] =
        &[&[7], &[3, 7], &[3, 1], &[2, 3, 4], &[1, 5, 1], &[2, 3, 1, 5], &[3, 3000, 7]];

    /// `(lse per lane, log_softmax full)` by a naive multi-index walk, in f64.
    fn naive_axis(x: &[f32], shape: &[usize], axis: usize) -> (Vec<f64>, Vec<f64>) {
        let outer: usize = shape[..axis].iter().product();
        let n = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let (mut lse, mut ls) = (vec![], vec![0.0; x.len()]);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                let lane: Vec<f32> = (0..n).map(|k| x[at(k)]).collect();
                let l = naive_lse(&lane);
                lse.push(l);
                for k in 0..n {
                    ls[at(k)] = x[at(k)] as f64 - l;
                }
            }
        }
        (lse, ls)
    }

    #[test]
    fn axis_kernels_match_reference_on_every_axis() {
        for (s, shape) in AXIS_SHAPES.iter().enumerate() {
            let len = crate::numel(shape);
            let x: Vec<f32> = randn(len, 1000 + s as u64).iter().map(|v| v * 3.0).collect();
            for axis in 0..shape.len() {
                let what = format!("{shape:?} axis {axis}");
                let (lse, ls) = naive_axis(&x, shape, axis);
                let mut out = vec![0.0; lse.len()];
                logsumexp_axis(&x, shape, axis, &mut out);
                assert_close(&out, &lse, 1e-6, &format!("logsumexp {what}"));
                let mut y = vec![0.0; len];
                log_softmax_axis(&x, shape, axis, &mut y);
                assert_close(&y, &ls, 1e-6, &format!("log_softmax {what}"));
                let mut p = vec![0.0; len];
                softmax_axis(&x, shape, axis, &mut p);
                let probs: Vec<f64> = ls.iter().map(|v| v.exp()).collect();
                assert_close(&p, &probs, 1e-6, &format!("softmax {what}"));
            }
        }
    }

    #[test]
    fn axis_backwards_match_reference_on_every_axis() {
        for (s, shape) in AXIS_SHAPES.iter().enumerate() {
            let len = crate::numel(shape);
            let x = randn(len, 1100 + s as u64);
            for axis in 0..shape.len() {
                let what = format!("{shape:?} axis {axis}");
                let (lse, ls) = naive_axis(&x, shape, axis);
                let inner: usize = shape[axis + 1..].iter().product();
                let n = shape[axis];
                // The lane of flat position p, and the positions of lane j.
                let lane_of = |p: usize| (p / (n * inner)) * inner + p % inner;
                let dy = randn(len, 1101);
                let dy_r = randn(lse.len(), 1102);
                let start = randn(len, 1103);
                let mut sum_dy = vec![0.0f64; lse.len()];
                let mut dot = vec![0.0f64; lse.len()];
                for p in 0..len {
                    sum_dy[lane_of(p)] += dy[p] as f64;
                    dot[lane_of(p)] += dy[p] as f64 * ls[p].exp();
                }
                let (mut y, mut pr, mut l) = (vec![0.0; len], vec![0.0; len], vec![0.0; lse.len()]);
                log_softmax_axis(&x, shape, axis, &mut y);
                softmax_axis(&x, shape, axis, &mut pr);
                logsumexp_axis(&x, shape, axis, &mut l);
                let mut dx = start.clone();
                log_softmax_axis_backward(&y, &dy, shape, axis, &mut dx);
                let want: Vec<f64> = (0..len)
                    .map(|p| start[p] as f64 + dy[p] as f64 - ls[p].exp() * sum_dy[lane_of(p)])
                    .collect();
                assert_close(&dx, &want, 1e-5, &format!("log_softmax backward {what}"));
                let mut dx = start.clone();
                softmax_axis_backward(&pr, &dy, shape, axis, &mut dx);
                let want: Vec<f64> = (0..len)
                    .map(|p| start[p] as f64 + ls[p].exp() * (dy[p] as f64 - dot[lane_of(p)]))
                    .collect();
                assert_close(&dx, &want, 1e-5, &format!("softmax backward {what}"));
                let mut dx = start.clone();
                logsumexp_axis_backward(&x, shape, axis, &l, &dy_r, &mut dx);
                let want: Vec<f64> =
                    (0..len).map(|p| start[p] as f64 + dy_r[lane_of(p)] as f64 * ls[p].exp()).collect();
                assert_close(&dx, &want, 1e-5, &format!("logsumexp backward {what}"));
            }
        }
    }

    #[test]
    fn axis_kernels_extremes_on_a_middle_axis() {
        // [2, 2, 2] along axis 1: lanes (0, 2), (1, 3), (4, 6), (5, 7).
        let ninf = f32::NEG_INFINITY;
        let x = [1e4, ninf, -1e4, ninf, 0.0, 0.0, 0.0, 1.0];
        let mut p = [9.0; 8];
        softmax_axis(&x, &[2, 2, 2], 1, &mut p);
        assert_eq!(&p[..4], &[1.0, 0.0, 0.0, 0.0]);
        let mut ls = [9.0; 8];
        log_softmax_axis(&x, &[2, 2, 2], 1, &mut ls);
        assert_eq!(&ls[..4], &[0.0, ninf, -2e4, ninf]);
        let mut l = [9.0; 4];
        logsumexp_axis(&x, &[2, 2, 2], 1, &mut l);
        assert_eq!(&l[..2], &[1e4, ninf]);
        assert!(close(l[2] as f64, 2f64.ln(), 1e-7));
    }

    #[test]
    fn axis_kernels_parallel_equal_serial_bitwise() {
        for (shape, axis) in
            [(&[3usize, 3000, 7][..], 1), (&[20000, 3][..], 0), (&[5, 7000][..], 1), (&[3, 7, 10][..], 0)]
        {
            let len = crate::numel(shape);
            let x: Vec<f32> = randn(len, 1200).iter().map(|v| v * 4.0).collect();
            let dy = randn(len, 1201);
            let m = len / shape[axis];
            let l = assert_par_eq_serial(|| {
                let mut out = vec![0.0; m];
                logsumexp_axis(&x, shape, axis, &mut out);
                out
            });
            let y = assert_par_eq_serial(|| {
                let mut out = vec![0.0; len];
                log_softmax_axis(&x, shape, axis, &mut out);
                out
            });
            let p = assert_par_eq_serial(|| {
                let mut out = vec![0.0; len];
                softmax_axis(&x, shape, axis, &mut out);
                out
            });
            assert_par_eq_serial(|| {
                let mut dx = vec![0.5; len];
                log_softmax_axis_backward(&y, &dy, shape, axis, &mut dx);
                softmax_axis_backward(&p, &dy, shape, axis, &mut dx);
                logsumexp_axis_backward(&x, shape, axis, &l, &dy[..m], &mut dx);
                bits(&dx)
            });
        }
    }

    #[test]
    #[should_panic(expected = "softmax_axis: axis 3 is out of range for shape [2, 3, 4]")]
    fn softmax_axis_bad_axis_panics() {
        softmax_axis(&[0.0; 24], &[2, 3, 4], 3, &mut [0.0; 24]);
    }

    #[test]
    #[should_panic(expected = "log_softmax_axis_backward: dx has 23 elements, expected 24")]
    fn log_softmax_axis_backward_wrong_dx_panics() {
        log_softmax_axis_backward(&[0.0; 24], &[0.0; 24], &[2, 3, 4], 1, &mut [0.0; 23]);
    }

    #[test]
    #[should_panic(expected = "log_softmax_rows: output has 20 elements, expected [3, 7] = 21")]
    fn log_softmax_wrong_output_panics() {
        log_softmax_rows(&[0.0; 21], 3, 7, &mut [0.0; 20]);
    }

    #[test]
    #[should_panic(expected = "logsumexp_rows: output has 7 elements, expected [3, 1]")]
    fn logsumexp_wrong_output_panics() {
        logsumexp_rows(&[0.0; 21], 3, 7, &mut [0.0; 7]);
    }

    #[test]
    #[should_panic(expected = "log_softmax_backward: upstream gradient dy has 3 elements")]
    fn log_softmax_backward_wrong_dy_panics() {
        log_softmax_backward(&[0.0; 6], &[0.0; 3], 2, 3, &mut [0.0; 6]);
    }
}
