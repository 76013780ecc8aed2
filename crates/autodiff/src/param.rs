//! Trainable parameters: a named tensor with an identity that gradients are keyed by.

use std::sync::atomic::{AtomicU64, Ordering};

use adamant_tensor::Tensor;

/// The identity of a [`Param`] for the life of the process.
///
/// Ids are handed out from a global counter, so two parameters never share one, even across
/// models. They are not stable across processes: anything saved is keyed by name instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    fn fresh() -> ParamId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ParamId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw number of this id (for display and hashing; not meaningful across runs).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// A named, trainable tensor.
///
/// A tape reads a parameter with `tape.param(&p)` without copying it (the storage is
/// shared); after the tape is dropped the optimizer owns the storage alone again and updates
/// it in place through [`Param::value_mut`].
///
/// `Param` is deliberately not `Clone`: a copy with the same id would alias gradients.
/// Use [`Param::duplicate`] for an independent copy with a fresh id.
#[derive(Debug)]
pub struct Param {
    id: ParamId,
    name: String,
    value: Tensor,
}

impl Param {
    /// A parameter with a fresh id.
    pub fn new(name: impl Into<String>, value: Tensor) -> Param {
        Param { id: ParamId::fresh(), name: name.into(), value }
    }

    /// This parameter's id: the key of its gradient in [`crate::Gradients`].
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The name (e.g. `"0.weight"`), the key under which it is saved.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the parameter (modules prefix their children's names this way).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// The current value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Mutable access to the value, for optimizers and loaders.
    pub fn value_mut(&mut self) -> &mut Tensor {
        &mut self.value
    }

    /// Replaces the value.
    ///
    /// # Panics
    /// If the new value's shape differs from the old one.
    pub fn set_value(&mut self, value: Tensor) {
        assert_eq!(
            value.shape(),
            self.value.shape(),
            "Param::set_value: parameter '{}' has shape {:?}, new value {:?}",
            self.name,
            self.value.shape(),
            value.shape()
        );
        self.value = value;
    }

    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of scalars in this parameter.
    pub fn numel(&self) -> usize {
        self.value.numel()
    }

    /// An independent copy (same name and value) with a fresh id.
    pub fn duplicate(&self) -> Param {
        Param::new(self.name.clone(), self.value.clone())
    }
}
