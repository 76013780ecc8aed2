//! In-memory datasets: images (or any features) as a tensor, labels as class indices.
//!
//! The readers build a [`Dataset`] from files; [`Dataset::from_tensors`] builds one from
//! tensors a program already holds (PyTorch's `TensorDataset`), checked, so that the same
//! batching ([`crate::Batches`]) and training loop serve a user's own data.

use std::fmt;
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

/// Why [`Dataset::from_tensors`] refused its tensors: each variant names the shapes or the
/// values that disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetError {
    /// The features have no first axis to count examples along (a scalar).
    Scalar,
    /// The features' first axis and the labels count different numbers of examples.
    Length {
        /// The features' shape, `[N, ...]`.
        features_shape: Vec<usize>,
        /// How many labels there are.
        labels: usize,
    },
    /// A label is not below the number of classes.
    Label {
        /// The example's position.
        index: usize,
        /// Its label.
        label: usize,
        /// The number of classes the labels must be below.
        num_classes: usize,
    },
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetError::Scalar => {
                write!(f, "features must have a first axis of examples ([N, ...]), got a scalar (shape [])")
            }
            DatasetError::Length { features_shape, labels } => write!(
                f,
                "features of shape {features_shape:?} hold {} examples (their first axis) but there are {labels} labels",
                features_shape[0]
            ),
            DatasetError::Label { index, label, num_classes } => {
                write!(f, "label {label} of example {index} is not below the number of classes, {num_classes}")
            }
        }
    }
}

impl std::error::Error for DatasetError {}

impl Dataset {
    /// A dataset of the examples a program holds in memory: `features` of shape `[N, ...]`
    /// (any trailing shape: `[N, D]` for a Dense net, `[N, C, H, W]` for a CNN) and one class
    /// index per example. PyTorch's `TensorDataset(features, labels)`; batch it with
    /// [`crate::Batches`] or train on it with the facade's `fit`, as a built-in dataset.
    ///
    /// ```
    /// use adamant_data::{Dataset, DatasetError};
    /// use adamant_tensor::Tensor;
    ///
    /// let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2]);
    /// let data = Dataset::from_tensors(x.clone(), vec![1, 0, 1]).unwrap();
    /// assert_eq!(data.len(), 3);
    /// let err = Dataset::from_tensors(x, vec![1, 0]).unwrap_err();
    /// assert_eq!(err, DatasetError::Length { features_shape: vec![3, 2], labels: 2 });
    /// ```
    ///
    /// # Errors
    /// [`DatasetError::Scalar`] for a 0-d `features`, [`DatasetError::Length`] if its first
    /// axis is not the number of labels.
    pub fn from_tensors(features: Tensor, labels: Vec<usize>) -> Result<Dataset, DatasetError> {
        if features.ndim() == 0 {
            return Err(DatasetError::Scalar);
        }
        if features.shape()[0] != labels.len() {
            return Err(DatasetError::Length {
                features_shape: features.shape().to_vec(),
                labels: labels.len(),
            });
        }
        Ok(Dataset { images: features, labels })
    }

    /// Checks that every label is below `num_classes` (what a `[B, num_classes]` softmax and
    /// cross-entropy need); returns the dataset for chaining.
    ///
    /// # Errors
    /// [`DatasetError::Label`] naming the first example whose label is out of range.
    pub fn check_labels(self, num_classes: usize) -> Result<Dataset, DatasetError> {
        match self.labels.iter().position(|&l| l >= num_classes) {
            Some(index) => Err(DatasetError::Label { index, label: self.labels[index], num_classes }),
            None => Ok(self),
        }
    }

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
