//! Elementwise functions: activations, exp/log/sqrt, powers.
//!
//! Each backward uses whichever of the input `x` or the output `y` gives the cheapest exact
//! derivative: `exp' = y`, `sigmoid' = y(1-y)`, `tanh' = 1-y^2`, `sqrt' = 1/(2y)`,
//! `relu' = [x > 0]`, `softplus' = sigmoid(x)`, `log' = 1/x`, `(x^2)' = 2x`.

use adamant_tensor::{broadcast_shapes, kernels as k, numel, pool, Tensor};

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
        self.unary_with(forward, saved, backward)
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

    /// [`Var::unary`] for kernels with constant parameters: `forward(x, out)` and
    /// `backward(saved, dy, dx)` are closures that capture them.
    fn unary_with(
        self,
        forward: impl FnOnce(&[f32], &mut [f32]),
        saved: Saved,
        backward: impl Fn(&[f32], &[f32], &mut [f32]) + 'static,
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

    /// Exact GELU `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2` (PyTorch's `gelu`);
    /// gradient `Phi(x) + x phi(x)`.
    ///
    /// When gradients flow, the forward also keeps that derivative (one more tensor of the
    /// input's size): `Phi` is then evaluated once per step instead of twice, and the backward
    /// is one product, with the same bits as recomputing it.
    pub fn gelu(self) -> Var<'t> {
        if !self.requires_grad() {
            return self.unary(k::gelu, Saved::Input, k::gelu_backward);
        }
        let x = self.value();
        let (mut out, mut deriv) = (pool::take_for_overwrite(x.numel()), pool::take_for_overwrite(x.numel()));
        k::gelu_and_derivative(x.data(), &mut out, &mut deriv);
        let deriv = Tensor::from_vec(deriv, x.shape());
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| {
            // A first gradient is the product itself (no zero fill to add it to).
            let (dx, fresh) = g.slot(i);
            if fresh {
                k::mul(deriv.data(), deriv.shape(), dy, deriv.shape(), dx);
            } else {
                k::mul_accumulate(deriv.data(), dy, dx);
            }
        })
    }

    /// GELU's tanh approximation `x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2`
    /// (PyTorch's `gelu(approximate='tanh')`).
    pub fn gelu_tanh(self) -> Var<'t> {
        self.unary(k::gelu_tanh, Saved::Input, k::gelu_tanh_backward)
    }

    /// SiLU (swish) `x sigmoid(x)`; gradient `s (1 + x (1 - s))` with `s = sigmoid(x)`.
    pub fn silu(self) -> Var<'t> {
        self.unary(k::silu, Saved::Input, k::silu_backward)
    }

    /// `|x|`; gradient `sign(x)`, 0 at `x == 0` as in PyTorch.
    pub fn abs(self) -> Var<'t> {
        self.unary(k::abs, Saved::Input, k::abs_backward)
    }

    /// `min(max(x, min), max)`; gradient 1 strictly inside `(min, max)`, 0 outside and at the
    /// bounds themselves (what torch 2.15 gives). Either bound may be infinite.
    ///
    /// Panics if `min > max` or a bound is NaN (a programmer error).
    pub fn clamp(self, min: f32, max: f32) -> Var<'t> {
        assert!(min <= max, "clamp: min {min} must not exceed max {max} (input shape {:?})", self.shape());
        self.unary_with(
            |x, out| k::clamp(x, min, max, out),
            Saved::Input,
            move |x, dy, dx| k::clamp_backward(x, min, max, dy, dx),
        )
    }

    /// `x` where `x > 0`, else `negative_slope x` (PyTorch's `leaky_relu`); gradient 1 or
    /// `negative_slope`, which is also the gradient at 0 as in PyTorch.
    pub fn leaky_relu(self, negative_slope: f32) -> Var<'t> {
        self.unary_with(
            |x, out| k::leaky_relu(x, negative_slope, out),
            Saved::Input,
            move |x, dy, dx| k::leaky_relu_backward(x, negative_slope, dy, dx),
        )
    }

    /// `x` where `x > 0`, else `alpha (e^x - 1)` (PyTorch's `elu`); gradient 1 or `alpha e^x`,
    /// `alpha` at 0 as in PyTorch.
    pub fn elu(self, alpha: f32) -> Var<'t> {
        self.unary_with(
            |x, out| k::elu(x, alpha, out),
            Saved::Input,
            move |x, dy, dx| k::elu_backward(x, alpha, dy, dx),
        )
    }

    /// `sin x`; gradient `cos x`.
    pub fn sin(self) -> Var<'t> {
        self.unary(k::sin, Saved::Input, k::sin_backward)
    }

    /// `cos x`; gradient `-sin x`.
    pub fn cos(self) -> Var<'t> {
        self.unary(k::cos, Saved::Input, k::cos_backward)
    }

    /// `1 / sqrt(x)`; gradient `-y^3 / 2` from the output `y`.
    pub fn rsqrt(self) -> Var<'t> {
        self.unary(k::rsqrt, Saved::Output, k::rsqrt_backward)
    }

    /// `1 / x`; gradient `-y^2` from the output `y`.
    pub fn recip(self) -> Var<'t> {
        self.unary(k::recip, Saved::Output, k::recip_backward)
    }

    /// `value` where `mask` is true, else `x` (`torch.masked_fill`); gradient 1 where the mask
    /// is false, 0 where it is true. The mask is a row-major `&[bool]` of shape `mask_shape`,
    /// broadcast to the input's shape as PyTorch does (a `[T, T]` causal mask on `[B, H, T, T]`
    /// scores).
    pub fn masked_fill(self, mask: &[bool], mask_shape: &[usize], value: f32) -> Var<'t> {
        let shape = self.shape();
        let mask = broadcast_mask("masked_fill", mask, mask_shape, &shape);
        let fill = vec![value; mask.len()];
        let m = mask.clone();
        self.unary_with(
            move |x, out| k::select(&mask, &fill, x, out),
            Saved::Input,
            move |_, dy, dx| k::select_backward(&m, false, dy, dx),
        )
    }

    /// `mask ? a : b` elementwise (`torch.where(mask, a, b)`), the mask (a row-major `&[bool]`
    /// of shape `mask_shape`), `a` and `b` broadcast together as PyTorch does; the gradient
    /// goes to `a` where the mask is true and to `b` where it is false, summed back over the
    /// axes each operand was broadcast along.
    pub fn where_(mask: &[bool], mask_shape: &[usize], a: Var<'t>, b: Var<'t>) -> Var<'t> {
        let (av, bv) = (a.value(), b.value());
        let out_shape = broadcast_shapes(av.shape(), bv.shape())
            .and_then(|s| broadcast_shapes(mask_shape, &s))
            .unwrap_or_else(|| {
                panic!(
                    "where_: mask of shape {mask_shape:?} and operands of shapes {:?} and {:?} do not broadcast together",
                    av.shape(),
                    bv.shape()
                )
            });
        let m = broadcast_mask("where_", mask, mask_shape, &out_shape);
        let n = m.len();
        let spread = |t: &Tensor| {
            let mut full = pool::take_for_overwrite(n);
            k::broadcast_to(t.data(), t.shape(), &out_shape, &mut full);
            full
        };
        let (af, bf) = (spread(&av), spread(&bv));
        let mut out = pool::take_for_overwrite(n);
        k::select(&m, &af, &bf, &mut out);
        pool::recycle(af);
        pool::recycle(bf);
        let (ia, ib) = (a.index, b.index);
        let (a_shape, b_shape) = (av.shape().to_vec(), bv.shape().to_vec());
        let shape = out_shape.clone();
        a.tape.push_op(Tensor::from_vec(out, &out_shape), &[a, b], move |dy, g| {
            // d where(m, a, b)/da = [m], /db = [!m], each summed back to its operand's shape.
            for (i, when, target) in [(ia, true, &a_shape), (ib, false, &b_shape)] {
                if g.wants(i) {
                    let mut full = pool::take_zeroed(dy.len());
                    k::select_backward(&m, when, dy, &mut full);
                    k::sum_to_shape(&full, &shape, target, g.acc(i));
                    pool::recycle(full);
                }
            }
        })
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

/// Panics (naming `op` and the shapes) unless the mask's shape, `a_shape` and `b_shape` are
/// equal and the mask has that many elements.
/// `mask` (row-major in `mask_shape`) broadcast to `shape`, which it must broadcast to.
fn broadcast_mask(op: &str, mask: &[bool], mask_shape: &[usize], shape: &[usize]) -> Vec<bool> {
    assert!(
        mask.len() == numel(mask_shape) && broadcast_shapes(mask_shape, shape).as_deref() == Some(shape),
        "{op}: mask of shape {mask_shape:?} ({} values) does not broadcast to shape {shape:?}",
        mask.len()
    );
    if mask_shape == shape {
        return mask.to_vec();
    }
    let ones: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let mut full = vec![0.0; numel(shape)];
    k::broadcast_to(&ones, mask_shape, shape, &mut full);
    full.iter().map(|&v| v != 0.0).collect()
}
