//! Reductions: full (`sum_all`, `max_all`, `norm_all`, ...), along one axis (`sum_axis`,
//! `max_axis`, `min_axis`, `var_axis`, `norm_axis`, ...) and the bias-gradient column sum
//! (`sum_rows`). The backward of a sum or mean is a broadcast
//! ([`broadcast_to`](super::broadcast_to), in the `binary` module beside its adjoint
//! `sum_to_shape`); the others have their `_backward` here, beside them. The softmax family,
//! a reduction followed by a map, is in the [`softmax` module](mod@super::softmax).
//!
//! Sums accumulate in `f64` and round once to `f32`. Every parallel path cuts its work at
//! boundaries fixed by the input's shape (never by the thread count) and combines partial
//! results in a fixed order, so parallel and serial runs agree bit for bit.

use std::ops::Range;

use rayon::prelude::*;

use super::parallel::{for_each_block_mut, should_parallelize, CHUNK};

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
    first_by(x, beats)
}

/// `(index, value)` of the first element of a non-empty slice that no later one `better`s.
fn first_by(x: &[f32], better: fn(f32, f32) -> bool) -> (usize, f32) {
    let mut best = (0, x[0]);
    for (i, &v) in x.iter().enumerate().skip(1) {
        if better(v, best.1) {
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

/// First extreme by `better` (value and position along the axis) of outputs `start..start +
/// vals.len()`: [`beats`] for the maximum, [`beats_min`] for the minimum.
fn max_axis_block(
    x: &[f32],
    n: usize,
    inner: usize,
    start: usize,
    vals: &mut [f32],
    idx: &mut [usize],
    better: fn(f32, f32) -> bool,
) {
    if inner == 1 {
        // Reducing the last axis: each output scans a contiguous row.
        for (j, (v, i)) in vals.iter_mut().zip(idx.iter_mut()).enumerate() {
            let r = start + j;
            (*i, *v) = first_by(&x[r * n..(r + 1) * n], better);
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
                if better(v, *b) {
                    *b = v;
                    *ix = k;
                }
            }
        }
    });
}

/// Shared body of `max_axis`, `argmax_axis`, `min_axis` and `argmin_axis`.
fn max_axis_impl(
    op: &str,
    x: &[f32],
    shape: &[usize],
    axis: usize,
    vals: &mut [f32],
    idx: &mut [usize],
    better: fn(f32, f32) -> bool,
) {
    let (_, n, inner) = axis_dims(op, x.len(), shape, axis, idx.len());
    assert!(n > 0, "{op}: cannot reduce over axis {axis} of size 0 in shape {shape:?}");
    let block = axis_block(n);
    let run = |b: usize, v: &mut [f32], i: &mut [usize]| max_axis_block(x, n, inner, b * block, v, i, better);
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
    max_axis_impl("max_axis", x, shape, axis, out, argmax, beats);
}

/// Position along `axis` of the first maximum of `x` (row-major, `shape`), into `out` (the
/// shape with `axis` removed, overwritten). NaN counts as the maximum, as in torch.
///
/// # Panics
/// If `axis >= shape.len()`, `shape[axis] == 0`, or the lengths do not match `shape`.
pub fn argmax_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [usize]) {
    let mut vals = vec![0.0f32; out.len()];
    max_axis_impl("argmax_axis", x, shape, axis, &mut vals, out, beats);
}

/// Whether `v` should replace the running minimum `best`: strictly smaller (so the FIRST
/// minimum wins, as torch's `min(dim)`), or the first NaN (which propagates).
#[inline]
pub(super) fn beats_min(v: f32, best: f32) -> bool {
    v < best || (v.is_nan() && !best.is_nan())
}

/// Minimum of `x` (row-major, `shape`) over `axis` into `out`, and in `argmin` the position
/// along `axis` of the FIRST minimum (torch's `min(dim)`); both have `numel(shape) /
/// shape[axis]` elements and are overwritten. NaN counts as the minimum, as in torch.
///
/// # Panics
/// If `axis >= shape.len()`, `shape[axis] == 0`, or the lengths do not match `shape`.
pub fn min_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32], argmin: &mut [usize]) {
    assert_eq!(
        out.len(),
        argmin.len(),
        "min_axis: value output has {} elements, argmin output {} (shape {shape:?})",
        out.len(),
        argmin.len()
    );
    max_axis_impl("min_axis", x, shape, axis, out, argmin, beats_min);
}

/// Position along `axis` of the first minimum of `x` (row-major, `shape`), into `out` (the
/// shape with `axis` removed, overwritten). NaN counts as the minimum, as in torch.
///
/// # Panics
/// If `axis >= shape.len()`, `shape[axis] == 0`, or the lengths do not match `shape`.
pub fn argmin_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [usize]) {
    let mut vals = vec![0.0f32; out.len()];
    max_axis_impl("argmin_axis", x, shape, axis, &mut vals, out, beats_min);
}

// ---------------------------------------------------------------------------------------------
// Lanes: the general axis view of the max/min backward, var/std, norms and the softmax family
// ---------------------------------------------------------------------------------------------

/// A value of `shape` seen as `outer * inner` lanes of `n = shape[axis]` elements each: lane
/// `j = o * inner + i` holds `x[(o * n + k) * inner + i]` for `k` in `0..n`. Reducing over
/// `axis` maps each lane to one output `j` (the order of the output with `axis` removed, or
/// kept as 1); a lane is contiguous when `inner == 1` (the last axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lanes {
    /// Product of the axes before `axis`.
    pub outer: usize,
    /// Length of `axis`.
    pub n: usize,
    /// Product of the axes after `axis` (the stride of `axis`).
    pub inner: usize,
}

impl Lanes {
    /// The lanes of `shape` along `axis`, checking that `len` (the data's length) fills it.
    ///
    /// # Panics
    /// If `axis >= shape.len()` or `len` is not the product of `shape` (naming `op`).
    pub fn of(op: &str, len: usize, shape: &[usize], axis: usize) -> Lanes {
        assert!(
            axis < shape.len(),
            "{op}: axis {axis} is out of range for shape {shape:?} (rank {})",
            shape.len()
        );
        let lanes = Lanes {
            outer: shape[..axis].iter().product(),
            n: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        };
        assert_eq!(
            len,
            lanes.len(),
            "{op}: input has {len} elements but shape {shape:?} has {}",
            lanes.len()
        );
        lanes
    }

    /// Number of lanes (= elements of the reduced output).
    pub fn count(self) -> usize {
        self.outer * self.inner
    }

    /// Number of elements of the full value.
    pub fn len(self) -> usize {
        self.outer * self.n * self.inner
    }

    /// Flat index of element `k` of lane `j`.
    #[inline]
    pub fn at(self, j: usize, k: usize) -> usize {
        let (o, i) = (j / self.inner, j % self.inner);
        (o * self.n + k) * self.inner + i
    }

    /// The elements of lane `j` of `data` (a full value), in order along the axis.
    #[inline]
    pub(super) fn lane(self, data: &[f32], j: usize) -> impl Iterator<Item = f32> + Clone + '_ {
        data[self.at(j, 0)..].iter().step_by(self.inner).take(self.n).copied()
    }

    /// Checks the length of a reduced (per-lane) argument.
    pub(super) fn check_reduced(self, op: &str, what: &str, len: usize) {
        assert_eq!(
            len,
            self.count(),
            "{op}: {what} has {len} elements, expected {} ({} lanes of {} along the axis)",
            self.count(),
            self.count(),
            self.n
        );
    }

    /// Checks the length of a full-shaped argument.
    pub(super) fn check_full(self, op: &str, what: &str, len: usize) {
        assert_eq!(len, self.len(), "{op}: {what} has {len} elements, expected {}", self.len());
    }

    /// Whole `outer` slices per parallel task: about [`CHUNK`] elements each.
    fn outer_block(self) -> usize {
        (CHUNK / (self.n * self.inner).max(1)).max(1)
    }
}

/// The elements of one lane of a full-shaped buffer, mutably, in order along the axis.
pub(super) type LaneMut<'a> = std::iter::Take<std::iter::StepBy<std::slice::IterMut<'a, f32>>>;

/// `out[j] = f(j)` for every lane `j` (`f` reads the lane itself with [`Lanes::lane`]); parallel over fixed blocks of whole `outer`
/// slices when large, so the result does not depend on the thread count.
pub(super) fn reduce_lanes(lanes: Lanes, out: &mut [f32], f: impl Fn(usize) -> f32 + Sync + Send) {
    let width = lanes.outer_block() * lanes.inner;
    for_each_block_mut(out, width, lanes.len(), |b, o| {
        for (jj, v) in o.iter_mut().enumerate() {
            *v = f(b * width + jj);
        }
    });
}

/// Calls `f(j, lane)` for every lane `j` of the full-shaped `out`, with `lane` the lane's
/// elements as mutable references in order along the axis; parallel over fixed blocks of
/// whole `outer` slices (each owning a contiguous piece of `out`) when large.
pub(super) fn map_lanes(lanes: Lanes, out: &mut [f32], f: impl Fn(usize, LaneMut<'_>) + Sync + Send) {
    let ob = lanes.outer_block();
    let (n, inner) = (lanes.n, lanes.inner);
    for_each_block_mut(out, ob * n * inner, lanes.len(), |b, block| {
        for ol in 0..block.len() / (n * inner).max(1) {
            for i in 0..inner {
                let start = ol * n * inner + i;
                f((b * ob + ol) * inner + i, block[start..].iter_mut().step_by(inner).take(n));
            }
        }
    });
}

/// Backward of [`max_axis`] and [`min_axis`]: `dx[.., idx[j], ..] += dy[j]`, each output's
/// gradient to the one position its value came from (`idx` is the arg-max or arg-min);
/// `dx` has `shape`, `dy` and `idx` the reduced shape.
///
/// # Panics
/// If a length does not match, or an index is not below `shape[axis]`.
pub fn max_axis_backward(dy: &[f32], idx: &[usize], shape: &[usize], axis: usize, dx: &mut [f32]) {
    let op = "max_axis_backward";
    let lanes = Lanes::of(op, dx.len(), shape, axis);
    lanes.check_reduced(op, "dy", dy.len());
    lanes.check_reduced(op, "idx", idx.len());
    for (j, (&g, &k)) in dy.iter().zip(idx).enumerate() {
        assert!(k < lanes.n, "{op}: index {k} of output {j} is out of range for axis {axis} of {shape:?}");
        dx[lanes.at(j, k)] += g;
    }
}

// ---------------------------------------------------------------------------------------------
// Variance, standard deviation and L2 norms along an axis (on lanes), each with its backward
// ---------------------------------------------------------------------------------------------

/// Mean and variance of each lane, in `f64`: two passes (mean, then squared deviations),
/// which stays accurate when the mean is large compared with the spread.
fn lane_moments(lane: impl Iterator<Item = f32> + Clone, n: usize, correction: usize) -> (f64, f64) {
    let mean = lane.clone().fold(0.0f64, |a, v| a + v as f64) / n as f64;
    let ss = lane.fold(0.0f64, |a, v| a + (v as f64 - mean).powi(2));
    // n - correction <= 0 divides by zero or less: torch gives inf or NaN there, and so do we.
    (mean, ss / (n as f64 - correction as f64).max(0.0))
}

/// Variance of `x` (row-major, `shape`) over `axis` with Bessel's `correction` (torch's
/// `var(dim, correction=..)`: 1 is the unbiased estimate, 0 the population variance), into
/// `var`, and the lane means into `mean` (for the backward); both have the reduced shape and
/// are overwritten. `shape[axis] <= correction` gives NaN (or inf), as in torch.
///
/// # Panics
/// If `axis >= shape.len()` or a length does not match `shape`.
pub fn var_axis(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    correction: usize,
    mean: &mut [f32],
    var: &mut [f32],
) {
    let op = "var_axis";
    let lanes = Lanes::of(op, x.len(), shape, axis);
    lanes.check_reduced(op, "mean", mean.len());
    lanes.check_reduced(op, "var", var.len());
    reduce_lanes(lanes, var, |j| lane_moments(lanes.lane(x, j), lanes.n, correction).1 as f32);
    reduce_lanes(lanes, mean, |j| {
        (lanes.lane(x, j).fold(0.0f64, |a, v| a + v as f64) / lanes.n as f64) as f32
    });
}

/// Adds `coef[j] * (x - mean[j])` to lane `j` of `dx`, for every lane.
fn add_centered(
    lanes: Lanes,
    x: &[f32],
    mean: &[f32],
    coef: impl Fn(usize) -> f32 + Sync + Send,
    dx: &mut [f32],
) {
    map_lanes(lanes, dx, |j, d| {
        let (c, m) = (coef(j), mean[j]);
        for (d, v) in d.zip(lanes.lane(x, j)) {
            *d += c * (v - m);
        }
    });
}

/// Backward of [`var_axis`]: `dx += dvar[j] * 2 (x - mean[j]) / (n - correction)`.
///
/// # Panics
/// If a length does not match `shape`.
pub fn var_axis_backward(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    correction: usize,
    mean: &[f32],
    dvar: &[f32],
    dx: &mut [f32],
) {
    let op = "var_axis_backward";
    let lanes = Lanes::of(op, x.len(), shape, axis);
    lanes.check_reduced(op, "mean", mean.len());
    lanes.check_reduced(op, "dvar", dvar.len());
    lanes.check_full(op, "dx", dx.len());
    let denom = lanes.n as f64 - correction as f64;
    add_centered(lanes, x, mean, |j| (2.0 * dvar[j] as f64 / denom) as f32, dx);
}

/// Backward of the standard deviation `std = sqrt(var_axis(..))`: `dx += dstd[j] (x -
/// mean[j]) / ((n - correction) std[j])`, and nothing where `std[j] == 0` (a constant lane),
/// as torch's `std_backward`, so that a constant input gets a zero gradient, not NaN.
///
/// # Panics
/// If a length does not match `shape`.
#[allow(clippy::too_many_arguments)] // the variance's arguments plus its square root
pub fn std_axis_backward(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    correction: usize,
    mean: &[f32],
    std: &[f32],
    dstd: &[f32],
    dx: &mut [f32],
) {
    let op = "std_axis_backward";
    let lanes = Lanes::of(op, x.len(), shape, axis);
    lanes.check_reduced(op, "mean", mean.len());
    lanes.check_reduced(op, "std", std.len());
    lanes.check_reduced(op, "dstd", dstd.len());
    lanes.check_full(op, "dx", dx.len());
    let denom = lanes.n as f64 - correction as f64;
    let coef = |j: usize| if std[j] == 0.0 { 0.0 } else { (dstd[j] as f64 / (denom * std[j] as f64)) as f32 };
    add_centered(lanes, x, mean, coef, dx);
}

/// Euclidean (L2) norm of all of `x`, `sqrt(sum x^2)`, summed in `f64` over fixed chunks
/// (torch's `torch.linalg.vector_norm(x)`); `0.0` for an empty slice.
pub fn norm_all(x: &[f32]) -> f32 {
    chunked_sum_f64(x.len(), |r| x[r].iter().fold(0.0f64, |a, &v| a + (v as f64) * (v as f64))).sqrt() as f32
}

/// Euclidean (L2) norm of `x` (row-major, `shape`) over `axis` into `out` (the reduced shape,
/// overwritten); torch's `torch.linalg.vector_norm(x, 2, dim)`.
///
/// # Panics
/// If `axis >= shape.len()` or a length does not match `shape`.
pub fn norm_axis(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) {
    let lanes = Lanes::of("norm_axis", x.len(), shape, axis);
    lanes.check_reduced("norm_axis", "output", out.len());
    reduce_lanes(lanes, out, |j| {
        lanes.lane(x, j).fold(0.0f64, |a, v| a + (v as f64) * (v as f64)).sqrt() as f32
    });
}

/// Backward of [`norm_axis`] (and of [`norm_all`], as `shape = [n]`, `axis = 0`):
/// `dx += dnorm[j] x / norm[j]`, and nothing where `norm[j] == 0` (torch's subgradient 0 at
/// the zero vector).
///
/// # Panics
/// If a length does not match `shape`.
pub fn norm_axis_backward(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    norm: &[f32],
    dnorm: &[f32],
    dx: &mut [f32],
) {
    let op = "norm_axis_backward";
    let lanes = Lanes::of(op, x.len(), shape, axis);
    lanes.check_reduced(op, "norm", norm.len());
    lanes.check_reduced(op, "dnorm", dnorm.len());
    lanes.check_full(op, "dx", dx.len());
    map_lanes(lanes, dx, |j, d| {
        if norm[j] == 0.0 {
            return;
        }
        let c = dnorm[j] / norm[j];
        for (d, v) in d.zip(lanes.lane(x, j)) {
            *d += c * v;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Column sums of a matrix: the bias gradient
// ---------------------------------------------------------------------------------------------

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
            assert_par_eq_serial(|| {
                let (mut out, mut arg) = (vec![0.0; m], vec![0; m]);
                min_axis(&x, shape, axis, &mut out, &mut arg);
                (bits(&out), arg)
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

    // ---- lanes: min, var, std, norm and the backward of max/min ----

    /// The lanes of `x` along `axis` as vectors (naive multi-index walk).
    fn naive_lanes(x: &[f32], shape: &[usize], axis: usize) -> Vec<Vec<f64>> {
        let outer: usize = shape[..axis].iter().product();
        let n = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let mut lanes = vec![];
        for o in 0..outer {
            for i in 0..inner {
                lanes.push((0..n).map(|k| x[(o * n + k) * inner + i] as f64).collect());
            }
        }
        lanes
    }

    #[test]
    fn min_and_argmin_axis_match_reference_on_every_axis() {
        for (s, shape) in SHAPES.iter().enumerate() {
            // Coarse values: many ties, so the first-minimum rule is exercised.
            let x: Vec<f32> =
                randn(crate::numel(shape), 210 + s as u64).iter().map(|v| (v * 2.0).round()).collect();
            for axis in 0..shape.len() {
                let (mut want_v, mut want_i) = (vec![], vec![]);
                for lane in naive_lanes(&x, shape, axis) {
                    let mut best = 0;
                    for (k, &v) in lane.iter().enumerate() {
                        if v < lane[best] {
                            best = k;
                        }
                    }
                    want_v.push(lane[best] as f32);
                    want_i.push(best);
                }
                let (mut out, mut arg) = (vec![0.0; want_v.len()], vec![usize::MAX; want_v.len()]);
                min_axis(&x, shape, axis, &mut out, &mut arg);
                assert_eq!((&out, &arg), (&want_v, &want_i), "min_axis {shape:?} axis {axis}");
                let mut arg2 = vec![usize::MAX; want_v.len()];
                argmin_axis(&x, shape, axis, &mut arg2);
                assert_eq!(arg2, want_i, "argmin_axis {shape:?} axis {axis}");
            }
        }
    }

    #[test]
    fn min_axis_propagates_nan() {
        let x = [4.0, f32::NAN, -7.0, 1.0, 1.0, 2.0];
        let (mut out, mut arg) = (vec![0.0; 2], vec![9; 2]);
        min_axis(&x, &[2, 3], 1, &mut out, &mut arg);
        assert!(out[0].is_nan());
        assert_eq!((out[1], arg), (1.0, vec![1, 0]));
    }

    #[test]
    fn max_axis_backward_sends_each_gradient_to_its_index() {
        for (s, shape) in SHAPES.iter().enumerate() {
            let x = randn(crate::numel(shape), 220 + s as u64);
            for axis in 0..shape.len() {
                let m = x.len() / shape[axis];
                let (mut out, mut arg) = (vec![0.0; m], vec![0; m]);
                max_axis(&x, shape, axis, &mut out, &mut arg);
                let dy = randn(m, 221);
                let mut dx = vec![0.5; x.len()];
                max_axis_backward(&dy, &arg, shape, axis, &mut dx);
                // Every lane has exactly one non-0.5 element, at the argmax, holding 0.5 + dy.
                let inner: usize = shape[axis + 1..].iter().product();
                for j in 0..m {
                    let (o, i) = (j / inner, j % inner);
                    for k in 0..shape[axis] {
                        let want = if k == arg[j] { 0.5 + dy[j] } else { 0.5 };
                        assert_eq!(dx[(o * shape[axis] + k) * inner + i], want, "{shape:?} axis {axis}");
                    }
                }
            }
        }
    }

    #[test]
    fn var_std_and_norm_axis_match_reference_on_every_axis() {
        for (s, shape) in SHAPES.iter().enumerate() {
            // A large offset: the two-pass variance must not lose the spread to it.
            let x: Vec<f32> = randn(crate::numel(shape), 230 + s as u64).iter().map(|v| v + 100.0).collect();
            for axis in 0..shape.len() {
                let lanes = naive_lanes(&x, shape, axis);
                let m = lanes.len();
                for correction in [0, 1] {
                    let (mut mean, mut var) = (vec![0.0; m], vec![0.0; m]);
                    var_axis(&x, shape, axis, correction, &mut mean, &mut var);
                    let want_mean: Vec<f64> =
                        lanes.iter().map(|l| l.iter().sum::<f64>() / l.len() as f64).collect();
                    let want_var: Vec<f64> = lanes
                        .iter()
                        .zip(&want_mean)
                        .map(|(l, mu)| {
                            l.iter().map(|v| (v - mu).powi(2)).sum::<f64>()
                                / (l.len() as f64 - correction as f64)
                        })
                        .collect();
                    assert_close(&mean, &want_mean, 1e-6, &format!("mean {shape:?} axis {axis}"));
                    if shape[axis] > correction {
                        assert_close(
                            &var,
                            &want_var,
                            1e-5,
                            &format!("var {shape:?} axis {axis} c {correction}"),
                        );
                    } else {
                        // One element, unbiased: 0 / 0, as torch.
                        assert!(var.iter().all(|v| v.is_nan()), "{var:?}");
                    }
                }
                let mut norm = vec![0.0; m];
                let xs: Vec<f32> = x.iter().map(|v| v - 100.0).collect();
                norm_axis(&xs, shape, axis, &mut norm);
                let want: Vec<f64> = naive_lanes(&xs, shape, axis)
                    .iter()
                    .map(|l| l.iter().map(|v| v * v).sum::<f64>().sqrt())
                    .collect();
                assert_close(&norm, &want, 1e-6, &format!("norm {shape:?} axis {axis}"));
            }
        }
        let x = randn(2 * CHUNK + 5, 239);
        let want = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        assert!(close(norm_all(&x) as f64, want, 1e-6));
        assert_eq!(norm_all(&[]), 0.0);
    }

    /// Central differences of `f` (a scalar of `x`) at every element, in f64 arithmetic over
    /// an f32 input.
    fn finite_diff(x: &[f32], h: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
        (0..x.len())
            .map(|i| {
                let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
                xp[i] += h;
                xm[i] -= h;
                (f(&xp) - f(&xm)) / (xp[i] as f64 - xm[i] as f64)
            })
            .collect()
    }

    #[test]
    fn var_std_norm_backward_match_finite_differences_on_every_axis() {
        for shape in [&[7usize][..], &[3, 4], &[2, 3, 4]] {
            let x = randn(crate::numel(shape), 240);
            for axis in 0..shape.len() {
                let m = x.len() / shape[axis];
                let w = randn(m, 241);
                let weigh = |y: &[f32]| y.iter().zip(&w).map(|(&y, &w)| y as f64 * w as f64).sum::<f64>();
                let var = |x: &[f32], c: usize| {
                    let (mut mean, mut var) = (vec![0.0; m], vec![0.0; m]);
                    var_axis(x, shape, axis, c, &mut mean, &mut var);
                    (mean, var)
                };
                for c in [0, 1] {
                    let (mean, v) = var(&x, c);
                    let std: Vec<f32> = v.iter().map(|v| v.sqrt()).collect();
                    let mut dx = vec![0.0; x.len()];
                    var_axis_backward(&x, shape, axis, c, &mean, &w, &mut dx);
                    let fd = finite_diff(&x, 1e-2, |x| weigh(&var(x, c).1));
                    assert_close(&dx, &fd, 2e-3, &format!("var backward {shape:?} axis {axis} c {c}"));
                    let mut dx = vec![0.0; x.len()];
                    std_axis_backward(&x, shape, axis, c, &mean, &std, &w, &mut dx);
                    let fd = finite_diff(&x, 1e-2, |x| {
                        weigh(&var(x, c).1.iter().map(|v| v.sqrt()).collect::<Vec<_>>())
                    });
                    assert_close(&dx, &fd, 2e-3, &format!("std backward {shape:?} axis {axis} c {c}"));
                }
                let norm = |x: &[f32]| {
                    let mut out = vec![0.0; m];
                    norm_axis(x, shape, axis, &mut out);
                    out
                };
                let mut dx = vec![0.0; x.len()];
                norm_axis_backward(&x, shape, axis, &norm(&x), &w, &mut dx);
                let fd = finite_diff(&x, 1e-2, |x| weigh(&norm(x)));
                assert_close(&dx, &fd, 2e-3, &format!("norm backward {shape:?} axis {axis}"));
            }
        }
    }

    #[test]
    fn std_and_norm_backward_are_zero_at_a_constant_or_zero_lane() {
        // Lane 0 constant (std 0) and all zeros (norm 0); lane 1 not.
        let x = [0.0, 0.0, 0.0, 1.0, 2.0, 4.0];
        let (mut mean, mut var) = ([0.0; 2], [0.0; 2]);
        var_axis(&x, &[2, 3], 1, 1, &mut mean, &mut var);
        let std = [var[0].sqrt(), var[1].sqrt()];
        assert_eq!(std[0], 0.0);
        let mut dx = [0.0; 6];
        std_axis_backward(&x, &[2, 3], 1, 1, &mean, &std, &[1.0, 1.0], &mut dx);
        assert_eq!(&dx[..3], &[0.0; 3]);
        assert!(dx[3..].iter().all(|v| v.is_finite() && *v != 0.0), "{dx:?}");
        let mut norm = [0.0; 2];
        norm_axis(&x, &[2, 3], 1, &mut norm);
        let mut dx = [0.0; 6];
        norm_axis_backward(&x, &[2, 3], 1, &norm, &[1.0, 1.0], &mut dx);
        assert_eq!(&dx[..3], &[0.0; 3]);
        assert!(close(dx[5] as f64, 4.0 / 21f64.sqrt(), 1e-6));
    }

    #[test]
    fn lane_kernels_parallel_equal_serial_bitwise() {
        for (shape, axis) in
            [(&[3usize, 3000, 7][..], 1), (&[20000, 3][..], 0), (&[5, 7000][..], 1), (&[3, 7, 10][..], 2)]
        {
            let x = randn(crate::numel(shape), 250);
            let m = crate::numel(shape) / shape[axis];
            let dy = randn(m, 251);
            let (mean, var) = assert_par_eq_serial(|| {
                let (mut mean, mut var) = (vec![0.0; m], vec![0.0; m]);
                var_axis(&x, shape, axis, 1, &mut mean, &mut var);
                (mean, var)
            });
            assert_par_eq_serial(|| {
                let mut dx = vec![0.1; x.len()];
                var_axis_backward(&x, shape, axis, 1, &mean, &dy, &mut dx);
                bits(&dx)
            });
            let std: Vec<f32> = var.iter().map(|v| v.sqrt()).collect();
            assert_par_eq_serial(|| {
                let mut dx = vec![0.1; x.len()];
                std_axis_backward(&x, shape, axis, 1, &mean, &std, &dy, &mut dx);
                bits(&dx)
            });
            let norm = assert_par_eq_serial(|| {
                let mut out = vec![0.0; m];
                norm_axis(&x, shape, axis, &mut out);
                out
            });
            assert_par_eq_serial(|| {
                let mut dx = vec![0.1; x.len()];
                norm_axis_backward(&x, shape, axis, &norm, &dy, &mut dx);
                bits(&dx)
            });
        }
        let x = randn(3 * CHUNK + 1, 252);
        assert_par_eq_serial(|| norm_all(&x).to_bits());
    }

    #[test]
    #[should_panic(expected = "min_axis: cannot reduce over axis 1 of size 0")]
    fn min_axis_empty_axis_panics() {
        min_axis(&[], &[2, 0], 1, &mut [0.0; 2], &mut [0; 2]);
    }

    #[test]
    #[should_panic(expected = "var_axis: axis 2 is out of range for shape [3, 7]")]
    fn var_axis_bad_axis_panics() {
        var_axis(&[0.0; 21], &[3, 7], 2, 1, &mut [0.0; 3], &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "norm_axis_backward: dnorm has 2 elements, expected 3")]
    fn norm_axis_backward_wrong_dnorm_panics() {
        norm_axis_backward(&[0.0; 21], &[3, 7], 1, &[1.0; 3], &[0.0; 2], &mut [0.0; 21]);
    }

    #[test]
    #[should_panic(expected = "max_axis_backward: index 7 of output 1 is out of range for axis 1 of [3, 7]")]
    fn max_axis_backward_bad_index_panics() {
        max_axis_backward(&[0.0; 3], &[0, 7, 0], &[3, 7], 1, &mut [0.0; 21]);
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
