//! Integer inputs: token ids, class labels, row indices.
//!
//! Ids are never stored as floats: an `f32` holds integers exactly only up to 2^24, and a
//! float input would invite a gradient that means nothing. [`Ids`] is a shape plus `usize`
//! data, the integer counterpart of [`Tensor`]; ops that take ids (an embedding lookup,
//! [`Ids::one_hot`]) check them against the table they index.

use crate::shape::numel;
use crate::Tensor;

/// A dense, row-major array of `usize` ids with a shape (e.g. token ids `[B, T]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    shape: Vec<usize>,
    data: Vec<usize>,
}

impl Ids {
    /// Ids from row-major data and a shape.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape` (as [`Tensor::from_vec`]).
    pub fn from_vec(data: Vec<usize>, shape: &[usize]) -> Ids {
        assert_eq!(data.len(), numel(shape), "Ids::from_vec: {} ids do not fill shape {shape:?}", data.len());
        Ids { shape: shape.to_vec(), data }
    }

    /// One-dimensional ids `[n]`, e.g. a batch of labels.
    pub fn from_slice(data: &[usize]) -> Ids {
        Ids { shape: vec![data.len()], data: data.to_vec() }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The ids in row-major order.
    pub fn data(&self) -> &[usize] {
        &self.data
    }

    /// Number of ids.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same ids with another shape of the same size.
    ///
    /// # Panics
    /// If the sizes differ.
    pub fn reshape(&self, shape: &[usize]) -> Ids {
        assert_eq!(
            numel(shape),
            self.data.len(),
            "Ids::reshape: cannot reshape {:?} to {shape:?}",
            self.shape
        );
        Ids { shape: shape.to_vec(), data: self.data.clone() }
    }

    /// Panics, naming `op`, if some id is not below `bound` (the rows of the indexed table).
    /// Out-of-range ids are programmer errors, like shape mismatches.
    pub fn check_below(&self, op: &str, bound: usize) {
        if let Some(pos) = self.data.iter().position(|&i| i >= bound) {
            panic!(
                "{op}: id {} (at flat position {pos} of ids {:?}) out of range for {bound} rows",
                self.data[pos], self.shape
            );
        }
    }

    /// The one-hot encoding `[...shape, num_classes]` (`torch.nn.functional.one_hot`, as f32).
    ///
    /// # Panics
    /// If an id is not below `num_classes`.
    pub fn one_hot(&self, num_classes: usize) -> Tensor {
        self.check_below("one_hot", num_classes);
        let mut out = vec![0.0; self.data.len() * num_classes];
        for (row, &id) in self.data.iter().enumerate() {
            out[row * num_classes + id] = 1.0;
        }
        let mut shape = self.shape.clone();
        shape.push(num_classes);
        Tensor::from_vec(out, &shape)
    }
}

impl From<Vec<usize>> for Ids {
    /// One-dimensional ids `[n]`.
    fn from(data: Vec<usize>) -> Ids {
        Ids { shape: vec![data.len()], data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_keeps_shape_and_data() {
        let ids = Ids::from_vec(vec![3, 0, 3, 1, 2, 2], &[2, 3]);
        assert_eq!(ids.shape(), &[2, 3]);
        assert_eq!(ids.data(), &[3, 0, 3, 1, 2, 2]);
        assert_eq!(ids.numel(), 6);
        assert_eq!(ids.reshape(&[6]).shape(), &[6]);
        assert_eq!(Ids::from(vec![1, 2]).shape(), &[2]);
    }

    #[test]
    #[should_panic(expected = "Ids::from_vec: 5 ids do not fill shape [2, 3]")]
    fn from_vec_rejects_size_mismatch() {
        Ids::from_vec(vec![0; 5], &[2, 3]);
    }

    #[test]
    fn one_hot_matches_naive() {
        let t = Ids::from_vec(vec![2, 0, 2], &[3, 1]).one_hot(3);
        assert_eq!(t.shape(), &[3, 1, 3]);
        assert_eq!(t.data(), &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    #[should_panic(expected = "one_hot: id 4 (at flat position 1 of ids [2]) out of range for 3 rows")]
    fn one_hot_rejects_out_of_range() {
        Ids::from_slice(&[0, 4]).one_hot(3);
    }
}
