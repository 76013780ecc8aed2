//! # adamant-data
//!
//! Datasets for the Adam paper's experiments: MNIST, Fashion-MNIST and CIFAR-10 readers that
//! validate everything they read, lookup and checksummed download, minibatches with a seeded
//! shuffle, and preprocessing (normalisation, ZCA whitening).
//!
//! Cargo features (none on by default): `download` fetches missing datasets over HTTP from
//! their mirrors or the user's (`$ADAMANT_MIRROR`), checked by size and sha256; `https` adds
//! TLS for HTTPS mirrors; `zca` adds ZCA
//! whitening ([`preprocess`]'s `Zca`, with faer's eigendecomposition).
//!
//! Every failure to read outside data is a [`DataError`] naming the file and what was
//! expected versus found; nothing here panics on bad input.

pub mod augment;
pub mod batch;
pub mod cifar;
mod dataset;
#[cfg(feature = "download")]
pub mod download;
mod error;
pub mod idx;
pub mod locate;
pub mod npy;
pub mod preprocess;
pub mod spec;
pub mod text;

pub use augment::Augment;
pub use batch::{batches_per_epoch, Batch, BatchOptions, Batches};
pub use dataset::{Dataset, DatasetError, Splits};
pub use error::DataError;
pub use locate::{
    cifar10, fashion_mnist, find, load, mnist, mnist_mini, CIFAR10, FASHION_MNIST, MNIST, MNIST_MINI,
};
pub use preprocess::{Normalizer, NormalizerOptions};
#[cfg(feature = "zca")]
pub use preprocess::{Zca, ZcaOptions};
pub use text::{CharCorpus, CharVocab, Names};
