//! User-defined ops: a forward value computed by the caller, a backward given as a closure.
//!
//! The built-in ops call the crate-private `push_op` with a closure over raw gradient
//! buffers; [`Tape::custom_op`] wraps the same mechanism in a checked, tensor-valued
//! contract (PyTorch's `autograd.Function`, candle's `CustomOp`), so that a user can add an
//! op without touching this crate.

use adamant_tensor::{kernels as k, Tensor};

use crate::tape::{Tape, Var};

impl Tape {
    /// Records an op whose value the caller has already computed and whose gradient
    /// `backward` gives.
    ///
    /// * `name` names the op in panic messages.
    /// * `value` is the op's output, computed from the `inputs`' values (`Var::value`).
    /// * `backward(dy, xs)` receives the upstream gradient `dy` (the shape of `value`) and
    ///   the inputs' values `xs` as they were when the op was recorded, and must return one
    ///   gradient per input, in order, each the shape of its input: `dL/dx_i`. The tape adds
    ///   them to whatever the inputs receive from other uses.
    ///
    /// `backward` runs only when some input needs a gradient; if the tape does not record
    /// it is dropped at once. It is called at most once per [`Var::backward`].
    ///
    /// Correctness of `backward` is yours: check it with [`gradcheck`](crate::gradcheck), as
    /// below for softsign `x / (1 + |x|)`, whose derivative is `1 / (1 + |x|)^2`.
    ///
    /// ```
    /// use adamant_autodiff::{gradcheck, GradcheckOptions, Param, Tape, Var};
    /// use adamant_tensor::Tensor;
    ///
    /// fn softsign<'t>(x: Var<'t>) -> Var<'t> {
    ///     let value = x.value().map(|v| v / (1.0 + v.abs()));
    ///     x.tape().custom_op("softsign", value, &[x], |dy, xs| {
    ///         let dx: Vec<f32> = dy.data().iter().zip(xs[0].data())
    ///             .map(|(&g, &v)| g / ((1.0 + v.abs()) * (1.0 + v.abs())))
    ///             .collect();
    ///         vec![Tensor::from_vec(dx, xs[0].shape())]
    ///     })
    /// }
    ///
    /// let mut w = Param::new("w", Tensor::from_vec(vec![0.5, -1.5, 2.0, -0.2, 0.9, 3.0], &[2, 3]));
    /// let report = gradcheck(&mut [&mut w], |tape: &Tape, p| {
    ///     let w = tape.param(&*p[0]);
    ///     (softsign(w) * w).sum()     // w is used twice: gradients of both uses add up
    /// }, GradcheckOptions::default());
    /// assert!(report.passed, "{report}");
    /// ```
    ///
    /// # Panics
    /// During backward, naming the op, if `backward` returns a number of gradients other
    /// than the number of inputs, or a gradient whose shape differs from its input's.
    pub fn custom_op<'t, F>(&'t self, name: &str, value: Tensor, inputs: &[Var<'t>], backward: F) -> Var<'t>
    where
        F: Fn(&Tensor, &[Tensor]) -> Vec<Tensor> + 'static,
    {
        let name = name.to_string();
        let out_shape = value.shape().to_vec();
        // O(1) clones: the inputs' storage is shared, not copied.
        let xs: Vec<Tensor> = inputs.iter().map(|x| x.value()).collect();
        let idx: Vec<usize> = inputs.iter().map(|x| x.index).collect();
        self.push_op(value, inputs, move |dy, g| {
            // dy: the output's shape; one dx per input, each the input's shape.
            let dy = Tensor::from_slice(dy, &out_shape);
            let dxs = backward(&dy, &xs);
            assert_eq!(
                dxs.len(),
                xs.len(),
                "custom op {name}: backward returned {} gradients for {} inputs",
                dxs.len(),
                xs.len()
            );
            for (j, ((dx, x), &i)) in dxs.iter().zip(&xs).zip(&idx).enumerate() {
                assert_eq!(
                    dx.shape(),
                    x.shape(),
                    "custom op {name}: the gradient of input {j} has shape {:?}, the input has shape {:?}",
                    dx.shape(),
                    x.shape()
                );
                if g.wants(i) {
                    k::add_assign(dx.data(), g.acc(i));
                }
            }
        })
    }
}
