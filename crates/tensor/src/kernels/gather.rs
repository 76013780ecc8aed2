//! `torch.gather` and its adjoint, the scatter-add along one axis.
//!
//! `index` has the rank of the input `x`; the output has `index`'s shape, and element `p`
//! (multi-index `(i_0, .., i_axis, .., i_last)`) is `x[i_0, .., index[p], .., i_last]`. Along
//! the other axes `index` may be shorter than `x` (torch's rule). The backward adds each
//! output gradient back where its value came from, so repeated indices accumulate.

use crate::shape::{numel, strides};

/// Checks the shapes and indices of a gather; returns `x`'s strides.
fn check(
    op: &str,
    x_len: usize,
    x_shape: &[usize],
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
) -> Vec<usize> {
    assert_eq!(x_len, numel(x_shape), "{op}: input has {x_len} elements but shape {x_shape:?}");
    assert_eq!(
        index.len(),
        numel(index_shape),
        "{op}: index has {} elements but shape {index_shape:?}",
        index.len()
    );
    assert_eq!(
        x_shape.len(),
        index_shape.len(),
        "{op}: index {index_shape:?} must have the rank of the input {x_shape:?}"
    );
    assert!(axis < x_shape.len(), "{op}: axis {axis} is out of range for shape {x_shape:?}");
    for (d, (&xs, &is)) in x_shape.iter().zip(index_shape).enumerate() {
        assert!(
            d == axis || is <= xs,
            "{op}: index {index_shape:?} is larger than the input {x_shape:?} along axis {d}"
        );
    }
    if let Some(p) = index.iter().position(|&i| i >= x_shape[axis]) {
        panic!(
            "{op}: index {} (at flat position {p} of index {index_shape:?}) is out of range for axis {axis} of input {x_shape:?}",
            index[p]
        );
    }
    strides(x_shape)
}

/// Calls `f(p, offset)` for every position `p` of `index` with `offset` the flat position in
/// `x` that it reads: `index`'s multi-index with the `axis` coordinate replaced by `index[p]`.
fn for_each_source(
    x_strides: &[usize],
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    let rank = index_shape.len();
    let mut coord = vec![0usize; rank];
    // The offset without the `axis` coordinate, updated as `coord` counts in row-major order.
    let mut base = 0usize;
    for (p, &i) in index.iter().enumerate() {
        f(p, base + i * x_strides[axis]);
        for d in (0..rank).rev() {
            coord[d] += 1;
            if d != axis {
                base += x_strides[d];
            }
            if coord[d] < index_shape[d] {
                break;
            }
            if d != axis {
                base -= coord[d] * x_strides[d];
            }
            coord[d] = 0;
        }
    }
}

/// `out[p] = x[.., index[p], ..]` along `axis` (torch's `torch.gather(x, axis, index)`);
/// `out` has `index_shape` and is overwritten.
///
/// # Panics
/// If the ranks differ, `index` is larger than `x` along another axis, an index is not below
/// `x_shape[axis]`, or a length does not match its shape.
pub fn gather_forward(
    x: &[f32],
    x_shape: &[usize],
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
    out: &mut [f32],
) {
    let st = check("gather_forward", x.len(), x_shape, axis, index, index_shape);
    assert_eq!(
        out.len(),
        index.len(),
        "gather_forward: out has {} elements, want {}",
        out.len(),
        index.len()
    );
    for_each_source(&st, axis, index, index_shape, |p, src| out[p] = x[src]);
}

/// Backward of [`gather_forward`]: `dx[.., index[p], ..] += dy[p]` (torch's `scatter_add_`),
/// serially in `p` order so that repeated indices always add in the same order.
///
/// # Panics
/// As the forward.
pub fn gather_backward(
    dy: &[f32],
    x_shape: &[usize],
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
    dx: &mut [f32],
) {
    let st = check("gather_backward", dx.len(), x_shape, axis, index, index_shape);
    assert_eq!(dy.len(), index.len(), "gather_backward: dy has {} elements, want {}", dy.len(), index.len());
    for_each_source(&st, axis, index, index_shape, |p, dst| dx[dst] += dy[p]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::randn;

    /// Naive gather: decompose every output position into its multi-index.
    fn naive(x: &[f32], xs: &[usize], axis: usize, index: &[usize], is: &[usize]) -> Vec<f32> {
        let (xst, ist) = (strides(xs), strides(is));
        (0..index.len())
            .map(|p| {
                let mut off = 0;
                for d in 0..is.len() {
                    let c = if d == axis { index[p] } else { p / ist[d] % is[d] };
                    off += c * xst[d];
                }
                x[off]
            })
            .collect()
    }

    fn pseudo_ids(n: usize, bound: usize, seed: usize) -> Vec<usize> {
        (0..n).map(|i| (i * 7 + seed * 13 + i * i) % bound).collect()
    }

    #[test]
    fn gather_matches_reference_on_every_axis_and_smaller_index() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[5], &[3]),
            (&[5], &[8]),
            (&[3, 4], &[3, 4]),
            (&[3, 4], &[2, 6]),
            (&[2, 3, 4], &[2, 2, 3]),
            (&[2, 3, 4], &[1, 5, 4]),
            (&[2, 3, 1, 4], &[2, 3, 1, 2]),
        ];
        for (c, &(xs, is_)) in cases.iter().enumerate() {
            let x = randn(numel(xs), c as u64);
            for axis in 0..xs.len() {
                let mut is = is_.to_vec();
                // Along the other axes the index may not be longer than the input.
                for d in 0..is.len() {
                    if d != axis {
                        is[d] = is[d].min(xs[d]);
                    }
                }
                let index = pseudo_ids(numel(&is), xs[axis], c + axis);
                let mut out = vec![f32::NAN; index.len()];
                gather_forward(&x, xs, axis, &index, &is, &mut out);
                assert_eq!(out, naive(&x, xs, axis, &index, &is), "{xs:?} axis {axis} index {is:?}");
                // The backward is the adjoint: <gather(x), dy> == <x, gather_backward(dy)>.
                let dy = randn(index.len(), 50 + c as u64);
                let mut dx = vec![0.0; x.len()];
                gather_backward(&dy, xs, axis, &index, &is, &mut dx);
                let lhs: f64 = out.iter().zip(&dy).map(|(&a, &b)| a as f64 * b as f64).sum();
                let rhs: f64 = x.iter().zip(&dx).map(|(&a, &b)| a as f64 * b as f64).sum();
                assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{xs:?} axis {axis}: {lhs} vs {rhs}");
            }
        }
    }

    #[test]
    fn backward_accumulates_repeated_indices() {
        // x [2, 3], gather along axis 1 with index [[0, 0, 2, 0], [1, 1, 1, 1]].
        let index = [0, 0, 2, 0, 1, 1, 1, 1];
        let dy = [1.0, 2.0, 3.0, 4.0, 0.5, 0.5, 0.5, 0.5];
        let mut dx = [10.0; 6];
        gather_backward(&dy, &[2, 3], 1, &index, &[2, 4], &mut dx);
        assert_eq!(dx, [17.0, 10.0, 13.0, 10.0, 12.0, 10.0]);
    }

    #[test]
    #[should_panic(
        expected = "gather_forward: index 3 (at flat position 1 of index [2, 1]) is out of range for axis 1 of input [2, 3]"
    )]
    fn out_of_range_index_panics() {
        gather_forward(&[0.0; 6], &[2, 3], 1, &[0, 3], &[2, 1], &mut [0.0; 2]);
    }

    #[test]
    #[should_panic(expected = "gather_forward: index [3, 1] is larger than the input [2, 3] along axis 0")]
    fn larger_index_panics() {
        gather_forward(&[0.0; 6], &[2, 3], 1, &[0, 0, 0], &[3, 1], &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "gather_forward: index [6] must have the rank of the input [2, 3]")]
    fn rank_mismatch_panics() {
        gather_forward(&[0.0; 6], &[2, 3], 1, &[0; 6], &[6], &mut [0.0; 6]);
    }
}
