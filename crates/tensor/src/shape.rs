//! Shape arithmetic shared by tensors and kernels.

/// Number of elements of a shape (1 for the scalar shape `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The NumPy broadcast of two shapes, or `None` when they are incompatible.
///
/// Shapes are aligned at their last axis; an axis of size 1 stretches to the other's size,
/// and a missing leading axis counts as size 1.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Row-major strides of a shape, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// An axis given the way PyTorch users write it: `0, 1, ...` from the front, or `-1, -2, ...`
/// from the back (`x.softmax(-1)` is the last axis). Implemented for `usize`, `isize` and
/// `i32`, so that literals (`1`, `-1`) and `usize` variables both work.
pub trait Axis: Copy {
    /// The axis as an index into a shape of rank `ndim`.
    ///
    /// # Panics
    /// If the axis is outside `-ndim..ndim`; the message names `op` and the shape.
    fn resolve(self, op: &str, shape: &[usize]) -> usize;
}

fn resolve_signed(axis: i64, op: &str, shape: &[usize]) -> usize {
    let rank = shape.len() as i64;
    let resolved = if axis < 0 { axis + rank } else { axis };
    assert!(
        (0..rank).contains(&resolved),
        "{op}: axis {axis} is out of range for shape {shape:?} (rank {rank})"
    );
    resolved as usize
}

impl Axis for usize {
    fn resolve(self, op: &str, shape: &[usize]) -> usize {
        assert!(
            self < shape.len(),
            "{op}: axis {self} is out of range for shape {shape:?} (rank {})",
            shape.len()
        );
        self
    }
}

impl Axis for isize {
    fn resolve(self, op: &str, shape: &[usize]) -> usize {
        resolve_signed(self as i64, op, shape)
    }
}

impl Axis for i32 {
    fn resolve(self, op: &str, shape: &[usize]) -> usize {
        resolve_signed(self as i64, op, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(broadcast_shapes(&[2, 3], &[3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[4, 1, 5], &[3, 1]), Some(vec![4, 3, 5]));
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shapes(&[2, 3], &[2]), None);
    }

    #[test]
    fn axes_count_from_either_end() {
        assert_eq!(1usize.resolve("t", &[2, 3, 4]), 1);
        assert_eq!((-1).resolve("t", &[2, 3, 4]), 2);
        assert_eq!((-3isize).resolve("t", &[2, 3, 4]), 0);
        assert_eq!(2.resolve("t", &[2, 3, 4]), 2);
    }

    #[test]
    #[should_panic(expected = "softmax: axis -4 is out of range for shape [2, 3, 4] (rank 3)")]
    fn an_axis_out_of_range_names_the_op_and_shape() {
        (-4).resolve("softmax", &[2, 3, 4]);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }
}
