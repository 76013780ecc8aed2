//! `gather` along an axis (PyTorch's `torch.gather`), forward beside backward.
//!
//! The kernels are `kernels::gather_forward` and its adjoint `kernels::gather_backward`, a
//! scatter-add: an input element read by several output positions gets the sum of their
//! gradients, as in PyTorch.

use adamant_tensor::{kernels as k, pool, Axis, Ids, Tensor};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// Picks elements along `axis` by integer `index` (PyTorch's `torch.gather(x, dim,
    /// index)`): `index` has the rank of `self`, the output has `index`'s shape, and for a
    /// 2-d input along axis 1, `out[i][j] = x[i][index[i][j]]`. Along the other axes `index`
    /// may be shorter than the input. The backward scatter-adds, so repeated indices
    /// accumulate.
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Param, Tape};
    /// use adamant_tensor::{Ids, Tensor};
    ///
    /// let x = Param::new("x", Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]));
    /// let tape = Tape::new(Mode::Train, 0);
    /// let y = tape.param(&x).gather(-1, &Ids::from_vec(vec![2, 2, 0, 1], &[2, 2]));
    /// assert_eq!(y.value().data(), &[3.0, 3.0, 4.0, 5.0]);
    /// let grads = y.sum().backward();
    /// // x[0][2] was read twice.
    /// assert_eq!(grads.get(&x).unwrap().data(), &[0.0, 0.0, 2.0, 1.0, 1.0, 0.0]);
    /// ```
    ///
    /// # Panics
    /// If `axis` is out of range, `index` has another rank, is longer than the input along
    /// another axis, or holds an index `>= shape[axis]` (the message names the op, the index
    /// and the shapes).
    pub fn gather(self, axis: impl Axis, index: &Ids) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve("gather", &shape);
        let mut out = pool::take_for_overwrite(index.numel());
        k::gather_forward(x.data(), &shape, axis, index.data(), index.shape(), &mut out);
        let index = index.clone();
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, index.shape()), &[self], move |dy, g| {
            k::gather_backward(dy, &shape, axis, index.data(), index.shape(), g.acc(i));
        })
    }
}
