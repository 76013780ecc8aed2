//! # adamant-data
//!
//! Datasets for the Adam paper's experiments: MNIST, Fashion-MNIST and CIFAR-10 readers that
//! validate everything they read, lookup and checksummed download, minibatches with a seeded
//! shuffle, and preprocessing (normalisation, ZCA whitening).
//!
//! Every failure to read outside data is a [`DataError`] naming the file and what was
//! expected versus found; nothing here panics on bad input.

pub mod batch;
pub mod cifar;
mod dataset;
pub mod download;
mod error;
pub mod idx;
pub mod locate;
pub mod preprocess;
pub mod spec;

pub use batch::{batches_per_epoch, Batch, BatchOptions, Batches};
pub use dataset::{Dataset, Splits};
pub use error::DataError;
pub use locate::{
    cifar10, fashion_mnist, find, load, mnist, mnist_mini, CIFAR10, FASHION_MNIST, MNIST, MNIST_MINI,
};
pub use preprocess::{Normalizer, NormalizerOptions, Zca, ZcaOptions};
