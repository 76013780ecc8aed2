//! The activations and elementwise functions that today's small models use beyond the
//! paper's (GELU, SiLU, ELU, clamp, trigonometric, reciprocal, select), each forward followed
//! by its backward, on the same chunked, thread-count-independent loops as `unary.rs`. Their
//! tests share `unary.rs`'s helpers and live there.

use super::erf;
use rayon::prelude::*;

use super::parallel::{for_each_chunk_mut, should_parallelize, CHUNK};
use super::unary::{accumulate, accumulate_chunked, map_chunked, map_into};

/// `out = x Phi(x) = x erfc(-x/sqrt 2) / 2` (exact GELU, PyTorch's default), in vectorised
/// `f32` within 5 ulp (see `kernels/erf.rs`: it was an `f64` `erfc` and `exp` per element,
/// a third of the character-level GPT's step).
pub fn gelu(x: &[f32], out: &mut [f32]) {
    map_chunked("gelu", x, out, erf::gelu_into);
}

/// `dx += dy (Phi(x) + x phi(x))` with `phi` the normal density (gradient of [`gelu`]).
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate_chunked("gelu_backward", "x", x, dy, dx, erf::gelu_backward_into);
}

/// `out = gelu(x)` and `deriv = Phi(x) + x phi(x)`, GELU's derivative: a training forward
/// keeps `deriv` so that the backward is [`mul_accumulate`] instead of a second evaluation of
/// `Phi` (the gradient is the same, bit for bit, as [`gelu_backward`]'s). Same lengths.
pub fn gelu_and_derivative(x: &[f32], out: &mut [f32], deriv: &mut [f32]) {
    assert!(
        x.len() == out.len() && out.len() == deriv.len(),
        "gelu_and_derivative: x has {} elements, out {}, deriv {}",
        x.len(),
        out.len(),
        deriv.len()
    );
    // The same fixed chunks as every elementwise kernel, so threads do not change the bits.
    let one = |(i, (o, d)): (usize, (&mut [f32], &mut [f32]))| {
        erf::gelu_and_derivative_into(&x[i * CHUNK..i * CHUNK + o.len()], o, d)
    };
    if should_parallelize(x.len()) {
        out.par_chunks_mut(CHUNK).zip(deriv.par_chunks_mut(CHUNK)).enumerate().for_each(one);
    } else {
        out.chunks_mut(CHUNK).zip(deriv.chunks_mut(CHUNK)).enumerate().for_each(one);
    }
}

/// `dx += dy a` elementwise, where `a` is a saved derivative; same lengths.
pub fn mul_accumulate(a: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate_chunked("mul_accumulate", "a", a, dy, dx, erf::add_dy_times);
}

/// `sqrt(2/pi)` and the cubic coefficient of the tanh approximation of GELU.
const GELU_K: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

/// `out = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2` (PyTorch's `approximate='tanh'`),
/// computed in f64 (in f32, `1 + tanh` cancels for negative `x`).
pub fn gelu_tanh(x: &[f32], out: &mut [f32]) {
    map_into("gelu_tanh", x, out, |v| {
        let v = v as f64;
        (0.5 * v * (1.0 + (GELU_K * (v + GELU_C * v * v * v)).tanh())) as f32
    });
}

/// `dx += dy ((1 + t)/2 + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2)`,
/// `t = tanh(sqrt(2/pi)(x + 0.044715 x^3))` (gradient of [`gelu_tanh`]).
pub fn gelu_tanh_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("gelu_tanh_backward", "x", x, dy, dx, |x, g| {
        let v = x as f64;
        let t = (GELU_K * (v + GELU_C * v * v * v)).tanh();
        let d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * GELU_C * v * v);
        (g as f64 * d) as f32
    });
}

/// The logistic function of one value, overflow-free (`exp` of a non-positive number only).
#[inline]
fn sigmoid1(v: f32) -> f32 {
    let e = (-v.abs()).exp();
    if v >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `out = x sigmoid(x)` (SiLU, also called swish); same lengths.
pub fn silu(x: &[f32], out: &mut [f32]) {
    map_into("silu", x, out, |v| v * sigmoid1(v));
}

/// `dx += dy s (1 + x (1 - s))`, `s = sigmoid(x)` (gradient of [`silu`]); same lengths.
pub fn silu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("silu_backward", "x", x, dy, dx, |x, g| {
        let s = sigmoid1(x);
        g * s * (1.0 + x * (1.0 - s))
    });
}

/// `out = |x|`; same lengths.
pub fn abs(x: &[f32], out: &mut [f32]) {
    map_into("abs", x, out, f32::abs);
}

/// `dx += dy sign(x)`, with `sign(0) = 0` as in PyTorch (gradient of [`abs`]).
pub fn abs_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("abs_backward", "x", x, dy, dx, |x, g| {
        if x > 0.0 {
            g
        } else if x < 0.0 {
            -g
        } else {
            0.0
        }
    });
}

/// `out = min(max(x, lo), hi)`, NaN staying NaN; same lengths.
pub fn clamp(x: &[f32], lo: f32, hi: f32, out: &mut [f32]) {
    map_into("clamp", x, out, |v| {
        let v = if v < lo { lo } else { v };
        if v > hi {
            hi
        } else {
            v
        }
    });
}

/// `dx += dy` where `lo < x < hi` strictly, else nothing: at a bound the gradient is 0, as
/// torch 2.15 gives (gradient of [`clamp`]).
pub fn clamp_backward(x: &[f32], lo: f32, hi: f32, dy: &[f32], dx: &mut [f32]) {
    accumulate("clamp_backward", "x", x, dy, dx, |x, g| if x > lo && x < hi { g } else { 0.0 });
}

/// `out = x` where `x > 0`, else `slope x`; same lengths.
pub fn leaky_relu(x: &[f32], slope: f32, out: &mut [f32]) {
    map_into("leaky_relu", x, out, |v| if v > 0.0 { v } else { v * slope });
}

/// `dx += dy` where `x > 0`, else `slope dy` (at 0: `slope`, as PyTorch; gradient of [`leaky_relu`]).
pub fn leaky_relu_backward(x: &[f32], slope: f32, dy: &[f32], dx: &mut [f32]) {
    accumulate("leaky_relu_backward", "x", x, dy, dx, |x, g| if x > 0.0 { g } else { g * slope });
}

/// `out = x` where `x > 0`, else `alpha (e^x - 1)` (computed with `exp_m1`); same lengths.
pub fn elu(x: &[f32], alpha: f32, out: &mut [f32]) {
    map_into("elu", x, out, |v| if v > 0.0 { v } else { alpha * v.exp_m1() });
}

/// `dx += dy` where `x > 0`, else `alpha e^x dy` (at 0: `alpha`, as PyTorch; gradient of [`elu`]).
pub fn elu_backward(x: &[f32], alpha: f32, dy: &[f32], dx: &mut [f32]) {
    accumulate("elu_backward", "x", x, dy, dx, |x, g| if x > 0.0 { g } else { g * alpha * x.exp() });
}

/// `out = sin x`; same lengths.
pub fn sin(x: &[f32], out: &mut [f32]) {
    map_into("sin", x, out, f32::sin);
}

/// `dx += dy cos x` (gradient of [`sin`]); same lengths.
pub fn sin_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("sin_backward", "x", x, dy, dx, |x, g| g * x.cos());
}

/// `out = cos x`; same lengths.
pub fn cos(x: &[f32], out: &mut [f32]) {
    map_into("cos", x, out, f32::cos);
}

/// `dx += -dy sin x` (gradient of [`cos`]); same lengths.
pub fn cos_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("cos_backward", "x", x, dy, dx, |x, g| -g * x.sin());
}

/// `out = 1 / sqrt(x)` (`inf` at 0, NaN below); same lengths.
pub fn rsqrt(x: &[f32], out: &mut [f32]) {
    map_into("rsqrt", x, out, |v| 1.0 / v.sqrt());
}

/// `dx += -dy y^3 / 2` where `y = rsqrt(x)` is the saved output (gradient of [`rsqrt`]).
pub fn rsqrt_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("rsqrt_backward", "y", y, dy, dx, |y, g| -0.5 * g * y * y * y);
}

/// `out = 1 / x` (`inf` at 0); same lengths.
pub fn recip(x: &[f32], out: &mut [f32]) {
    map_into("recip", x, out, |v| 1.0 / v);
}

/// `dx += -dy y^2` where `y = 1/x` is the saved output (gradient of [`recip`]).
pub fn recip_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("recip_backward", "y", y, dy, dx, |y, g| -g * y * y);
}

/// `out = mask ? a : b`, elementwise (`torch.where`); all four slices have the same length.
pub fn select(mask: &[bool], a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(
        mask.len() == a.len() && a.len() == b.len() && b.len() == out.len(),
        "select: mask has {} elements, a {}, b {}, out {}",
        mask.len(),
        a.len(),
        b.len(),
        out.len()
    );
    for_each_chunk_mut(out, |i, o| {
        let r = i * CHUNK..i * CHUNK + o.len();
        for (((o, &m), &a), &b) in o.iter_mut().zip(&mask[r.clone()]).zip(&a[r.clone()]).zip(&b[r]) {
            *o = if m { a } else { b };
        }
    });
}

/// `dx += dy` where `mask == when`, else nothing: the gradient of [`select`] for `a`
/// (`when = true`) or `b` (`when = false`); same lengths.
pub fn select_backward(mask: &[bool], when: bool, dy: &[f32], dx: &mut [f32]) {
    assert!(
        mask.len() == dy.len() && dy.len() == dx.len(),
        "select_backward: mask has {} elements, dy {}, dx {}",
        mask.len(),
        dy.len(),
        dx.len()
    );
    for_each_chunk_mut(dx, |i, d| {
        let r = i * CHUNK..i * CHUNK + d.len();
        for ((d, &m), &g) in d.iter_mut().zip(&mask[r.clone()]).zip(&dy[r]) {
            if m == when {
                *d += g;
            }
        }
    });
}
