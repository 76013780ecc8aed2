//! The softmax family along any axis, forward beside backward: `softmax` and `log_softmax`.
//!
//! The kernels are in `adamant-tensor`'s `kernels/softmax.rs`; along the last axis they run
//! the row kernels (`log_softmax_rows`, ...), so the common case costs what it always did.
//! `logsumexp` is with the reductions in `reduce.rs`; the loss that fuses log-softmax with
//! the negative log-likelihood is `cross_entropy`, in `loss.rs`.

use adamant_tensor::{kernels as k, pool, Axis, Tensor};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// `exp(x) / sum(exp(x))` along `axis`, shifted by the lane maximum so that it cannot
    /// overflow (PyTorch's `x.softmax(dim)`); `-1` is the last axis.
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape};
    /// use adamant_tensor::Tensor;
    ///
    /// let tape = Tape::new(Mode::Eval, 0);
    /// let x = tape.constant(Tensor::from_vec(vec![0.0, 0.0, 1e4, 0.0], &[2, 2]));
    /// // Down the columns: [0, 1e4] and [0, 0].
    /// assert_eq!(x.softmax(0).value().data(), &[0.0, 0.5, 1.0, 0.5]);
    /// ```
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn softmax(self, axis: impl Axis) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve("softmax", &shape);
        let mut out = pool::take_for_overwrite(x.numel());
        k::softmax_axis(x.data(), &shape, axis, &mut out);
        let y = Tensor::from_vec(out, &shape);
        let y_saved = y.clone();
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| {
            // dx = y * (dy - sum(dy * y)), lane by lane.
            k::softmax_axis_backward(y_saved.data(), dy, &shape, axis, g.acc(i));
        })
    }

    /// `log(softmax(x))` along `axis`, computed stably as `x - logsumexp(x)` (PyTorch's
    /// `x.log_softmax(dim)`); `log_softmax(-1)` is the last axis, the usual case.
    ///
    /// # Panics
    /// If `axis` is out of range for the shape.
    pub fn log_softmax(self, axis: impl Axis) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axis = axis.resolve("log_softmax", &shape);
        let mut out = pool::take_for_overwrite(x.numel());
        k::log_softmax_axis(x.data(), &shape, axis, &mut out);
        let y = Tensor::from_vec(out, &shape);
        let y_saved = y.clone();
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| {
            // dx = dy - softmax * sum(dy), lane by lane.
            k::log_softmax_axis_backward(y_saved.data(), dy, &shape, axis, g.acc(i));
        })
    }
}
