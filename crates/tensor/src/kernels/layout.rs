//! Data movement: permuting axes, slicing along an axis (with a step), concatenating along an
//! axis, each followed by its backward (the adjoint movement, added into the gradient).
//!
//! All of them copy between a contiguous row-major buffer and a strided view of another one.
//! The copy first merges the axes that are contiguous on both sides (a slice of the first
//! axis, or a permutation that keeps the last axes in place, is one long run), so the inner
//! loop is a `copy_from_slice` (or an add of two slices) over the longest contiguous run;
//! only a view whose last axis is strided (a transpose of the last two axes) moves one
//! element at a time. Every output element is written by exactly one copy, so the result
//! does not depend on the order of the runs; the loops are serial (they move memory, they
//! do not compute).

/// Copies (or, with `accumulate`, adds) the elements of a `shape`-shaped view of `src`
/// (`src_off` + index . `src_strides`) to the same-shaped view of `dst`.
#[allow(clippy::too_many_arguments)]
fn copy_strided(
    src: &[f32],
    src_off: usize,
    src_strides: &[usize],
    dst: &mut [f32],
    dst_off: usize,
    dst_strides: &[usize],
    shape: &[usize],
    accumulate: bool,
) {
    if shape.contains(&0) {
        return;
    }
    // Merge axes, outermost first: an axis merges into the one before it when stepping the
    // outer one is the same as running off the end of the inner one, on both sides.
    let mut dims: Vec<(usize, usize, usize)> = Vec::with_capacity(shape.len());
    for ((&n, &ss), &ds) in shape.iter().zip(src_strides).zip(dst_strides) {
        if n == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if last.1 == n * ss && last.2 == n * ds => *last = (last.0 * n, ss, ds),
            _ => dims.push((n, ss, ds)),
        }
    }
    let (run, ss, ds) = dims.pop().unwrap_or((1, 1, 1));
    let mut idx = vec![0usize; dims.len()];
    let (mut s, mut d) = (src_off, dst_off);
    loop {
        match (ss, ds, accumulate) {
            (1, 1, false) => dst[d..d + run].copy_from_slice(&src[s..s + run]),
            (1, 1, true) => {
                for (o, &v) in dst[d..d + run].iter_mut().zip(&src[s..s + run]) {
                    *o += v;
                }
            }
            _ => {
                for i in 0..run {
                    let v = src[s + i * ss];
                    let o = &mut dst[d + i * ds];
                    *o = if accumulate { *o + v } else { v };
                }
            }
        }
        // Next run: an odometer over the outer axes.
        let mut j = dims.len();
        loop {
            if j == 0 {
                return;
            }
            j -= 1;
            let (n, sj, dj) = dims[j];
            idx[j] += 1;
            s += sj;
            d += dj;
            if idx[j] < n {
                break;
            }
            idx[j] = 0;
            s -= n * sj;
            d -= n * dj;
        }
    }
}

fn check_len(op: &str, what: &str, len: usize, want: usize, shape: &[usize]) {
    assert_eq!(len, want, "{op}: {what} has {len} elements, shape {shape:?} needs {want}");
}

/// The strides of `shape` with its axes permuted: axis `i` of the result is axis `axes[i]`.
fn permuted_strides(op: &str, shape: &[usize], axes: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut seen = vec![false; shape.len()];
    assert!(
        axes.len() == shape.len()
            && axes.iter().all(|&a| a < shape.len() && !std::mem::replace(&mut seen[a], true)),
        "{op}: axes {axes:?} are not a permutation of the axes of shape {shape:?}"
    );
    let st = crate::strides(shape);
    (axes.iter().map(|&a| shape[a]).collect(), axes.iter().map(|&a| st[a]).collect())
}

/// `out = x.permute(axes)` for `x` of shape `shape`, written contiguous: axis `i` of `out`
/// (shape `[shape[axes[0]], ...]`) is axis `axes[i]` of `x` (`torch.permute`).
pub fn permute(x: &[f32], shape: &[usize], axes: &[usize], out: &mut [f32]) {
    let n = crate::numel(shape);
    check_len("permute", "x", x.len(), n, shape);
    check_len("permute", "out", out.len(), n, shape);
    let (out_shape, src_strides) = permuted_strides("permute", shape, axes);
    copy_strided(x, 0, &src_strides, out, 0, &crate::strides(&out_shape), &out_shape, false);
}

/// The backward of [`permute`]: `dx += dy` permuted back (`dy` has the permuted shape, `dx`
/// the shape `shape` of `x`).
pub fn permute_backward(dy: &[f32], shape: &[usize], axes: &[usize], dx: &mut [f32]) {
    let n = crate::numel(shape);
    check_len("permute_backward", "dy", dy.len(), n, shape);
    check_len("permute_backward", "dx", dx.len(), n, shape);
    let (out_shape, dst_strides) = permuted_strides("permute_backward", shape, axes);
    copy_strided(dy, 0, &crate::strides(&out_shape), dx, 0, &dst_strides, &out_shape, true);
}

/// The shape of `slice_axis(.., axis, start, len, step)` and the view it reads.
fn slice_view(
    op: &str,
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    step: usize,
) -> (Vec<usize>, usize, Vec<usize>) {
    assert!(axis < shape.len(), "{op}: axis {axis} is out of range for shape {shape:?}");
    assert!(step >= 1, "{op}: step must be at least 1, got {step} (shape {shape:?})");
    assert!(
        len == 0 || start + (len - 1) * step < shape[axis],
        "{op}: {len} items from {start} with step {step} go past the {} items of axis {axis} \
         of shape {shape:?}",
        shape[axis]
    );
    let mut strides = crate::strides(shape);
    let offset = if len == 0 { 0 } else { start * strides[axis] };
    strides[axis] *= step;
    let mut out_shape = shape.to_vec();
    out_shape[axis] = len;
    (out_shape, offset, strides)
}

/// `out = x[.., start : start + len*step : step, ..]` along `axis` (`len` items, every
/// `step`-th from `start`), written contiguous: `torch.narrow` for `step = 1`, Python slicing
/// `x[:, a:b:step]` otherwise. `select` (PyTorch's `x[:, i]`) is `len = 1` with the axis
/// then dropped from the shape, the same data.
pub fn slice_axis(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    step: usize,
    out: &mut [f32],
) {
    check_len("slice_axis", "x", x.len(), crate::numel(shape), shape);
    let (out_shape, offset, strides) = slice_view("slice_axis", shape, axis, start, len, step);
    check_len("slice_axis", "out", out.len(), crate::numel(&out_shape), &out_shape);
    copy_strided(x, offset, &strides, out, 0, &crate::strides(&out_shape), &out_shape, false);
}

/// The backward of [`slice_axis`]: adds `dy` into the sliced items of `dx` (shape `shape`);
/// the other items of `dx` are left as they are (their gradient from this op is zero).
#[allow(clippy::too_many_arguments)]
pub fn slice_axis_backward(
    dy: &[f32],
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    step: usize,
    dx: &mut [f32],
) {
    check_len("slice_axis_backward", "dx", dx.len(), crate::numel(shape), shape);
    let (out_shape, offset, strides) = slice_view("slice_axis_backward", shape, axis, start, len, step);
    check_len("slice_axis_backward", "dy", dy.len(), crate::numel(&out_shape), &out_shape);
    copy_strided(dy, 0, &crate::strides(&out_shape), dx, offset, &strides, &out_shape, true);
}

/// The layout of `torch.cat` of parts of shapes `shapes` along `axis`: the output shape, and
/// the `outer`, `sizes` and `inner` that [`concat()`] takes.
///
/// # Panics
/// If there is no part, or the shapes differ in rank or in an axis other than `axis`; the
/// message names `op` and the shapes.
pub fn concat_layout(op: &str, shapes: &[&[usize]], axis: usize) -> (Vec<usize>, usize, Vec<usize>, usize) {
    assert!(!shapes.is_empty(), "{op}: no values to concatenate");
    let first = shapes[0];
    assert!(axis < first.len(), "{op}: axis {axis} is out of range for shape {first:?}");
    for s in shapes {
        let same =
            s.len() == first.len() && s.iter().zip(first).enumerate().all(|(d, (a, b))| d == axis || a == b);
        assert!(same, "{op}: shapes {shapes:?} differ in an axis other than axis {axis}");
    }
    let sizes: Vec<usize> = shapes.iter().map(|s| s[axis]).collect();
    let mut out_shape = first.to_vec();
    out_shape[axis] = sizes.iter().sum();
    let outer = crate::numel(&first[..axis]);
    let inner = crate::numel(&first[axis + 1..]);
    (out_shape, outer, sizes, inner)
}

/// `out = torch.cat(parts, axis)` for parts viewed as `[outer, sizes[p], inner]` (`outer` the
/// product of the axes before `axis`, `inner` of those after it, the same for every part):
/// `out` is `[outer, sum(sizes), inner]`. For each outer index, each part is one contiguous
/// run of `sizes[p] * inner` elements.
pub fn concat(parts: &[&[f32]], sizes: &[usize], outer: usize, inner: usize, out: &mut [f32]) {
    assert_eq!(parts.len(), sizes.len(), "concat: {} parts but {} sizes", parts.len(), sizes.len());
    let total: usize = sizes.iter().sum();
    assert_eq!(
        out.len(),
        outer * total * inner,
        "concat: out has {} elements, [{outer}, {total}, {inner}] needs {}",
        out.len(),
        outer * total * inner
    );
    let mut off = 0;
    for (p, (part, &size)) in parts.iter().zip(sizes).enumerate() {
        let run = size * inner;
        assert_eq!(
            part.len(),
            outer * run,
            "concat: part {p} has {} elements, [{outer}, {size}, {inner}] needs {}",
            part.len(),
            outer * run
        );
        for o in 0..outer {
            let at = o * total * inner + off;
            out[at..at + run].copy_from_slice(&part[o * run..(o + 1) * run]);
        }
        off += run;
    }
}

/// The backward of [`concat()`] for part `part`: `dpart += ` its items of `dy`
/// (`[outer, sum(sizes), inner]`).
pub fn concat_backward(
    dy: &[f32],
    sizes: &[usize],
    outer: usize,
    inner: usize,
    part: usize,
    dpart: &mut [f32],
) {
    let total: usize = sizes.iter().sum();
    assert_eq!(
        dy.len(),
        outer * total * inner,
        "concat_backward: dy has {} elements, [{outer}, {total}, {inner}] needs {}",
        dy.len(),
        outer * total * inner
    );
    assert!(part < sizes.len(), "concat_backward: part {part} of {} parts", sizes.len());
    let run = sizes[part] * inner;
    let off: usize = sizes[..part].iter().sum::<usize>() * inner;
    assert_eq!(
        dpart.len(),
        outer * run,
        "concat_backward: dpart has {} elements, [{outer}, {}, {inner}] needs {}",
        dpart.len(),
        sizes[part],
        outer * run
    );
    for o in 0..outer {
        let at = o * total * inner + off;
        for (g, &v) in dpart[o * run..(o + 1) * run].iter_mut().zip(&dy[at..at + run]) {
            *g += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::randn;
    use crate::{numel, strides};

    /// The multi-index of flat position `flat` in `shape`.
    fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
        idx
    }

    fn ravel(idx: &[usize], shape: &[usize]) -> usize {
        idx.iter().zip(strides(shape)).map(|(i, s)| i * s).sum()
    }

    /// permute by the definition: out[i] = x[i mapped back through axes].
    fn naive_permute(x: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
        let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        (0..x.len())
            .map(|f| {
                let oi = unravel(f, &out_shape);
                let mut xi = vec![0; shape.len()];
                for (d, &a) in axes.iter().enumerate() {
                    xi[a] = oi[d];
                }
                x[ravel(&xi, shape)]
            })
            .collect()
    }

    const PERMS: [(&[usize], &[usize]); 7] = [
        (&[3, 4], &[1, 0]),
        (&[2, 3, 4], &[0, 2, 1]),
        (&[2, 3, 4], &[2, 0, 1]),
        (&[2, 3, 4, 5], &[0, 2, 1, 3]),
        (&[2, 1, 4, 3], &[3, 1, 0, 2]),
        (&[5], &[0]),
        (&[2, 0, 3], &[2, 1, 0]),
    ];

    #[test]
    fn permute_matches_the_definition_and_backward_is_its_adjoint() {
        for (shape, axes) in PERMS {
            let n = numel(shape);
            let x = randn(n, 1);
            let mut out = vec![f32::NAN; n];
            permute(&x, shape, axes, &mut out);
            assert_eq!(out, naive_permute(&x, shape, axes), "{shape:?} {axes:?}");
            // Backward: dx = 0.5 + permute^-1(dy), i.e. <permute(x), dy> = <x, dx - 0.5>.
            let dy = randn(n, 2);
            let mut dx = vec![0.5; n];
            permute_backward(&dy, shape, axes, &mut dx);
            let mut inv = vec![0; axes.len()];
            for (i, &a) in axes.iter().enumerate() {
                inv[a] = i;
            }
            let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
            let back: Vec<f32> = naive_permute(&dy, &out_shape, &inv).iter().map(|v| v + 0.5).collect();
            assert_eq!(dx, back, "{shape:?} {axes:?}");
        }
    }

    #[test]
    #[should_panic(expected = "permute: axes [0, 0] are not a permutation of the axes of shape [2, 3]")]
    fn permute_rejects_a_repeated_axis() {
        permute(&[0.0; 6], &[2, 3], &[0, 0], &mut [0.0; 6]);
    }

    #[test]
    fn slice_axis_matches_the_definition_and_backward_scatters() {
        let cases: [(&[usize], usize, usize, usize, usize); 7] = [
            (&[6, 4], 0, 1, 3, 1),
            (&[6, 4], 1, 1, 2, 2),
            (&[3, 7, 5], 1, 0, 4, 2),
            (&[3, 7, 5], 2, 4, 1, 1),
            (&[3, 7, 5], 0, 2, 1, 1),
            (&[2, 9, 3], 1, 2, 3, 3),
            (&[4, 3], 0, 1, 0, 1),
        ];
        for (shape, axis, start, len, step) in cases {
            let x = randn(numel(shape), 3);
            let mut out_shape = shape.to_vec();
            out_shape[axis] = len;
            let want: Vec<f32> = (0..numel(&out_shape))
                .map(|f| {
                    let mut i = unravel(f, &out_shape);
                    i[axis] = start + i[axis] * step;
                    x[ravel(&i, shape)]
                })
                .collect();
            let mut out = vec![f32::NAN; want.len()];
            slice_axis(&x, shape, axis, start, len, step, &mut out);
            assert_eq!(out, want, "{shape:?} axis {axis} {start} {len} {step}");
            let dy = randn(want.len(), 4);
            let mut dx = vec![1.0; x.len()];
            slice_axis_backward(&dy, shape, axis, start, len, step, &mut dx);
            let mut want_dx = vec![1.0; x.len()];
            for (f, &g) in dy.iter().enumerate() {
                let mut i = unravel(f, &out_shape);
                i[axis] = start + i[axis] * step;
                want_dx[ravel(&i, shape)] += g;
            }
            assert_eq!(dx, want_dx, "{shape:?} axis {axis} {start} {len} {step}");
        }
    }

    #[test]
    #[should_panic(
        expected = "slice_axis: 3 items from 1 with step 2 go past the 5 items of axis 1 of shape [2, 5]"
    )]
    fn slice_axis_past_the_end_panics() {
        slice_axis(&[0.0; 10], &[2, 5], 1, 1, 3, 2, &mut [0.0; 6]);
    }

    #[test]
    fn concat_matches_the_definition_and_backward_takes_each_part_back() {
        // Parts [2, s, 3] along axis 1.
        let (outer, inner) = (2, 3);
        let sizes = [1, 4, 0, 2];
        let parts: Vec<Vec<f32>> =
            sizes.iter().enumerate().map(|(p, &s)| randn(outer * s * inner, p as u64)).collect();
        let refs: Vec<&[f32]> = parts.iter().map(|p| p.as_slice()).collect();
        let total: usize = sizes.iter().sum();
        let mut out = vec![f32::NAN; outer * total * inner];
        concat(&refs, &sizes, outer, inner, &mut out);
        let mut want = Vec::new();
        for o in 0..outer {
            for (p, &s) in sizes.iter().enumerate() {
                want.extend_from_slice(&parts[p][o * s * inner..(o + 1) * s * inner]);
            }
        }
        assert_eq!(out, want);
        // The backward of each part adds back exactly that part's items.
        for (p, part) in parts.iter().enumerate() {
            let mut d = vec![0.25; part.len()];
            concat_backward(&out, &sizes, outer, inner, p, &mut d);
            let back: Vec<f32> = part.iter().map(|v| v + 0.25).collect();
            assert_eq!(d, back, "part {p}");
        }
    }
}
