//! Reductions: full (`sum_all`, `max_all`, ...), along one axis (`sum_axis`, `max_axis`, ...)
//! and the bias-gradient column sum (`sum_rows`). Their backward is a broadcast
//! ([`broadcast_to`](super::broadcast_to), in the `binary` module beside its adjoint
//! `sum_to_shape`); the last-axis softmax family, a reduction followed by a map, is in the
//! [`softmax` module](mod@super::softmax).
//!
//! Sums accumulate in `f64` and round once to `f32`. Every parallel path cuts its work at
//! boundaries fixed by the input's shape (never by the thread count) and combines partial
//! results in a fixed order, so parallel and serial runs agree bit for bit.

use std::ops::Range;

use rayon::prelude::*;

use super::parallel::{should_parallelize, CHUNK};

// ---------------------------------------------------------------------------------------------
// Full reductions
// ---------------------------------------------------------------------------------------------

/// Sums `term(range)` over consecutive [`CHUNK`]-sized index ranges of `0..n` and adds the
/// chunk partials in chunk order, in parallel when `n` is large.
///
/// The fixed chunking makes the result independent of the thread count; the losses use it
/// for their `f64` totals.
pub(crate) fn chunked_sum_f64(n: usize, term: impl Fn(Range<usize>) -> f64 + Sync) -> f64 {
    let range = |c: usize| c * CHUNK..((c + 1) * CHUNK).min(n);
    let chunks = n.div_ceil(CHUNK);
    if should_parallelize(n) {
        let partials: Vec<f64> = (0..chunks).into_par_iter().map(|c| term(range(c))).collect();
        partials.iter().fold(0.0, |acc, &p| acc + p)
    } else {
        (0..chunks).fold(0.0, |acc, c| acc + term(range(c)))
    }
}

/// The `f64` sum of a contiguous slice, in a fixed order.
///
/// Eight independent lanes (combined in lane order, then the tail) break the dependency
/// chain of one running sum, so the loop vectorises and pipelines.
#[inline]
pub(super) fn sum_f64(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    let s = lanes.iter().fold(0.0, |a, &l| a + l);
    it.remainder().iter().fold(s, |a, &v| a + v as f64)
}

/// The `f64` sum of all of `x`, in fixed chunks (shared by `sum_all` and `mean_all`).
fn sum_all_f64(x: &[f32]) -> f64 {
    chunked_sum_f64(x.len(), |r| sum_f64(&x[r]))
}

/// Sum of all elements of `x` (any shape, flattened); `0.0` for an empty slice.
pub fn sum_all(x: &[f32]) -> f32 {
    sum_all_f64(x) as f32
}

/// Mean of all elements of `x` (any shape, flattened); NaN for an empty slice, as in torch.
pub fn mean_all(x: &[f32]) -> f32 {
    (sum_all_f64(x) / x.len() as f64) as f32
}

/// Whether `v` should replace the running maximum `best`: strictly greater, or the first NaN.
///
/// Only strict replacement keeps the FIRST maximum (torch's tie rule for max-pool and argmax);
/// NaN counts as larger than everything so that it propagates.
#[inline]
pub(super) fn beats(v: f32, best: f32) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

/// `(index, value)` of the first maximum of a non-empty slice.
fn first_max(x: &[f32]) -> (usize, f32) {
    let mut best = (0, x[0]);
    for (i, &v) in x.iter().enumerate().skip(1) {
        if beats(v, best.1) {
            best = (i, v);
        }
    }
    best
}

/// `(index, value)` of the first maximum of all of `x`, chunked in parallel when large.
fn first_max_all(op: &str, x: &[f32]) -> (usize, f32) {
    assert!(!x.is_empty(), "{op}: cannot reduce an empty tensor");
    if !should_parallelize(x.len()) {
        return first_max(x);
    }
    let winners: Vec<(usize, f32)> = x
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, s)| {
            let (i, v) = first_max(s);
            (c * CHUNK + i, v)
        })
        .collect();
    // Combining chunk winners in order with the same strict rule gives the global first max.
    winners
        .into_iter()
        .reduce(|best, cand| if beats(cand.1, best.1) { cand } else { best })
        .expect("non-empty input has at least one chunk")
}

/// Maximum of all elements of `x` (any shape, flattened); NaN if any element is NaN.
///
/// # Panics
/// If `x` is empty.
pub fn max_all(x: &[f32]) -> f32 {
    first_max_all("max_all", x).1
}

/// Flat index of the first maximum of `x` (a NaN counts as the maximum, as in torch).
///
/// # Panics
/// If `x` is empty.
pub fn argmax_all(x: &[f32]) -> usize {
    first_max_all("argmax_all", x).0
}

// ---------------------------------------------------------------------------------------------
// Axis reductions
// ---------------------------------------------------------------------------------------------

/// Checks an axis reduction's arguments and returns `(outer, n, inner)` for the view
/// `[outer, n, inner]` of `shape` with `n = shape[axis]`.
fn axis_dims(op: &str, x_len: usize, shape: &[usize], axis: usize, out_len: usize) -> (usize, usize, usize) {
    assert!(
        axis < shape.len(),
        "{op}: axis {axis} is out of range for shape {shape:?} (rank {})",
        shape.len()
    );
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    assert_eq!(
        x_len,
        outer * n * inner,
        "{op}: input has {x_len} elements but shape {shape:?} has {}",
        outer * n * inner
    );
    assert_eq!(
        out_len,
        outer * inner,
        "{op}: output has {out_len} elements, expected {} (shape {shape:?} reduced over axis {axis})",
        outer * inner
    );
    (outer, n, inner)
}

/// Output elements per parallel task of an axis reduction: about [`CHUNK`] inputs each.
fn axis_block(n: usize) -> usize {
    (CHUNK / n.max(1)).max(1)
}

/// Calls `f(start, len)` for each run of output indices `start..start + len` (within
/// `offset..offset + count`) that shares one `outer` index, so that the `inner` positions of a
/// run are contiguous in both input and output.
fn for_each_run(offset: usize, count: usize, inner: usize, mut f: impl FnMut(usize, usize)) {
    let mut j = 0;
    while j < count {
        let len = (inner - (offset + j) % inner).min(count - j);
        f(j, len);
        j += len;
    }
}

/// Sums (divided by `div`) outputs `start..start + out.len()` of an axis reduction.
fn sum_axis_block(x: &[f32], n: usize, inner: usize, start: usize, out: &mut [f32], div: f64) {
    if inner == 1 {
        // Reducing the last axis: each output is a contiguous row.
        for (j, o) in out.iter_mut().enumerate() {
            let r = start + j;
            *o = (sum_f64(&x[r * n..(r + 1) * n]) / div) as f32;
        }
        return;
    }
    let mut acc = vec![0.0f64; out.len()];
    for_each_run(start, out.len(), inner, |j, len| {
        let (o, i0) = ((start + j) / inner, (start + j) % inner);
        let acc = &mut acc[j..j + len];
        // Walking k outermost keeps the reads contiguous along `inner`.
        for k in 0..n {
            let base = (o * n + k) * inner + i0;
            for (a, &v) in acc.iter_mut().zip(&x[base..base + len]) {
                *a += v as f64;
            }
        }
        for (dst, &a) in out[j..j + len].iter_mut().zip(acc.iter()) {
            *dst = (a / div) as f32;
        }
    });
}

/// Shared body of `sum_axis` and `mean_axis`.
fn sum_axis_impl(op: &str, x: &[f32], shape: &[usize], axis: usize, out: &mut [f32], mean: bool) {
    let (_, n, inner) = axis_dims(op, x.len(), shape, axis, out.len());
    let div = if mean { n as f64 } else { 1.0 };
    let block = axis_block(n);
    let run = |b: usize, o: &mut [f32]| sum_axis_block(x, n, inner, b * block, o, div);
    if should_parallelize(x.len()) {
        out.par_chunks_mut(block).enumerate().for_each(|(b, o)| run(b, o));
    } else {
        out.chunks_mut(block).enumerate().for_each(|(b, o)| run(b, o));
    }
}

/// Sum of `x` (row-major, `shape`) over `axis`; `out` has `numel(shape) / shape[axis]`
/// elements (the shape with `axis` removed) and is overwritten.
///
/// # Panics
/// If `axis >= shape.len()` or the lengths of `x` or `out` do not match `shape`.
pub fn sum_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) {
    sum_axis_impl("sum_axis", x, shape, axis, out, false);
}

/// Mean of `x` (row-major, `shape`) over `axis` into `out` (the shape with `axis` removed,
/// overwritten); NaN if `shape[axis] == 0`, as in torch.
///
/// # Panics
/// If `axis >= shape.len()` or the lengths of `x` or `out` do not match `shape`.
pub fn mean_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) {
    sum_axis_impl("mean_axis", x, shape, axis, out, true);
}

/// First maximum (value and position along the axis) of outputs `start..start + vals.len()`.
fn max_axis_block(x: &[f32], n: usize, inner: usize, start: usize, vals: &mut [f32], idx: &mut [usize]) {
    if inner == 1 {
        // Reducing the last axis: each output scans a contiguous row.
        for (j, (v, i)) in vals.iter_mut().zip(idx.iter_mut()).enumerate() {
            let r = start + j;
            (*i, *v) = first_max(&x[r * n..(r + 1) * n]);
        }
        return;
    }
    for_each_run(start, vals.len(), inner, |j, len| {
        let (o, i0) = ((start + j) / inner, (start + j) % inner);
        let (vals, idx) = (&mut vals[j..j + len], &mut idx[j..j + len]);
        let base = o * n * inner + i0;
        vals.copy_from_slice(&x[base..base + len]);
        idx.fill(0);
        for k in 1..n {
            let base = (o * n + k) * inner + i0;
            for ((b, ix), &v) in vals.iter_mut().zip(idx.iter_mut()).zip(&x[base..base + len]) {
                if beats(v, *b) {
                    *b = v;
                    *ix = k;
                }
            }
        }
    });
}

/// Shared body of `max_axis` and `argmax_axis`.
fn max_axis_impl(op: &str, x: &[f32], shape: &[usize], axis: usize, vals: &mut [f32], idx: &mut [usize]) {
    let (_, n, inner) = axis_dims(op, x.len(), shape, axis, idx.len());
    assert!(n > 0, "{op}: cannot reduce over axis {axis} of size 0 in shape {shape:?}");
    let block = axis_block(n);
    let run = |b: usize, v: &mut [f32], i: &mut [usize]| max_axis_block(x, n, inner, b * block, v, i);
    if should_parallelize(x.len()) {
        vals.par_chunks_mut(block)
            .zip(idx.par_chunks_mut(block))
            .enumerate()
            .for_each(|(b, (v, i))| run(b, v, i));
    } else {
        vals.chunks_mut(block).zip(idx.chunks_mut(block)).enumerate().for_each(|(b, (v, i))| run(b, v, i));
    }
}

/// Maximum of `x` (row-major, `shape`) over `axis` into `out`, and in `argmax` the position
/// along `axis` of the FIRST maximum; both have `numel(shape) / shape[axis]` elements and are
/// overwritten. NaN counts as the maximum, as in torch.
///
/// # Panics
/// If `axis >= shape.len()`, `shape[axis] == 0`, or the lengths do not match `shape`.
pub fn max_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32], argmax: &mut [usize]) {
    assert_eq!(
        out.len(),
        argmax.len(),
        "max_axis: value output has {} elements, argmax output {} (shape {shape:?})",
        out.len(),
        argmax.len()
    );
    max_axis_impl("max_axis", x, shape, axis, out, argmax);
}

/// Position along `axis` of the first maximum of `x` (row-major, `shape`), into `out` (the
/// shape with `axis` removed, overwritten). NaN counts as the maximum, as in torch.
///
/// # Panics
/// If `axis >= shape.len()`, `shape[axis] == 0`, or the lengths do not match `shape`.
pub fn argmax_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [usize]) {
    let mut vals = vec![0.0f32; out.len()];
    max_axis_impl("argmax_axis", x, shape, axis, &mut vals, out);
}

/// Fewest rows in one partial sum of [`sum_rows`].
pub const SUM_ROWS_MIN_ROWS: usize = 64;

/// Column sums of `x` viewed as `[rows, cols]` into `out` (`[cols]`, overwritten): the bias
/// gradient of a dense layer.
///
/// Rows are cut into fixed chunks of at least [`SUM_ROWS_MIN_ROWS`] rows and about [`CHUNK`]
/// elements; each chunk's `f64` partial sums are added in chunk order, so the result does not
/// depend on the thread count.
///
/// # Panics
/// If `x.len() != rows * cols` or `out.len() != cols`.
pub fn sum_rows(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "sum_rows: input has {} elements, expected [{rows}, {cols}]", x.len());
    assert_eq!(out.len(), cols, "sum_rows: output has {} elements, expected [{cols}]", out.len());
    // The minimum keeps the partials (chunks x cols) small for wide layers.
    let rows_per_chunk = (CHUNK / cols.max(1)).max(SUM_ROWS_MIN_ROWS);
    let chunks = rows.div_ceil(rows_per_chunk);
    let partial = |c: usize, acc: &mut [f64]| {
        acc.fill(0.0);
        let end = ((c + 1) * rows_per_chunk).min(rows);
        for row in x[c * rows_per_chunk * cols..end * cols].chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v as f64;
            }
        }
    };
    let mut total = vec![0.0f64; cols];
    let add = |total: &mut [f64], p: &[f64]| {
        for (t, &v) in total.iter_mut().zip(p) {
            *t += v;
        }
    };
    if cols > 0 && should_parallelize(rows * cols) {
        let partials: Vec<Vec<f64>> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0.0f64; cols];
                partial(c, &mut acc);
                acc
            })
            .collect();
        for p in &partials {
            add(&mut total, p);
        }
    } else if cols > 0 {
        let mut acc = vec![0.0f64; cols];
        for c in 0..chunks {
            partial(c, &mut acc);
            add(&mut total, &acc);
        }
    }
    for (o, &t) in out.iter_mut().zip(&total) {
        *o = t as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, assert_par_eq_serial, bits, close, randn};

    /// Naive reference for axis reductions: (sum, first max value, first argmax) per output.
    fn naive_axis(x: &[f32], shape: &[usize], axis: usize) -> (Vec<f64>, Vec<f32>, Vec<usize>) {
        let outer: usize = shape[..axis].iter().product();
        let n = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let (mut sums, mut maxs, mut args) = (vec![], vec![], vec![]);
        for o in 0..outer {
            for i in 0..inner {
                let mut s = 0.0f64;
                let (mut m, mut a) = (f32::NAN, usize::MAX);
                for k in 0..n {
                    let v = x[(o * n + k) * inner + i];
                    s += v as f64;
                    if a == usize::MAX || (!m.is_nan() && (v > m || v.is_nan())) {
                        m = v;
                        a = k;
                    }
                }
                sums.push(s);
                maxs.push(m);
                args.push(a);
            }
        }
        (sums, maxs, args)
    }

    const SHAPES: &[&[usize]] = &[
        &[7],
        &[1],
        &[3, 7],
        &[1, 10],
        &[3, 1],
        &[3, 7, 10],
        &[1, 7, 1],
        &[3, 1, 10],
        &[2, 3, 1, 5],
        &[3, 3000, 7], // output blocks of 5 cross the runs of 7 inner positions
    ];

    // ---- full reductions ----

    #[test]
    fn sum_all_matches_f64_reference() {
        for n in [0, 1, 7, 10, CHUNK - 1, CHUNK + 1, 2 * CHUNK + 7] {
            let x = randn(n, n as u64);
            let want: f64 = x.iter().map(|&v| v as f64).sum();
            assert!(close(sum_all(&x) as f64, want, 1e-7), "n = {n}");
        }
    }

    #[test]
    fn sum_all_accumulates_in_f64() {
        // In f32, 1e8 + 1 == 1e8, so the 1 would be lost.
        assert_eq!(sum_all(&[1e8, 1.0, -1e8]), 1.0);
        assert_eq!(sum_all(&[]), 0.0);
    }

    #[test]
    fn sum_all_parallel_equals_serial_bitwise() {
        let x: Vec<f32> = randn(5 * CHUNK + 3, 11).iter().map(|v| v * 1e3 + 0.1).collect();
        let s = assert_par_eq_serial(|| sum_all(&x).to_bits());
        // The serial path is exactly the chunked sum.
        let chunked = x.chunks(CHUNK).fold(0.0f64, |a, c| a + c.iter().map(|&v| v as f64).sum::<f64>());
        assert_eq!(s, (chunked as f32).to_bits());
    }

    #[test]
    fn mean_all_matches_reference_and_empty_is_nan() {
        for n in [1, 3, 7, 10] {
            let x = randn(n, 20 + n as u64);
            let want = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            assert!(close(mean_all(&x) as f64, want, 1e-7));
        }
        assert!(mean_all(&[]).is_nan());
        let x = randn(3 * CHUNK + 1, 5);
        assert_par_eq_serial(|| mean_all(&x).to_bits());
    }

    #[test]
    fn max_all_and_argmax_all_match_reference() {
        for n in [1, 3, 7, 10] {
            let x = randn(n, 30 + n as u64);
            let (mut bi, mut bv) = (0, x[0]);
            for (i, &v) in x.iter().enumerate() {
                if v > bv {
                    (bi, bv) = (i, v);
                }
            }
            assert_eq!(max_all(&x), bv);
            assert_eq!(argmax_all(&x), bi);
        }
    }

    #[test]
    fn argmax_all_takes_first_of_ties() {
        assert_eq!(argmax_all(&[1.0, 3.0, 2.0, 3.0, 3.0]), 1);
        assert_eq!(argmax_all(&[-1.0, -1.0]), 0);
        assert_eq!(argmax_all(&[f32::NEG_INFINITY; 4]), 0);
        // -0.0 and 0.0 compare equal: the first one wins.
        assert_eq!(argmax_all(&[-0.0, 0.0]), 0);
        assert_eq!(max_all(&[-0.0, 0.0]).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn max_all_propagates_nan_and_argmax_points_at_first_nan() {
        let x = [1.0, f32::NAN, 5.0, f32::NAN];
        assert!(max_all(&x).is_nan());
        assert_eq!(argmax_all(&x), 1);
        assert!(max_all(&[f32::NAN]).is_nan());
    }

    #[test]
    fn max_all_parallel_equals_serial_with_ties_and_nan_across_chunks() {
        let mut x = randn(5 * CHUNK + 3, 40);
        x[CHUNK + 5] = 100.0;
        x[3 * CHUNK + 1] = 100.0;
        x[5 * CHUNK + 2] = 100.0;
        let r = assert_par_eq_serial(|| (argmax_all(&x), max_all(&x).to_bits()));
        assert_eq!(r, (CHUNK + 5, 100.0f32.to_bits()));
        x[4 * CHUNK] = f32::NAN;
        x[4 * CHUNK + 9] = f32::NAN;
        let r = assert_par_eq_serial(|| argmax_all(&x));
        assert_eq!(r, 4 * CHUNK);
    }

    #[test]
    #[should_panic(expected = "max_all: cannot reduce an empty tensor")]
    fn max_all_empty_panics() {
        max_all(&[]);
    }

    #[test]
    #[should_panic(expected = "argmax_all: cannot reduce an empty tensor")]
    fn argmax_all_empty_panics() {
        argmax_all(&[]);
    }

    // ---- axis reductions ----

    #[test]
    fn sum_and_mean_axis_match_reference_on_every_axis() {
        for (s, shape) in SHAPES.iter().enumerate() {
            let x = randn(crate::numel(shape), 100 + s as u64);
            for axis in 0..shape.len() {
                let (sums, _, _) = naive_axis(&x, shape, axis);
                let mut out = vec![f32::NAN; sums.len()];
                sum_axis(&x, shape, axis, &mut out);
                assert_close(&out, &sums, 1e-6, &format!("sum_axis {shape:?} axis {axis}"));
                let means: Vec<f64> = sums.iter().map(|s| s / shape[axis] as f64).collect();
                mean_axis(&x, shape, axis, &mut out);
                assert_close(&out, &means, 1e-6, &format!("mean_axis {shape:?} axis {axis}"));
            }
        }
    }

    #[test]
    fn max_and_argmax_axis_match_reference_on_every_axis() {
        for (s, shape) in SHAPES.iter().enumerate() {
            // Rounding to a coarse grid creates many ties, exercising the first-max rule.
            let x: Vec<f32> =
                randn(crate::numel(shape), 200 + s as u64).iter().map(|v| (v * 2.0).round()).collect();
            for axis in 0..shape.len() {
                let (_, maxs, args) = naive_axis(&x, shape, axis);
                let mut out = vec![0.0; maxs.len()];
                let mut arg = vec![usize::MAX; maxs.len()];
                max_axis(&x, shape, axis, &mut out, &mut arg);
                assert_eq!(out, maxs, "max_axis {shape:?} axis {axis}");
                assert_eq!(arg, args, "max_axis argmax {shape:?} axis {axis}");
                let mut arg2 = vec![usize::MAX; maxs.len()];
                argmax_axis(&x, shape, axis, &mut arg2);
                assert_eq!(arg2, args, "argmax_axis {shape:?} axis {axis}");
            }
        }
    }

    #[test]
    fn max_axis_first_tie_and_nan() {
        // [2, 3]: reduce over axis 1.
        let x = [4.0, 1.0, 4.0, 0.0, f32::NAN, 7.0];
        let (mut out, mut arg) = (vec![0.0; 2], vec![9; 2]);
        max_axis(&x, &[2, 3], 1, &mut out, &mut arg);
        assert_eq!(out[0], 4.0);
        assert!(out[1].is_nan());
        assert_eq!(arg, [0, 1]);
        // Reduce over axis 0 of [3, 2]: columns [1, 1, 0] and [2, 5, 5].
        let x = [1.0, 2.0, 1.0, 5.0, 0.0, 5.0];
        let mut arg = vec![9; 2];
        argmax_axis(&x, &[3, 2], 0, &mut arg);
        assert_eq!(arg, [0, 1]);
    }

    #[test]
    fn sum_axis_overwrites_and_handles_empty_axis() {
        let mut out = vec![123.0; 3];
        sum_axis(&[], &[3, 0], 1, &mut out);
        assert_eq!(out, [0.0; 3]);
        mean_axis(&[], &[3, 0], 1, &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn axis_reductions_parallel_equal_serial_bitwise() {
        for (shape, axis) in
            [(&[3usize, 3000, 7][..], 1), (&[20000, 3][..], 0), (&[5, 7000][..], 1), (&[3, 7, 10][..], 2)]
        {
            let x = randn(crate::numel(shape), 300);
            let m = crate::numel(shape) / shape[axis];
            let sums = assert_par_eq_serial(|| {
                let mut out = vec![0.0; m];
                sum_axis(&x, shape, axis, &mut out);
                bits(&out)
            });
            assert_eq!(sums.len(), m);
            assert_par_eq_serial(|| {
                let mut out = vec![0.0; m];
                mean_axis(&x, shape, axis, &mut out);
                bits(&out)
            });
            assert_par_eq_serial(|| {
                let (mut out, mut arg) = (vec![0.0; m], vec![0; m]);
                max_axis(&x, shape, axis, &mut out, &mut arg);
                (bits(&out), arg)
            });
            assert_par_eq_serial(|| {
                let mut arg = vec![0; m];
                argmax_axis(&x, shape, axis, &mut arg);
                arg
            });
        }
    }

    #[test]
    #[should_panic(expected = "sum_axis: axis 2 is out of range for shape [3, 7]")]
    fn sum_axis_bad_axis_panics() {
        sum_axis(&[0.0; 21], &[3, 7], 2, &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "mean_axis: axis 1 is out of range for shape [4]")]
    fn mean_axis_bad_axis_panics() {
        mean_axis(&[0.0; 4], &[4], 1, &mut [0.0; 1]);
    }

    #[test]
    #[should_panic(expected = "max_axis: axis 3 is out of range for shape [1, 2, 3]")]
    fn max_axis_bad_axis_panics() {
        max_axis(&[0.0; 6], &[1, 2, 3], 3, &mut [0.0; 6], &mut [0; 6]);
    }

    #[test]
    #[should_panic(expected = "argmax_axis: axis 1 is out of range")]
    fn argmax_axis_bad_axis_panics() {
        argmax_axis(&[0.0; 3], &[3], 1, &mut [0; 1]);
    }

    #[test]
    #[should_panic(expected = "sum_axis: output has 7 elements, expected 3")]
    fn sum_axis_wrong_output_length_panics() {
        sum_axis(&[0.0; 21], &[3, 7], 1, &mut [0.0; 7]);
    }

    #[test]
    #[should_panic(expected = "sum_axis: input has 20 elements but shape [3, 7] has 21")]
    fn sum_axis_wrong_input_length_panics() {
        sum_axis(&[0.0; 20], &[3, 7], 1, &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "max_axis: cannot reduce over axis 1 of size 0")]
    fn max_axis_empty_axis_panics() {
        max_axis(&[], &[2, 0], 1, &mut [0.0; 2], &mut [0; 2]);
    }

    // ---- sum_rows ----

    #[test]
    fn sum_rows_matches_reference() {
        for (rows, cols) in [(1, 7), (3, 10), (3, 1), (1, 1), (7, 3), (0, 4), (3000, 7)] {
            let x = randn(rows * cols, (rows * 31 + cols) as u64);
            let want: Vec<f64> = (0..cols).map(|c| (0..rows).map(|r| x[r * cols + c] as f64).sum()).collect();
            let mut out = vec![f32::NAN; cols];
            sum_rows(&x, rows, cols, &mut out);
            assert_close(&out, &want, 1e-6, &format!("sum_rows [{rows}, {cols}]"));
        }
    }

    #[test]
    fn sum_rows_parallel_equals_serial_bitwise() {
        // Several row chunks (CHUNK / 7 rows each), the last one partial.
        for (rows, cols) in [(3 * (CHUNK / 7) + 5, 7), (3, 10), (40, 5000), (4 * SUM_ROWS_MIN_ROWS + 1, 300)]
        {
            let x: Vec<f32> = randn(rows * cols, 400).iter().map(|v| v * 10.0 + 0.3).collect();
            assert_par_eq_serial(|| {
                let mut out = vec![0.0; cols];
                sum_rows(&x, rows, cols, &mut out);
                bits(&out)
            });
        }
    }

    #[test]
    fn sum_rows_agrees_with_sum_axis_zero() {
        let (rows, cols) = (3, 10);
        let x = randn(rows * cols, 401);
        let (mut a, mut b) = (vec![0.0; cols], vec![0.0; cols]);
        sum_rows(&x, rows, cols, &mut a);
        sum_axis(&x, &[rows, cols], 0, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    #[should_panic(expected = "sum_rows: output has 3 elements, expected [7]")]
    fn sum_rows_wrong_output_panics() {
        sum_rows(&[0.0; 21], 3, 7, &mut [0.0; 3]);
    }
}
