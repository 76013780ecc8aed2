//! In-memory datasets: images as a tensor scaled to [0, 1], labels as class indices.

use std::path::PathBuf;

use adamant_tensor::Tensor;

/// One split (train or test) of a labelled image dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `[N, 784]` for MNIST-like data (flattened 28x28), `[N, 3, 32, 32]` (NCHW) for CIFAR-10;
    /// pixel values scaled to [0, 1].
    pub images: Tensor,
    /// Class index of each image, in `0..num_classes`.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` examples (or all, if fewer): a subset for quick runs.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset { images: self.images.slice_rows(0, n), labels: self.labels[..n].to_vec() }
    }

    /// How many examples each class has.
    pub fn class_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; num_classes];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }
}

/// A dataset's train and test splits, where they were read from, and the class names.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
    /// The directory the files were read from.
    pub source: PathBuf,
    /// Human-readable class names, index = label.
    pub class_names: Vec<String>,
}
