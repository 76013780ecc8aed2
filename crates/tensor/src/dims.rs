//! Shapes as users write them: sizes, where one `-1` may stand for "whatever is left".

use crate::numel;

/// A shape argument as PyTorch's `view`/`reshape`/`expand` take it: a list of sizes where `-1`
/// marks one dimension to infer (`x.reshape(&[b as isize, -1])`, `torch.reshape(x, (b, -1))`).
///
/// Implemented for slices, arrays and vectors of `usize`, `isize` and `i32`, so that existing
/// calls with `&[usize]` keep compiling and literals (`&[4, -1]`) infer as `i32`. A Rust
/// array has one element type: mixing a `usize` variable and `-1` needs a cast
/// (`&[b as i32, -1]`).
pub trait ShapeSpec {
    /// The sizes as signed numbers, `-1` included.
    fn dims(&self) -> Vec<i64>;
}

macro_rules! shape_spec_for {
    ($($t:ty),*) => {$(
        impl ShapeSpec for [$t] {
            fn dims(&self) -> Vec<i64> {
                self.iter().map(|&d| d as i64).collect()
            }
        }
        impl<const N: usize> ShapeSpec for [$t; N] {
            fn dims(&self) -> Vec<i64> {
                self.iter().map(|&d| d as i64).collect()
            }
        }
        impl ShapeSpec for Vec<$t> {
            fn dims(&self) -> Vec<i64> {
                self.iter().map(|&d| d as i64).collect()
            }
        }
    )*};
}

shape_spec_for!(usize, isize, i32);

/// The shape `spec` names for a value of `numel` elements: the `-1` (at most one) becomes
/// `numel / product(other sizes)` (PyTorch's rule).
///
/// # Panics
/// If there are two `-1`s, a size below `-1`, or the sizes cannot hold `numel` elements; the
/// message names `op` and both shapes.
pub fn infer_shape(op: &str, spec: &(impl ShapeSpec + ?Sized), from: &[usize]) -> Vec<usize> {
    let dims = spec.dims();
    let n = numel(from);
    let holes = dims.iter().filter(|&&d| d == -1).count();
    assert!(
        holes <= 1 && dims.iter().all(|&d| d >= -1),
        "{op}: shape {dims:?} may hold at most one -1 and no other negative size (input shape {from:?})"
    );
    let known: usize = dims.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
    let shape: Vec<usize> = dims
        .iter()
        .map(|&d| {
            if d >= 0 {
                d as usize
            } else {
                assert!(
                    known != 0 && n.is_multiple_of(known),
                    "{op}: cannot infer the -1 of shape {dims:?} for input shape {from:?} ({n} elements)"
                );
                n / known
            }
        })
        .collect();
    assert_eq!(numel(&shape), n, "{op}: cannot view shape {from:?} ({n} elements) as {dims:?}");
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_vectors_and_usize_slices_all_work() {
        assert_eq!(infer_shape("t", &[4, -1], &[2, 3, 4]), vec![4, 6]);
        assert_eq!(infer_shape("t", &[-1], &[2, 3]), vec![6]);
        let b: usize = 3;
        assert_eq!(infer_shape("t", &[b, 8], &[24]), vec![3, 8]);
        assert_eq!(infer_shape("t", &vec![2usize, 12], &[24]), vec![2, 12]);
        assert_eq!(infer_shape("t", &[b as isize, -1][..], &[24]), vec![3, 8]);
        assert_eq!(infer_shape("t", &[0, 5], &[5, 0]), vec![0, 5]);
    }

    #[test]
    #[should_panic(expected = "reshape: cannot view shape [2, 3] (6 elements) as [4, 2]")]
    fn a_size_mismatch_names_both_shapes() {
        infer_shape("reshape", &[4, 2], &[2, 3]);
    }

    #[test]
    #[should_panic(expected = "reshape: cannot infer the -1 of shape [4, -1] for input shape [2, 3]")]
    fn an_inexact_hole_panics() {
        infer_shape("reshape", &[4, -1], &[2, 3]);
    }

    #[test]
    #[should_panic(expected = "at most one -1")]
    fn two_holes_panic() {
        infer_shape("reshape", &[-1, -1], &[2, 3]);
    }
}
