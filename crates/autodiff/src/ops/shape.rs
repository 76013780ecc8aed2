//! Shape ops: `reshape` and `flatten`, which change how a value's elements are viewed and
//! never the elements themselves.
//!
//! The backward of a reshape is the reverse reshape: the gradient arrives in the output's
//! shape with the elements in the same row-major order, so it is added as is.

use adamant_tensor::{kernels as k, numel};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// The same values with another shape of equal size.
    ///
    /// # Panics
    /// If the number of elements differs.
    pub fn reshape(self, shape: &[usize]) -> Var<'t> {
        let x = self.value();
        let y = x.reshape(shape);
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| k::add_assign(dy, g.acc(i)))
    }

    /// Flattens every axis after the first: `[B, C, H, W]` to `[B, C*H*W]`.
    pub fn flatten(self) -> Var<'t> {
        let shape = self.shape();
        assert!(!shape.is_empty(), "flatten: needs at least one axis, got a scalar");
        let rest = numel(&shape[1..]);
        self.reshape(&[shape[0], rest])
    }
}
