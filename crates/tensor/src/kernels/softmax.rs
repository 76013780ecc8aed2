//! The softmax family over the last axis, forward beside backward: `logsumexp_rows`,
//! `log_softmax_rows` with its backward `log_softmax_backward`, and `softmax_rows`.
//!
//! Each works on `x` viewed as `[rows, cols]`, one row at a time: shift by the row maximum
//! (so `exp` cannot overflow), sum in `f64`, round once. Rows are cut into fixed blocks of
//! about [`CHUNK`] elements, so parallel and serial runs agree bit for bit. The fused
//! softmax cross-entropy, which calls `log_softmax_rows`, is with the other losses in the
//! [`loss` module](mod@super::loss).

use super::parallel::{for_each_block_mut, CHUNK};
use super::reduce::{beats, sum_f64};

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
