//! Minibatches over a [`Dataset`], with a seeded shuffle per epoch.
//!
//! ```
//! use adamant_data::batch::{BatchOptions, Batches};
//! use adamant_data::Dataset;
//! use adamant_tensor::Tensor;
//!
//! let data = Dataset { images: Tensor::zeros(&[10, 4]), labels: vec![0; 10] };
//! let options = BatchOptions { batch_size: 4, seed: 7, epoch: 3, ..BatchOptions::default() };
//! let batches = Batches::new(&data, options);
//! assert_eq!(batches.len(), 3); // 4 + 4 + 2 examples
//! for batch in batches {
//!     assert_eq!(batch.images.shape()[0], batch.labels.len());
//! }
//! ```
//!
//! The order of epoch `e` is the permutation drawn from `rng::stream(seed, Purpose::Shuffle, e)`:
//! it depends only on `(seed, e)`, so a run resumed at epoch 17 sees exactly the order it
//! would have seen without the interruption, without replaying epochs 0..17. An epoch costs
//! one index vector; each batch gathers only its own rows, so the dataset is never copied.

use std::iter::FusedIterator;

use adamant_tensor::rng::{self, Purpose};
use adamant_tensor::Tensor;

use crate::Dataset;

/// How to cut a dataset into minibatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// Examples per batch (the last batch may be smaller unless `drop_last`). Must be > 0.
    pub batch_size: usize,
    /// Visit the examples in a random order, drawn from `(seed, epoch)`; otherwise in
    /// dataset order.
    pub shuffle: bool,
    /// Drop the last batch if it has fewer than `batch_size` examples, so that every batch
    /// has the same size.
    pub drop_last: bool,
    /// The run's seed; the shuffle of each epoch is derived from it.
    pub seed: u64,
    /// Which epoch this is (0-based): with the seed, it fixes the order of the examples.
    pub epoch: u64,
}

impl Default for BatchOptions {
    /// Batches of 128 (the minibatch size of every experiment in the Adam paper), shuffled,
    /// last partial batch kept, seed 0, epoch 0.
    fn default() -> Self {
        BatchOptions { batch_size: 128, shuffle: true, drop_last: false, seed: 0, epoch: 0 }
    }
}

/// One minibatch: the images and labels of some examples, and which examples they are.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The examples' images, stacked along the first axis: `[B, ...]` with the dataset's
    /// trailing shape.
    pub images: Tensor,
    /// The examples' labels, in the same order as the images.
    pub labels: Vec<usize>,
    /// The examples' positions in the dataset, in the same order (for per-example logging
    /// or checking which examples a step saw).
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of examples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no examples (never true for batches from [`Batches`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Number of batches in one epoch over `n` examples.
///
/// # Panics
/// If `batch_size` is zero (a programmer error, like a zero step size).
pub fn batches_per_epoch(n: usize, batch_size: usize, drop_last: bool) -> usize {
    assert!(batch_size > 0, "batches_per_epoch: batch_size must be at least 1, got 0");
    if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    }
}

/// The minibatches of one epoch over a dataset, in order: an iterator of [`Batch`].
///
/// Its [`len`](ExactSizeIterator::len) is the number of batches still to come.
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    /// Dataset positions in visiting order (the epoch's permutation, or `0..n`).
    order: Vec<usize>,
    batch_size: usize,
    /// Position in `order` of the next batch's first example.
    next: usize,
    /// Examples served this epoch: `n`, or `n` rounded down to whole batches with `drop_last`.
    end: usize,
}

impl<'a> Batches<'a> {
    /// The batches of epoch `options.epoch` over `dataset`.
    ///
    /// # Panics
    /// If `options.batch_size` is zero, or if the dataset's image tensor does not have one
    /// row per label (both programmer errors: the readers never build such a dataset).
    pub fn new(dataset: &'a Dataset, options: BatchOptions) -> Batches<'a> {
        assert!(options.batch_size > 0, "Batches::new: batch_size must be at least 1, got 0");
        let n = dataset.len();
        assert!(
            dataset.images.ndim() >= 1 && dataset.images.shape()[0] == n,
            "Batches::new: dataset has {n} labels but images of shape {:?}",
            dataset.images.shape()
        );
        let order = if options.shuffle {
            Tensor::permutation(n, &mut rng::stream(options.seed, Purpose::Shuffle, options.epoch))
        } else {
            (0..n).collect()
        };
        let end = batches_per_epoch(n, options.batch_size, options.drop_last) * options.batch_size;
        Batches { dataset, order, batch_size: options.batch_size, next: 0, end: end.min(n) }
    }

    /// The dataset positions in the order this epoch visits them (all `n`, including those a
    /// `drop_last` epoch leaves out at the end).
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let stop = (self.next + self.batch_size).min(self.end);
        let indices = self.order[self.next..stop].to_vec();
        self.next = stop;
        let images = self.dataset.images.gather_rows(&indices);
        let labels = indices.iter().map(|&i| self.dataset.labels[i]).collect();
        Some(Batch { images, labels, indices })
    }

    /// Skips `n` batches without gathering them: a run resumed mid-epoch starts at its batch.
    fn nth(&mut self, n: usize) -> Option<Batch> {
        self.next = n
            .checked_mul(self.batch_size)
            .and_then(|skip| self.next.checked_add(skip))
            .map_or(self.end, |at| at.min(self.end));
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

impl FusedIterator for Batches<'_> {}
