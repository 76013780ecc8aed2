//! The softmax family over the last axis: `log_softmax`, forward beside backward.
//!
//! The kernels (`log_softmax_rows`, `log_softmax_backward`) are in `adamant-tensor`'s
//! `kernels/softmax.rs`; the loss that fuses log-softmax with the negative log-likelihood is
//! `cross_entropy`, in `loss.rs`.

use adamant_tensor::{kernels as k, pool, Tensor};

use crate::tape::Var;

/// `(rows, cols)` of a value viewed as rows of its last axis.
fn rows_cols(op: &str, shape: &[usize]) -> (usize, usize) {
    assert!(!shape.is_empty(), "{op}: needs at least one axis, got a scalar");
    let cols = shape[shape.len() - 1];
    let rows = shape.iter().product::<usize>().checked_div(cols).unwrap_or(0);
    (rows, cols)
}

impl<'t> Var<'t> {
    /// `log(softmax(x))` over the last axis, computed stably as `x - logsumexp(x)`.
    pub fn log_softmax(self) -> Var<'t> {
        let x = self.value();
        let (rows, cols) = rows_cols("log_softmax", x.shape());
        let mut out = pool::take_for_overwrite(x.numel());
        k::log_softmax_rows(x.data(), rows, cols, &mut out);
        let y = Tensor::from_vec(out, x.shape());
        let y_saved = y.clone();
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| {
            // dx = dy - softmax * sum(dy), row by row.
            k::log_softmax_backward(y_saved.data(), dy, rows, cols, g.acc(i));
        })
    }
}
