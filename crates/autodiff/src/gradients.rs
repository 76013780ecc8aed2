//! The result of `backward()`: one gradient tensor per parameter, keyed by [`ParamId`].

use std::collections::HashMap;

use adamant_tensor::Tensor;

use crate::param::{Param, ParamId};

/// Gradients of a scalar with respect to the parameters it depends on.
///
/// A parameter that the scalar does not depend on has no entry.
#[derive(Clone, Debug, Default)]
pub struct Gradients {
    by_id: HashMap<ParamId, Tensor>,
}

impl Gradients {
    /// An empty set of gradients.
    pub fn new() -> Gradients {
        Gradients::default()
    }

    /// The gradient of a parameter, if the scalar depends on it.
    pub fn get(&self, param: &Param) -> Option<&Tensor> {
        self.by_id.get(&param.id())
    }

    /// The gradient for a parameter id.
    pub fn get_by_id(&self, id: ParamId) -> Option<&Tensor> {
        self.by_id.get(&id)
    }

    /// Mutable gradient for a parameter id (for clipping and scaling in place).
    pub fn get_mut_by_id(&mut self, id: ParamId) -> Option<&mut Tensor> {
        self.by_id.get_mut(&id)
    }

    /// Adds `grad` to the gradient of `id` (inserting it if absent).
    ///
    /// # Panics
    /// If a gradient for `id` exists with another shape.
    pub fn accumulate(&mut self, id: ParamId, grad: Tensor) {
        match self.by_id.get_mut(&id) {
            None => {
                self.by_id.insert(id, grad);
            }
            Some(existing) => {
                assert_eq!(
                    existing.shape(),
                    grad.shape(),
                    "Gradients::accumulate: shapes {:?} and {:?} for one parameter",
                    existing.shape(),
                    grad.shape()
                );
                adamant_tensor::kernels::add_assign(grad.data(), existing.data_mut());
            }
        }
    }

    /// Adds every gradient of `other` into this set ([`Gradients::accumulate`] of each): the
    /// sum of the gradients of several losses, as gradient accumulation over micro-batches
    /// needs it (a parameter only one of them reaches keeps that one's gradient).
    ///
    /// # Panics
    /// If a parameter has gradients of two shapes.
    pub fn add(&mut self, other: Gradients) {
        for (id, grad) in other.by_id {
            self.accumulate(id, grad);
        }
    }

    /// Number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Iterates over `(id, gradient)` pairs in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Tensor)> {
        self.by_id.iter().map(|(&id, t)| (id, t))
    }

    /// Iterates mutably over `(id, gradient)` pairs in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ParamId, &mut Tensor)> {
        self.by_id.iter_mut().map(|(&id, t)| (id, t))
    }
}
