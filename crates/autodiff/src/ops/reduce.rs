//! Reductions over everything or along one axis, each with its backward beside it: sums and
//! means, maxima and minima (with the arg-max/arg-min as integer ids), log-sum-exp, variance
//! and standard deviation, and the L2 norm.
//!
//! Every axis reduction takes an [`Axis`] (`1`, or `-1` for the last axis, as PyTorch's `dim`)
//! and `keepdim`: with `keepdim = true` the reduced axis stays as size 1, so the result
//! broadcasts back against the input along the right axis (PyTorch's `keepdim=True`). The
//! backward of a sum or mean broadcasts the output gradient back over the reduced axis
//! (scaled by 1/n for a mean); the others call their kernel's `_backward`. Reshapes are in
//! `shape.rs`; the softmax family is in `softmax.rs`.

use adamant_tensor::{kernels as k, numel, pool, Axis, Ids, Tensor};

use crate::tape::Var;

/// `shape` with `axis` set to 1: the output gradient of an axis reduction, viewed so that it
/// broadcasts back over the reduced axis.
fn keepdim_shape(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[axis] = 1;
    s
}

/// The shape of a reduction of `shape` over `axis`: the axis kept as 1, or removed.
fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

/// `max_axis` or `min_axis`: values and positions of the extreme of each lane.
type ExtremeKernel = fn(&[f32], &[usize], usize, &mut [f32], &mut [usize]);

impl<'t> Var<'t> {
    /// Sum of all elements, as a scalar (shape `[]`); PyTorch's `x.sum()`.
    pub fn sum(self) -> Var<'t> {
        self.sum_scaled(1.0)
    }

    /// Mean of all elements, as a scalar (shape `[]`); PyTorch's `x.mean()`.
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

    /// Sum over one axis, which is removed from the shape (PyTorch's `sum(dim)`); the same as
    /// [`Var::sum_dim`]`(axis, false)`.
    pub fn sum_axis(self, axis: usize) -> Var<'t> {
        self.sum_dim(axis, false)
    }

    /// Mean over one axis, which is removed from the shape (PyTorch's `mean(dim)`); the same
    /// as [`Var::mean_dim`]`(axis, false)`. To subtract a mean from its input, keep the axis
    /// with [`Var::mean_dim`]: see there.
    pub fn mean_axis(self, axis: usize) -> Var<'t> {
        self.mean_dim(axis, false)
    }

    /// Sum over `axis` (PyTorch's `x.sum(dim, keepdim)`): `keepdim = true` keeps the axis
    /// with size 1, `false` removes it.
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn sum_dim(self, axis: impl Axis, keepdim: bool) -> Var<'t> {
        self.reduce_dim("sum_dim", axis, keepdim, false)
    }

    /// Mean over `axis` (PyTorch's `x.mean(dim, keepdim)`); NaN over an empty axis.
    ///
    /// `keepdim = true` is what centering needs: `x - x.mean_axis(1)` on `[B, W]` subtracts a
    /// `[B]` vector, which broadcasts along the LAST axis (each column gets row means), and
    /// when `B == W` this runs without any error. `x - x.mean_dim(1, true)` subtracts the
    /// `[B, 1]` row means from their own rows:
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape};
    /// use adamant_tensor::Tensor;
    ///
    /// let tape = Tape::new(Mode::Eval, 0);
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 3.0, 10.0, 30.0], &[2, 2]));
    /// // Row means are 2 and 20.
    /// let centered = x - x.mean_dim(1, true);
    /// assert_eq!(centered.value().data(), &[-1.0, 1.0, -10.0, 10.0]);
    /// // The trap: [2] broadcasts as a row, so column j gets row j's mean.
    /// let wrong = x - x.mean_axis(1);
    /// assert_eq!(wrong.value().data(), &[-1.0, -17.0, 8.0, 10.0]);
    /// ```
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn mean_dim(self, axis: impl Axis, keepdim: bool) -> Var<'t> {
        self.reduce_dim("mean_dim", axis, keepdim, true)
    }

    /// Shared body of `sum_dim` and `mean_dim`.
    fn reduce_dim(self, op: &str, axis: impl Axis, keepdim: bool, mean: bool) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve(op, &shape);
        let out_shape = reduced_shape(&shape, axis, keepdim);
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

    /// Maximum over `axis` (the values of PyTorch's `x.max(dim, keepdim)`; the indices are
    /// [`Var::argmax`]). The gradient goes to the FIRST maximum of each lane only, as in
    /// PyTorch; NaN counts as the maximum.
    ///
    /// # Panics
    /// If `axis` is out of range or the axis has size 0.
    pub fn max_dim(self, axis: impl Axis, keepdim: bool) -> Var<'t> {
        self.extreme_dim("max_dim", axis, keepdim, k::max_axis)
    }

    /// Minimum over `axis` (the values of PyTorch's `x.min(dim, keepdim)`; the indices are
    /// [`Var::argmin`]). The gradient goes to the FIRST minimum of each lane only.
    ///
    /// # Panics
    /// If `axis` is out of range or the axis has size 0.
    pub fn min_dim(self, axis: impl Axis, keepdim: bool) -> Var<'t> {
        self.extreme_dim("min_dim", axis, keepdim, k::min_axis)
    }

    /// Shared body of `max_dim` and `min_dim`: the kernel gives the values and the positions
    /// the backward sends the gradient to.
    fn extreme_dim(self, op: &str, axis: impl Axis, keepdim: bool, kernel: ExtremeKernel) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve(op, &shape);
        assert!(shape[axis] > 0, "{op}: cannot reduce over axis {axis} of size 0 in shape {shape:?}");
        let out_shape = reduced_shape(&shape, axis, keepdim);
        let mut out = pool::take_for_overwrite(numel(&out_shape));
        let mut idx = vec![0usize; out.len()];
        kernel(x.data(), &shape, axis, &mut out, &mut idx);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self], move |dy, g| {
            k::max_axis_backward(dy, &idx, &shape, axis, g.acc(i));
        })
    }

    /// Position along `axis` of the first maximum (PyTorch's `x.argmax(dim, keepdim)`), as
    /// integer [`Ids`]; not differentiable, so nothing is recorded on the tape. NaN counts as
    /// the maximum.
    ///
    /// # Panics
    /// If `axis` is out of range or the axis has size 0.
    pub fn argmax(self, axis: impl Axis, keepdim: bool) -> Ids {
        self.arg_extreme("argmax", axis, keepdim, k::argmax_axis)
    }

    /// Position along `axis` of the first minimum (PyTorch's `x.argmin(dim, keepdim)`), as
    /// integer [`Ids`]; not differentiable.
    ///
    /// # Panics
    /// If `axis` is out of range or the axis has size 0.
    pub fn argmin(self, axis: impl Axis, keepdim: bool) -> Ids {
        self.arg_extreme("argmin", axis, keepdim, k::argmin_axis)
    }

    /// Shared body of `argmax` and `argmin`.
    fn arg_extreme(
        self,
        op: &str,
        axis: impl Axis,
        keepdim: bool,
        kernel: fn(&[f32], &[usize], usize, &mut [usize]),
    ) -> Ids {
        let x = self.value();
        let axis = axis.resolve(op, x.shape());
        assert!(
            x.shape()[axis] > 0,
            "{op}: cannot reduce over axis {axis} of size 0 in shape {:?}",
            x.shape()
        );
        let out_shape = reduced_shape(x.shape(), axis, keepdim);
        let mut out = vec![0usize; numel(&out_shape)];
        kernel(x.data(), x.shape(), axis, &mut out);
        Ids::from_vec(out, &out_shape)
    }

    /// `log(sum(exp(x)))` over `axis`, computed stably (PyTorch's `torch.logsumexp(x, dim,
    /// keepdim)`). Its gradient is the softmax of each lane.
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn logsumexp(self, axis: impl Axis, keepdim: bool) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve("logsumexp", &shape);
        let out_shape = reduced_shape(&shape, axis, keepdim);
        let mut out = pool::take_for_overwrite(numel(&out_shape));
        k::logsumexp_axis(x.data(), &shape, axis, &mut out);
        let y = Tensor::from_vec(out, &out_shape);
        let lse = y.clone();
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| {
            // dx = dy * exp(x - lse), lane by lane.
            k::logsumexp_axis_backward(x.data(), &shape, axis, lse.data(), dy, g.acc(i));
        })
    }

    /// Variance over `axis` (PyTorch's `x.var(dim, unbiased, keepdim)`): the mean squared
    /// deviation from the lane mean, divided by `n - 1` when `unbiased` (Bessel's correction,
    /// PyTorch's default) or by `n`. With `unbiased` and `n == 1` the result is NaN, as in
    /// PyTorch.
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn var(self, axis: impl Axis, unbiased: bool, keepdim: bool) -> Var<'t> {
        self.moment_dim("var", axis, unbiased, keepdim, false)
    }

    /// Standard deviation over `axis`, the square root of [`Var::var`] (PyTorch's
    /// `x.std(dim, unbiased, keepdim)`). A constant lane has std 0 and, as in PyTorch, a zero
    /// gradient (not the infinite slope of the square root).
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn std(self, axis: impl Axis, unbiased: bool, keepdim: bool) -> Var<'t> {
        self.moment_dim("std", axis, unbiased, keepdim, true)
    }

    /// Shared body of `var` and `std`.
    fn moment_dim(self, op: &str, axis: impl Axis, unbiased: bool, keepdim: bool, sqrt: bool) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve(op, &shape);
        let correction = usize::from(unbiased);
        let out_shape = reduced_shape(&shape, axis, keepdim);
        let m = numel(&out_shape);
        let mut mean = pool::take_for_overwrite(m);
        let mut var = pool::take_for_overwrite(m);
        k::var_axis(x.data(), &shape, axis, correction, &mut mean, &mut var);
        let mean = Tensor::from_vec(mean, &out_shape);
        let i = self.index;
        if !sqrt {
            return self.tape.push_op(Tensor::from_vec(var, &out_shape), &[self], move |dy, g| {
                k::var_axis_backward(x.data(), &shape, axis, correction, mean.data(), dy, g.acc(i));
            });
        }
        let mut std = pool::take_for_overwrite(m);
        k::sqrt(&var, &mut std);
        pool::recycle(var);
        let y = Tensor::from_vec(std, &out_shape);
        let std = y.clone();
        self.tape.push_op(y, &[self], move |dy, g| {
            k::std_axis_backward(x.data(), &shape, axis, correction, mean.data(), std.data(), dy, g.acc(i));
        })
    }

    /// Euclidean (L2) norm of all elements, `sqrt(sum x^2)`, as a scalar (PyTorch's
    /// `torch.linalg.vector_norm(x)`, ord 2). The gradient is `x / norm`, and 0 at the zero
    /// vector as in PyTorch.
    pub fn norm(self) -> Var<'t> {
        let x = self.value();
        let norm = k::norm_all(x.data());
        let i = self.index;
        self.tape.push_op(Tensor::scalar(norm), &[self], move |dy, g| {
            let n = x.numel();
            k::norm_axis_backward(x.data(), &[n], 0, &[norm], dy, g.acc(i));
        })
    }

    /// Euclidean (L2) norm over `axis` (PyTorch's `torch.linalg.vector_norm(x, 2, dim,
    /// keepdim)`); gradient 0 for a lane that is all zeros, as in PyTorch.
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn norm_dim(self, axis: impl Axis, keepdim: bool) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve("norm_dim", &shape);
        let out_shape = reduced_shape(&shape, axis, keepdim);
        let mut out = pool::take_for_overwrite(numel(&out_shape));
        k::norm_axis(x.data(), &shape, axis, &mut out);
        let y = Tensor::from_vec(out, &out_shape);
        let norm = y.clone();
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| {
            k::norm_axis_backward(x.data(), &shape, axis, norm.data(), dy, g.acc(i));
        })
    }
}
