//! Elementwise functions: activations, exp/log/sqrt, powers.
//!
//! Each backward uses whichever of the input `x` or the output `y` gives the cheapest exact
//! derivative: `exp' = y`, `sigmoid' = y(1-y)`, `tanh' = 1-y^2`, `sqrt' = 1/(2y)`,
//! `relu' = [x > 0]`, `softplus' = sigmoid(x)`, `log' = 1/x`, `(x^2)' = 2x`.

use adamant_tensor::{kernels as k, pool, Tensor};

use crate::tape::Var;

/// Which saved value a unary op's backward reads.
#[derive(Clone, Copy)]
enum Saved {
    Input,
    Output,
}

impl<'t> Var<'t> {
    /// Applies `forward` elementwise and records `backward(saved, dy, dx)`, where `saved` is
    /// the input or the output as the derivative needs.
    fn unary(
        self,
        forward: fn(&[f32], &mut [f32]),
        saved: Saved,
        backward: fn(&[f32], &[f32], &mut [f32]),
    ) -> Var<'t> {
        let x = self.value();
        let mut out = pool::take_for_overwrite(x.numel());
        forward(x.data(), &mut out);
        let y = Tensor::from_vec(out, x.shape());
        let keep = match saved {
            Saved::Input => x,
            Saved::Output => y.clone(),
        };
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| backward(keep.data(), dy, g.acc(i)))
    }

    /// `exp(x)`.
    pub fn exp(self) -> Var<'t> {
        self.unary(k::exp, Saved::Output, k::exp_backward)
    }

    /// Natural logarithm.
    pub fn log(self) -> Var<'t> {
        self.unary(k::log, Saved::Input, k::log_backward)
    }

    /// Square root.
    pub fn sqrt(self) -> Var<'t> {
        self.unary(k::sqrt, Saved::Output, k::sqrt_backward)
    }

    /// `x^2`.
    pub fn square(self) -> Var<'t> {
        self.unary(k::square, Saved::Input, k::square_backward)
    }

    /// `max(x, 0)`; the gradient at exactly 0 is 0, as in PyTorch.
    pub fn relu(self) -> Var<'t> {
        self.unary(k::relu, Saved::Input, k::relu_backward)
    }

    /// The logistic function `1 / (1 + exp(-x))`, stable for large |x|.
    pub fn sigmoid(self) -> Var<'t> {
        self.unary(k::sigmoid, Saved::Output, k::sigmoid_backward)
    }

    /// Hyperbolic tangent.
    pub fn tanh(self) -> Var<'t> {
        self.unary(k::tanh, Saved::Output, k::tanh_backward)
    }

    /// `log(1 + exp(x))`, stable for large |x| (PyTorch's `Softplus` with beta 1).
    pub fn softplus(self) -> Var<'t> {
        self.unary(k::softplus, Saved::Input, k::softplus_backward)
    }

    /// `x^p` for a constant exponent `p`.
    pub fn powf(self, p: f32) -> Var<'t> {
        let x = self.value();
        let mut out = pool::take_for_overwrite(x.numel());
        k::powf(x.data(), p, &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| {
            // d(x^p)/dx = p x^(p-1).
            k::powf_backward(x.data(), p, dy, g.acc(i));
        })
    }
}
