//! The [`Tensor`] type: a shape and shared, copy-on-write `f32` storage.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use rand::Rng as _;
use rand_distr::{Bernoulli, Distribution, StandardNormal, Uniform};

use crate::kernels;
use crate::pool;
use crate::rng::Rng;
use crate::shape::{numel, Axis};

/// A dense, contiguous, row-major `f32` tensor.
///
/// Storage is reference counted: `clone` is O(1) and shares it, and [`Tensor::data_mut`]
/// copies only when the storage is shared. This is what lets a tape read a parameter without
/// copying it, and the optimizer update that parameter in place once the tape is gone.
///
/// When the last tensor sharing a storage drops, its buffer goes back to the [`pool`] (if it
/// is large enough to be worth it), where the next step's tensor of the same size finds it.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Arc<Storage>,
}

/// The elements of a tensor; gives its buffer back to the [`pool`] when dropped.
struct Storage(Vec<f32>);

impl Drop for Storage {
    fn drop(&mut self) {
        pool::recycle(std::mem::take(&mut self.0));
    }
}

impl Clone for Storage {
    /// The copy of copy-on-write ([`Tensor::data_mut`] on shared storage), into a pooled buffer.
    fn clone(&self) -> Storage {
        let mut copy = pool::take_for_overwrite(self.0.len());
        copy.copy_from_slice(&self.0);
        Storage(copy)
    }
}

impl PartialEq for Storage {
    fn eq(&self, other: &Storage) -> bool {
        self.0 == other.0
    }
}

impl Deref for Storage {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl Tensor {
    // ----- constructors -------------------------------------------------------------------

    /// A tensor taking ownership of `data`, laid out row-major in `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Tensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "Tensor::from_vec: {} values do not fill shape {:?} ({} elements)",
            data.len(),
            shape,
            numel(shape)
        );
        Tensor { shape: shape.to_vec(), data: Arc::new(Storage(data)) }
    }

    /// A tensor copied from a slice.
    pub fn from_slice(data: &[f32], shape: &[usize]) -> Tensor {
        let mut copy = pool::take_for_overwrite(data.len());
        copy.copy_from_slice(data);
        Tensor::from_vec(copy, shape)
    }

    /// A 0-dimensional tensor holding one value.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::from_vec(vec![value], &[])
    }

    /// A tensor of the given shape filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        let mut data = pool::take_for_overwrite(numel(shape));
        data.fill(value);
        Tensor::from_vec(data, shape)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::from_vec(pool::take_zeroed(numel(shape)), shape)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// The 1-d tensor `[start, start + step, ...]` of every value below `end` (like
    /// `torch.arange`; `step` may be negative, never zero).
    ///
    /// # Panics
    /// If `step` is zero or not finite.
    pub fn arange(start: f32, end: f32, step: f32) -> Tensor {
        assert!(
            step != 0.0 && step.is_finite(),
            "Tensor::arange: step must be non-zero and finite, got {step}"
        );
        let count = ((end - start) / step).ceil().max(0.0) as usize;
        let data: Vec<f32> = (0..count).map(|i| start + i as f32 * step).collect();
        let n = data.len();
        Tensor::from_vec(data, &[n])
    }

    /// A tensor of independent draws from the normal distribution N(mean, std^2).
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| {
                let z: f32 = StandardNormal.sample(rng);
                mean + std * z
            })
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// A tensor of independent draws from the uniform distribution on `[low, high)`.
    ///
    /// # Panics
    /// If `low >= high` or either bound is not finite.
    pub fn rand_uniform(shape: &[usize], low: f32, high: f32, rng: &mut Rng) -> Tensor {
        let dist = Uniform::new(low, high)
            .unwrap_or_else(|e| panic!("Tensor::rand_uniform: invalid range [{low}, {high}): {e}"));
        let data = (0..numel(shape)).map(|_| dist.sample(rng)).collect();
        Tensor::from_vec(data, shape)
    }

    /// A tensor of independent Bernoulli(`p`) draws, as 1.0 (with probability `p`) or 0.0.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]`.
    pub fn rand_bernoulli(shape: &[usize], p: f64, rng: &mut Rng) -> Tensor {
        let dist = Bernoulli::new(p).unwrap_or_else(|e| panic!("Tensor::rand_bernoulli: invalid p {p}: {e}"));
        let data = (0..numel(shape)).map(|_| if dist.sample(rng) { 1.0 } else { 0.0 }).collect();
        Tensor::from_vec(data, shape)
    }

    /// A random permutation of `0..n` (Fisher-Yates), e.g. for shuffling a dataset.
    pub fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            p.swap(i, j);
        }
        p
    }

    // ----- accessors ----------------------------------------------------------------------

    /// The shape, outermost axis first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable access to the elements; copies the storage first if it is shared.
    pub fn data_mut(&mut self) -> &mut [f32] {
        Arc::make_mut(&mut self.data).0.as_mut_slice()
    }

    /// The elements as an owned vector (no copy when the storage is not shared).
    pub fn into_vec(self) -> Vec<f32> {
        match Arc::try_unwrap(self.data) {
            // Taken out, so that dropping the emptied storage gives nothing to the pool.
            Ok(mut storage) => std::mem::take(&mut storage.0),
            Err(shared) => shared.0.clone(),
        }
    }

    /// Whether another tensor (e.g. a tape's leaf) currently shares this storage.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.data) > 1
    }

    /// Whether two tensors share the same storage (a clone, not an equal copy).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// The single value of a tensor with one element.
    ///
    /// # Panics
    /// If the tensor does not have exactly one element.
    pub fn item(&self) -> f32 {
        assert_eq!(self.numel(), 1, "Tensor::item: tensor of shape {:?} is not a single value", self.shape);
        self.data[0]
    }

    /// The element at a multi-index.
    ///
    /// # Panics
    /// If the index has the wrong rank or is out of bounds.
    pub fn at(&self, index: &[usize]) -> f32 {
        assert_eq!(index.len(), self.ndim(), "Tensor::at: index {:?} for shape {:?}", index, self.shape);
        let mut flat = 0;
        for (&i, &d) in index.iter().zip(&self.shape) {
            assert!(i < d, "Tensor::at: index {:?} out of bounds for shape {:?}", index, self.shape);
            flat = flat * d + i;
        }
        self.data[flat]
    }

    // ----- shape operations ---------------------------------------------------------------

    /// The same elements viewed with another shape of equal size (O(1), shares storage).
    ///
    /// # Panics
    /// If the sizes differ.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        assert_eq!(
            numel(shape),
            self.numel(),
            "Tensor::reshape: cannot view shape {:?} as {:?}",
            self.shape,
            shape
        );
        Tensor { shape: shape.to_vec(), data: Arc::clone(&self.data) }
    }

    /// Flattens every axis after the first: `[B, ...]` to `[B, rest]`.
    pub fn flatten_batch(&self) -> Tensor {
        let b = self.shape.first().copied().unwrap_or(1);
        let rest = if self.shape.is_empty() { 1 } else { numel(&self.shape[1..]) };
        self.reshape(&[b, rest])
    }

    /// The transpose of a 2-d tensor, materialised.
    ///
    /// # Panics
    /// If the tensor is not 2-d.
    pub fn transpose(&self) -> Tensor {
        assert_eq!(self.ndim(), 2, "Tensor::transpose: expects a 2-d tensor, got shape {:?}", self.shape);
        let (r, c) = (self.shape[0], self.shape[1]);
        // Every element is written below.
        let mut out = pool::take_for_overwrite(r * c);
        // Blocked so that both reads and writes stay in cache for large matrices.
        const B: usize = 32;
        for i0 in (0..r).step_by(B) {
            for j0 in (0..c).step_by(B) {
                for i in i0..(i0 + B).min(r) {
                    for j in j0..(j0 + B).min(c) {
                        out[j * r + i] = self.data[i * c + j];
                    }
                }
            }
        }
        Tensor::from_vec(out, &[c, r])
    }

    /// Size of one item of the leading axis, in elements.
    fn row_len(&self, op: &str) -> usize {
        assert!(self.ndim() >= 1, "Tensor::{op}: needs at least one axis, got shape {:?}", self.shape);
        numel(&self.shape[1..])
    }

    /// Items `start..end` of the leading axis (a contiguous copy).
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice_rows(&self, start: usize, end: usize) -> Tensor {
        let row = self.row_len("slice_rows");
        assert!(
            start <= end && end <= self.shape[0],
            "Tensor::slice_rows: range {start}..{end} out of bounds for shape {:?}",
            self.shape
        );
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor::from_slice(&self.data[start * row..end * row], &shape)
    }

    /// The items of the leading axis at `indices`, in that order (a minibatch gather).
    ///
    /// # Panics
    /// If an index is out of bounds.
    pub fn gather_rows(&self, indices: &[usize]) -> Tensor {
        let row = self.row_len("gather_rows");
        // A minibatch per step: pooled like the step's other buffers, every row written.
        let mut out = pool::take_for_overwrite(indices.len() * row);
        for (k, &i) in indices.iter().enumerate() {
            assert!(
                i < self.shape[0],
                "Tensor::gather_rows: index {i} out of bounds for shape {:?}",
                self.shape
            );
            out[k * row..(k + 1) * row].copy_from_slice(&self.data[i * row..(i + 1) * row]);
        }
        let mut shape = self.shape.clone();
        shape[0] = indices.len();
        Tensor::from_vec(out, &shape)
    }

    /// Concatenates tensors along the leading axis; all other axes must agree.
    ///
    /// # Panics
    /// If `parts` is empty or the trailing shapes differ.
    pub fn concat_rows(parts: &[&Tensor]) -> Tensor {
        assert!(!parts.is_empty(), "Tensor::concat_rows: no tensors to concatenate");
        let first = parts[0];
        let tail = &first.shape[1..];
        let mut rows = 0;
        for p in parts {
            assert!(
                p.ndim() >= 1 && &p.shape[1..] == tail,
                "Tensor::concat_rows: shape {:?} does not match {:?} after the first axis",
                p.shape,
                first.shape
            );
            rows += p.shape[0];
        }
        let mut out = pool::take_for_overwrite(rows * numel(tail));
        let mut at = 0;
        for p in parts {
            out[at..at + p.numel()].copy_from_slice(p.data());
            at += p.numel();
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Tensor::from_vec(out, &shape)
    }

    /// The axes reordered, materialised: axis `i` of the result is axis `axes[i]` of `self`
    /// (`torch.permute`; `&[1, 0]` is the 2-d [`Tensor::transpose`]).
    ///
    /// # Panics
    /// If `axes` is not a permutation of the axes.
    pub fn permute<A: Axis>(&self, axes: &[A]) -> Tensor {
        let axes: Vec<usize> = axes.iter().map(|a| a.resolve("Tensor::permute", &self.shape)).collect();
        let mut out = pool::take_for_overwrite(self.numel());
        kernels::permute(&self.data, &self.shape, &axes, &mut out);
        let shape: Vec<usize> = axes.iter().map(|&a| self.shape[a]).collect();
        Tensor::from_vec(out, &shape)
    }

    /// Items `start..start + len` of axis `axis`, copied (`torch.narrow`).
    ///
    /// # Panics
    /// If the range goes past the axis.
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Tensor {
        let axis = axis.resolve("Tensor::narrow", &self.shape);
        let mut shape = self.shape.clone();
        shape[axis] = len;
        let mut out = pool::take_for_overwrite(numel(&shape));
        kernels::slice_axis(&self.data, &self.shape, axis, start, len, 1, &mut out);
        Tensor::from_vec(out, &shape)
    }

    /// Concatenates tensors along `axis` (`torch.cat`); the other axes must agree.
    ///
    /// # Panics
    /// If `parts` is empty or the shapes differ in another axis.
    pub fn concat(parts: &[&Tensor], axis: impl Axis) -> Tensor {
        assert!(!parts.is_empty(), "Tensor::concat: no tensors to concatenate");
        let axis = axis.resolve("Tensor::concat", &parts[0].shape);
        let shapes: Vec<&[usize]> = parts.iter().map(|p| p.shape()).collect();
        let (shape, outer, sizes, inner) = kernels::concat_layout("Tensor::concat", &shapes, axis);
        let data: Vec<&[f32]> = parts.iter().map(|p| p.data()).collect();
        let mut out = pool::take_for_overwrite(numel(&shape));
        kernels::concat(&data, &sizes, outer, inner, &mut out);
        Tensor::from_vec(out, &shape)
    }

    /// A new tensor with `f` applied to every element (for tests and one-off transforms; the
    /// kernels in [`crate::kernels`] are the fast path).
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Tensor {
        Tensor::from_vec(self.data.iter().map(|&x| f(x)).collect(), &self.shape)
    }

    /// Largest absolute elementwise difference to another tensor of the same shape.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        assert_eq!(
            self.shape, other.shape,
            "Tensor::max_abs_diff: shapes {:?} and {:?}",
            self.shape, other.shape
        );
        self.data.iter().zip(other.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "Tensor{:?} [", self.shape)?;
        for (i, x) in self.data.iter().take(SHOWN).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{x}")?;
        }
        if self.numel() > SHOWN {
            write!(f, ", ... ({} more)", self.numel() - SHOWN)?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn from_vec_checks_size() {
        let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.at(&[1, 0]), 4.0);
        let err = std::panic::catch_unwind(|| Tensor::from_vec(vec![1.0; 5], &[2, 3])).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("from_vec") && msg.contains("[2, 3]"), "{msg}");
    }

    #[test]
    fn constructors_fill() {
        assert_eq!(Tensor::zeros(&[2, 2]).data(), &[0.0; 4]);
        assert_eq!(Tensor::ones(&[3]).data(), &[1.0; 3]);
        assert_eq!(Tensor::full(&[1, 2], 2.5).data(), &[2.5, 2.5]);
        assert_eq!(Tensor::scalar(3.0).shape(), &[] as &[usize]);
        assert_eq!(Tensor::scalar(3.0).item(), 3.0);
    }

    #[test]
    fn arange_matches_torch() {
        assert_eq!(Tensor::arange(0.0, 5.0, 1.0).data(), &[0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(Tensor::arange(1.0, 2.0, 0.25).data(), &[1.0, 1.25, 1.5, 1.75]);
        assert_eq!(Tensor::arange(3.0, 0.0, -1.0).data(), &[3.0, 2.0, 1.0]);
        assert_eq!(Tensor::arange(3.0, 0.0, 1.0).numel(), 0);
    }

    #[test]
    fn random_constructors_are_seeded_and_have_the_right_moments() {
        let a = Tensor::randn(&[100, 100], 1.0, 2.0, &mut seeded(3));
        let b = Tensor::randn(&[100, 100], 1.0, 2.0, &mut seeded(3));
        assert_eq!(a, b);
        let mean = a.data().iter().map(|&x| x as f64).sum::<f64>() / 1e4;
        let var = a.data().iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / 1e4;
        assert!((mean - 1.0).abs() < 0.06, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.06, "std {}", var.sqrt());

        let u = Tensor::rand_uniform(&[10_000], -2.0, 3.0, &mut seeded(4));
        assert!(u.data().iter().all(|&x| (-2.0..3.0).contains(&x)));
        let umean = u.data().iter().sum::<f32>() / 1e4;
        assert!((umean - 0.5).abs() < 0.05, "uniform mean {umean}");

        let m = Tensor::rand_bernoulli(&[10_000], 0.3, &mut seeded(5));
        assert!(m.data().iter().all(|&x| x == 0.0 || x == 1.0));
        let p = m.data().iter().sum::<f32>() / 1e4;
        assert!((p - 0.3).abs() < 0.02, "bernoulli rate {p}");
    }

    #[test]
    fn different_seeds_differ() {
        let a = Tensor::randn(&[16], 0.0, 1.0, &mut seeded(1));
        let b = Tensor::randn(&[16], 0.0, 1.0, &mut seeded(2));
        assert_ne!(a, b);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Tensor::permutation(1000, &mut seeded(9));
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn reshape_shares_storage_and_data_mut_copies_on_write() {
        let a = Tensor::arange(0.0, 6.0, 1.0);
        let mut b = a.reshape(&[2, 3]);
        assert!(b.shares_storage_with(&a));
        assert!(a.is_shared());
        b.data_mut()[0] = 100.0;
        assert!(!b.shares_storage_with(&a));
        assert_eq!(a.data()[0], 0.0);
        assert_eq!(b.at(&[0, 0]), 100.0);
        // Unshared: no copy.
        let ptr = b.data().as_ptr();
        b.data_mut()[1] = 7.0;
        assert_eq!(ptr, b.data().as_ptr());
    }

    #[test]
    #[should_panic(expected = "Tensor::reshape: cannot view shape [6] as [4]")]
    fn reshape_rejects_wrong_size() {
        Tensor::arange(0.0, 6.0, 1.0).reshape(&[4]);
    }

    #[test]
    fn transpose_matches_naive_on_odd_shapes() {
        for &(r, c) in &[(1, 1), (1, 7), (7, 1), (3, 5), (33, 65), (64, 31)] {
            let t = Tensor::randn(&[r, c], 0.0, 1.0, &mut seeded((r * 100 + c) as u64));
            let tt = t.transpose();
            assert_eq!(tt.shape(), &[c, r]);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(tt.at(&[j, i]), t.at(&[i, j]));
                }
            }
            assert_eq!(tt.transpose(), t);
        }
    }

    #[test]
    fn slice_gather_and_concat_rows() {
        let t = Tensor::arange(0.0, 24.0, 1.0).reshape(&[4, 3, 2]);
        let s = t.slice_rows(1, 3);
        assert_eq!(s.shape(), &[2, 3, 2]);
        assert_eq!(s.data()[0], 6.0);
        let g = t.gather_rows(&[3, 0, 3]);
        assert_eq!(g.shape(), &[3, 3, 2]);
        assert_eq!(g.at(&[0, 0, 0]), 18.0);
        assert_eq!(g.at(&[1, 2, 1]), 5.0);
        let c = Tensor::concat_rows(&[&t.slice_rows(0, 1), &t.slice_rows(1, 4)]);
        assert_eq!(c, t);
        assert_eq!(t.slice_rows(2, 2).shape(), &[0, 3, 2]);
    }

    #[test]
    #[should_panic(expected = "concat_rows")]
    fn concat_rejects_mismatched_tails() {
        let a = Tensor::zeros(&[2, 3]);
        let b = Tensor::zeros(&[2, 4]);
        Tensor::concat_rows(&[&a, &b]);
    }

    #[test]
    fn flatten_batch_keeps_leading_axis() {
        let t = Tensor::zeros(&[5, 3, 4, 4]);
        assert_eq!(t.flatten_batch().shape(), &[5, 48]);
    }

    #[test]
    fn permute_narrow_and_concat_along_any_axis() {
        let t = Tensor::arange(0.0, 24.0, 1.0).reshape(&[2, 3, 4]);
        let p = t.permute(&[2, 0, 1]);
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert_eq!(p.at(&[3, 1, 2]), t.at(&[1, 2, 3]));
        assert_eq!(t.reshape(&[6, 4]).permute(&[1, 0]), t.reshape(&[6, 4]).transpose());
        let n = t.narrow(-1, 1, 2);
        assert_eq!(n.shape(), &[2, 3, 2]);
        assert_eq!(n.at(&[1, 2, 0]), t.at(&[1, 2, 1]));
        let c = Tensor::concat(&[&t.narrow(2, 0, 1), &t.narrow(2, 1, 3)], 2);
        assert_eq!(c, t);
    }
}
