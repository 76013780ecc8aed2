//! [`Buffer`]: a module's non-trainable state (PyTorch's `register_buffer`), such as batch
//! norm's running statistics.
//!
//! A buffer is saved and loaded with the weights, under its path like a parameter
//! (`bn1.running_mean`), and checkpointed with them, but it never reaches an optimizer: the
//! walk that feeds optimizers, [`Params::visit_params`](crate::Params::visit_params), does not
//! see it; [`Params::visit_buffers`](crate::Params::visit_buffers) does.
//!
//! A layer updates its buffers during `forward(&self, ..)` (batch norm in training mode), so
//! the value sits behind a lock: modules are shared between threads (`Sequential` holds
//! `Send + Sync` layers), and a forward pass takes the lock once per buffer.

use std::sync::{Mutex, MutexGuard};

use adamant_tensor::Tensor;

/// How a buffer is stored in a file. In memory every buffer is an `f32` tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    /// An `f32` tensor (running statistics).
    Float,
    /// A whole-number counter, saved as a 0-d `I64` tensor as PyTorch saves
    /// `num_batches_tracked`; exact up to 2^24 in memory.
    Count,
}

/// Non-trainable state of a module, saved with its weights (PyTorch's `register_buffer`).
///
/// ```
/// use adamant_layers::{Buffer, BufferKind};
/// use adamant_tensor::Tensor;
///
/// let running_mean = Buffer::new(Tensor::zeros(&[3]));
/// running_mean.update(|t| t.data_mut()[0] = 0.5);
/// assert_eq!(running_mean.value().data(), &[0.5, 0.0, 0.0]);
///
/// let tracked = Buffer::count(0);
/// tracked.update(|t| t.data_mut()[0] += 1.0);
/// assert_eq!((tracked.kind(), tracked.value().item()), (BufferKind::Count, 1.0));
/// ```
#[derive(Debug)]
pub struct Buffer {
    value: Mutex<Tensor>,
    kind: BufferKind,
}

impl Buffer {
    /// An `f32` buffer holding `value`.
    pub fn new(value: Tensor) -> Buffer {
        Buffer { value: Mutex::new(value), kind: BufferKind::Float }
    }

    /// A counter (shape `[]`) starting at `n`, saved as `I64`.
    pub fn count(n: u32) -> Buffer {
        Buffer { value: Mutex::new(Tensor::scalar(n as f32)), kind: BufferKind::Count }
    }

    /// Whether this is an `f32` buffer or a counter.
    pub fn kind(&self) -> BufferKind {
        self.kind
    }

    /// The current value. O(1): shares the storage.
    pub fn value(&self) -> Tensor {
        self.lock().clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> Vec<usize> {
        self.lock().shape().to_vec()
    }

    /// Replaces the value (loading a file, a reset).
    ///
    /// # Panics
    /// If the shape differs from the current one: a buffer's shape is part of its module's
    /// architecture.
    pub fn set(&self, value: Tensor) {
        let mut current = self.lock();
        assert_eq!(
            current.shape(),
            value.shape(),
            "Buffer::set: shape {:?} differs from the buffer's {:?}",
            value.shape(),
            current.shape()
        );
        *current = value;
    }

    /// Changes the value in place under the lock (a running-statistics update).
    pub fn update<R>(&self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Tensor> {
        // A panic while the lock was held (a shape assertion in a user's update closure)
        // leaves a whole tensor behind, never a half-written one: keep using it.
        self.value.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for Buffer {
    /// A buffer with a copy of the value (O(1): the storage is shared copy-on-write).
    fn clone(&self) -> Buffer {
        Buffer { value: Mutex::new(self.value()), kind: self.kind }
    }
}
