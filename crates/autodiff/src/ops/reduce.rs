//! Sums and means, over everything or one axis.
//!
//! The backward of a reduction broadcasts the output gradient back over the reduced axes
//! (scaled by 1/n for a mean). Reshapes are in `shape.rs`.

use adamant_tensor::{kernels as k, numel, pool, Tensor};

use crate::tape::Var;

/// `shape` with `axis` set to 1: the output gradient of an axis reduction, viewed so that it
/// broadcasts back over the reduced axis.
fn keepdim_shape(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[axis] = 1;
    s
}

impl<'t> Var<'t> {
    /// Sum of all elements, as a scalar (shape `[]`).
    pub fn sum(self) -> Var<'t> {
        self.sum_scaled(1.0)
    }

    /// Mean of all elements, as a scalar (shape `[]`).
    pub fn mean(self) -> Var<'t> {
        let n = self.value().numel();
        assert!(n > 0, "mean: cannot average an empty tensor");
        self.sum_scaled(1.0 / n as f32)
    }

    /// `scale * sum(x)`: one op for both `sum` and `mean`.
    fn sum_scaled(self, scale: f32) -> Var<'t> {
        let x = self.value();
        let total = k::sum_all(x.data()) * scale;
        let i = self.index;
        self.tape.push_op(Tensor::scalar(total), &[self], move |dy, g| {
            // Every element contributed with weight `scale`.
            k::add_scalar_in_place(g.acc(i), dy[0] * scale);
        })
    }

    /// Sum over one axis, which is removed from the shape (PyTorch's `sum(dim)`).
    pub fn sum_axis(self, axis: usize) -> Var<'t> {
        self.reduce_axis(axis, false)
    }

    /// Mean over one axis, which is removed from the shape (PyTorch's `mean(dim)`).
    pub fn mean_axis(self, axis: usize) -> Var<'t> {
        self.reduce_axis(axis, true)
    }

    fn reduce_axis(self, axis: usize, mean: bool) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        assert!(axis < shape.len(), "sum_axis/mean_axis: axis {axis} out of range for shape {shape:?}");
        let mut out_shape = shape.clone();
        out_shape.remove(axis);
        let mut out = pool::take_for_overwrite(numel(&out_shape));
        if mean {
            k::mean_axis(x.data(), &shape, axis, &mut out);
        } else {
            k::sum_axis(x.data(), &shape, axis, &mut out);
        }
        let scale = if mean { 1.0 / shape[axis] as f32 } else { 1.0 };
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self], move |dy, g| {
            let mut spread = pool::take_for_overwrite(numel(&shape));
            k::broadcast_to(dy, &keepdim_shape(&shape, axis), &shape, &mut spread);
            k::axpy(scale, &spread, g.acc(i));
            pool::recycle(spread);
        })
    }
}
