//! Broadcasting `+ - * /`, scalar operands and unary minus.
//!
//! Broadcasting follows NumPy. In backward, the gradient of an input that was broadcast is
//! summed back to that input's shape (`sum_to_shape`).

use std::ops::{Add, Div, Mul, Neg, Sub};

use adamant_tensor::{broadcast_shapes, kernels as k, numel, pool, Tensor};

use crate::tape::Var;

/// The broadcast shape of two operands, or a panic naming the op and both shapes.
fn broadcast_or_panic(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    broadcast_shapes(a, b)
        .unwrap_or_else(|| panic!("{op}: shapes {a:?} and {b:?} cannot be broadcast together"))
}

/// Accumulates `g` (of shape `out_shape`) into the gradient of an input of shape `in_shape`.
fn send_back(g: &[f32], out_shape: &[usize], in_shape: &[usize], acc: &mut [f32]) {
    if out_shape == in_shape {
        k::add_assign(g, acc);
    } else {
        k::sum_to_shape(g, out_shape, in_shape, acc);
    }
}

type BinaryKernel = fn(&[f32], &[usize], &[f32], &[usize], &mut [f32]);
type ExtremumBackward = fn(&[f32], &[usize], &[f32], &[usize], &[f32], &mut [f32], &mut [f32]);

impl<'t> Var<'t> {
    fn binary_forward(self, rhs: Var<'t>, op: &str, kernel: BinaryKernel) -> (Tensor, Tensor, Tensor) {
        let (a, b) = (self.value(), rhs.value());
        let shape = broadcast_or_panic(op, a.shape(), b.shape());
        let mut out = pool::take_for_overwrite(numel(&shape));
        kernel(a.data(), a.shape(), b.data(), b.shape(), &mut out);
        (a, b, Tensor::from_vec(out, &shape))
    }

    /// `self + rhs` with broadcasting (e.g. adding a bias `[N]` to `[B, N]`); the `+` operator.
    fn add_var(self, rhs: Var<'t>) -> Var<'t> {
        let (a, b, y) = self.binary_forward(rhs, "add", k::add);
        if a.shape() == b.shape() {
            // d(a+b)/da = d(a+b)/db = 1: the gradient flows on to both (one of them takes
            // the buffer, the other a copy).
            return self.tape.push_identity(y, &[self, rhs]);
        }
        let (ia, ib, ys) = (self.index, rhs.index, y.shape().to_vec());
        self.tape.push_op(y, &[self, rhs], move |dy, g| {
            // d(a+b)/da = d(a+b)/db = 1.
            for (i, shape) in [(ia, a.shape()), (ib, b.shape())] {
                if !g.wants(i) {
                    continue;
                }
                if shape == ys.as_slice() {
                    // Same shape: a fresh gradient is a copy of dy (no zero fill and add).
                    g.add(i, dy);
                } else {
                    send_back(dy, &ys, shape, g.acc(i));
                }
            }
        })
    }

    /// `self - rhs` with broadcasting; the `-` operator.
    fn sub_var(self, rhs: Var<'t>) -> Var<'t> {
        let (a, b, y) = self.binary_forward(rhs, "sub", k::sub);
        let (ia, ib, ys) = (self.index, rhs.index, y.shape().to_vec());
        self.tape.push_op(y, &[self, rhs], move |dy, g| {
            if g.wants(ia) {
                send_back(dy, &ys, a.shape(), g.acc(ia));
            }
            if g.wants(ib) {
                let mut neg = pool::take_for_overwrite(dy.len());
                k::neg(dy, &mut neg);
                send_back(&neg, &ys, b.shape(), g.acc(ib));
                pool::recycle(neg);
            }
        })
    }

    /// `self * rhs` elementwise, with broadcasting; the `*` operator.
    fn mul_var(self, rhs: Var<'t>) -> Var<'t> {
        let (a, b, y) = self.binary_forward(rhs, "mul", k::mul);
        let (ia, ib, ys) = (self.index, rhs.index, y.shape().to_vec());
        self.tape.push_op(y, &[self, rhs], move |dy, g| {
            // d(ab)/da = b, d(ab)/db = a.
            let mut t = pool::take_for_overwrite(dy.len());
            if g.wants(ia) {
                k::mul(dy, &ys, b.data(), b.shape(), &mut t);
                send_back(&t, &ys, a.shape(), g.acc(ia));
            }
            if g.wants(ib) {
                k::mul(dy, &ys, a.data(), a.shape(), &mut t);
                send_back(&t, &ys, b.shape(), g.acc(ib));
            }
            pool::recycle(t);
        })
    }

    /// `self / rhs` elementwise, with broadcasting; the `/` operator.
    fn div_var(self, rhs: Var<'t>) -> Var<'t> {
        let (a, b, y) = self.binary_forward(rhs, "div", k::div);
        let (ia, ib, ys) = (self.index, rhs.index, y.shape().to_vec());
        let y_saved = y.clone();
        self.tape.push_op(y, &[self, rhs], move |dy, g| {
            // d(a/b)/da = 1/b;  d(a/b)/db = -a/b^2 = -(a/b)/b.
            let mut t = pool::take_for_overwrite(dy.len());
            if g.wants(ia) {
                k::div(dy, &ys, b.data(), b.shape(), &mut t);
                send_back(&t, &ys, a.shape(), g.acc(ia));
            }
            if g.wants(ib) {
                let mut u = pool::take_for_overwrite(dy.len());
                k::mul(dy, &ys, y_saved.data(), &ys, &mut u);
                k::div(&u, &ys, b.data(), b.shape(), &mut t);
                k::neg(&t, &mut u);
                send_back(&u, &ys, b.shape(), g.acc(ib));
                pool::recycle(u);
            }
            pool::recycle(t);
        })
    }

    /// `max(self, rhs)` elementwise with broadcasting (`torch.maximum`, NaN-propagating); the
    /// gradient goes to the larger input, half to each on ties, as in PyTorch.
    pub fn maximum(self, rhs: Var<'t>) -> Var<'t> {
        self.extremum(rhs, "maximum", k::maximum, k::maximum_backward)
    }

    /// `min(self, rhs)` elementwise with broadcasting (`torch.minimum`, NaN-propagating); the
    /// gradient goes to the smaller input, half to each on ties, as in PyTorch.
    pub fn minimum(self, rhs: Var<'t>) -> Var<'t> {
        self.extremum(rhs, "minimum", k::minimum, k::minimum_backward)
    }

    /// [`Var::maximum`] or [`Var::minimum`]: `backward(a, b, dy, da, db)` adds each side's share.
    fn extremum(self, rhs: Var<'t>, op: &str, forward: BinaryKernel, backward: ExtremumBackward) -> Var<'t> {
        let (a, b, y) = self.binary_forward(rhs, op, forward);
        let (ia, ib) = (self.index, rhs.index);
        self.tape.push_op(y, &[self, rhs], move |dy, g| {
            // d max(a,b)/da = [a > b] + [a == b]/2 (mirrored for min); the kernel sums the
            // shares back to each input's shape.
            // Both shares come from one kernel call, so they go through zeroed buffers first.
            let (mut da, mut db) = (vec![0.0; a.numel()], vec![0.0; b.numel()]);
            backward(a.data(), a.shape(), b.data(), b.shape(), dy, &mut da, &mut db);
            if g.wants(ia) {
                k::add_assign(&da, g.acc(ia));
            }
            if g.wants(ib) {
                k::add_assign(&db, g.acc(ib));
            }
        })
    }

    /// `self + s` for a scalar `s`.
    pub fn add_scalar(self, s: f32) -> Var<'t> {
        let x = self.value();
        let mut out = pool::take_for_overwrite(x.numel());
        k::add_scalar(x.data(), s, &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| g.add(i, dy))
    }

    /// `self * s` for a scalar `s`.
    pub fn mul_scalar(self, s: f32) -> Var<'t> {
        let x = self.value();
        let mut out = pool::take_for_overwrite(x.numel());
        k::mul_scalar(x.data(), s, &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| {
            k::axpy(s, dy, g.acc(i));
        })
    }

    /// `-self`; the unary `-` operator.
    fn neg_var(self) -> Var<'t> {
        let x = self.value();
        let mut out = pool::take_for_overwrite(x.numel());
        k::neg(x.data(), &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| {
            k::neg_backward(dy, g.acc(i));
        })
    }
}

impl<'t> Add for Var<'t> {
    type Output = Var<'t>;
    fn add(self, rhs: Var<'t>) -> Var<'t> {
        self.add_var(rhs)
    }
}

impl<'t> Sub for Var<'t> {
    type Output = Var<'t>;
    fn sub(self, rhs: Var<'t>) -> Var<'t> {
        self.sub_var(rhs)
    }
}

impl<'t> Mul for Var<'t> {
    type Output = Var<'t>;
    fn mul(self, rhs: Var<'t>) -> Var<'t> {
        self.mul_var(rhs)
    }
}

impl<'t> Div for Var<'t> {
    type Output = Var<'t>;
    fn div(self, rhs: Var<'t>) -> Var<'t> {
        self.div_var(rhs)
    }
}

impl<'t> Neg for Var<'t> {
    type Output = Var<'t>;
    fn neg(self) -> Var<'t> {
        self.neg_var()
    }
}

impl<'t> Add<f32> for Var<'t> {
    type Output = Var<'t>;
    fn add(self, s: f32) -> Var<'t> {
        self.add_scalar(s)
    }
}

impl<'t> Sub<f32> for Var<'t> {
    type Output = Var<'t>;
    fn sub(self, s: f32) -> Var<'t> {
        self.add_scalar(-s)
    }
}

impl<'t> Mul<f32> for Var<'t> {
    type Output = Var<'t>;
    fn mul(self, s: f32) -> Var<'t> {
        self.mul_scalar(s)
    }
}

impl<'t> Div<f32> for Var<'t> {
    type Output = Var<'t>;
    fn div(self, s: f32) -> Var<'t> {
        self.mul_scalar(1.0 / s)
    }
}

impl<'t> Add<Var<'t>> for f32 {
    type Output = Var<'t>;
    fn add(self, v: Var<'t>) -> Var<'t> {
        v.add_scalar(self)
    }
}

impl<'t> Sub<Var<'t>> for f32 {
    type Output = Var<'t>;
    fn sub(self, v: Var<'t>) -> Var<'t> {
        v.neg().add_scalar(self)
    }
}

impl<'t> Mul<Var<'t>> for f32 {
    type Output = Var<'t>;
    fn mul(self, v: Var<'t>) -> Var<'t> {
        v.mul_scalar(self)
    }
}

impl<'t> Div<Var<'t>> for f32 {
    type Output = Var<'t>;
    fn div(self, v: Var<'t>) -> Var<'t> {
        v.powf(-1.0).mul_scalar(self)
    }
}
