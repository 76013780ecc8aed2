//! Elementwise kernels: activations, scalar arithmetic, in-place updates and their gradients.
//!
//! Every function here works on flat slices of equal length, so the shape of the tensor does
//! not matter. Each function's backward (`*_backward`) follows it: forward kernels overwrite
//! `out`; backward kernels add their contribution to `dx`, because the autodiff tape sums
//! gradients into preallocated buffers.
//! All loops run through [`for_each_chunk_mut`], so slices longer than the parallel
//! threshold are split over rayon's threads in fixed [`CHUNK`]-sized pieces; since each
//! element is computed on its own, the result does not depend on the number of threads.
//!
//! Activations that exponentiate use forms that cannot overflow: `sigmoid` and `softplus` only
//! ever evaluate `exp(-|x|) <= 1`, so they are finite (and exact at the limits) for any
//! finite input. `exp` itself overflows to `inf` above `x ~ 88.7`, as it must in `f32`.

use super::parallel::{for_each_chunk_mut, CHUNK};
use super::vecmath;

/// Runs `kernel(x_chunk, out_chunk)` on matching chunks of `x` and `out` (equal lengths).
pub(super) fn map_chunked(
    name: &str,
    x: &[f32],
    out: &mut [f32],
    kernel: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) {
    assert_eq!(x.len(), out.len(), "{name}: input has {} elements, output {}", x.len(), out.len());
    // Chunk `i` of `out` covers the same index range of `x`.
    for_each_chunk_mut(out, |i, o| kernel(&x[i * CHUNK..i * CHUNK + o.len()], o));
}

/// Applies `f` elementwise from `x` into `out`, chunk by chunk.
pub(super) fn map_into(name: &str, x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Send) {
    map_chunked(name, x, out, |xs, o| {
        for (o, &v) in o.iter_mut().zip(xs) {
            *o = f(v);
        }
    });
}

/// Applies `y = f(x, y)` elementwise, chunk by chunk (for in-place updates of `y`). The
/// operands are called `names.0` and `names.1` in panic messages.
fn update_with(
    name: &str,
    names: (&str, &str),
    x: &[f32],
    y: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) {
    let (xn, yn) = names;
    assert_eq!(x.len(), y.len(), "{name}: {xn} has {} elements, {yn} {}", x.len(), y.len());
    for_each_chunk_mut(y, |i, ys| {
        let xs = &x[i * CHUNK..i * CHUNK + ys.len()];
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y = f(v, *y);
        }
    });
}

/// Runs `kernel(a_chunk, dy_chunk, dx_chunk)` on matching chunks of the three slices, where
/// `a` is the saved input or output of the forward (named `a_name` in panic messages).
pub(super) fn accumulate_chunked(
    name: &str,
    a_name: &str,
    a: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    kernel: impl Fn(&[f32], &[f32], &mut [f32]) + Sync + Send,
) {
    assert!(
        a.len() == dy.len() && dy.len() == dx.len(),
        "{name}: {a_name} has {} elements, dy {}, dx {}",
        a.len(),
        dy.len(),
        dx.len()
    );
    for_each_chunk_mut(dx, |i, d| {
        let range = i * CHUNK..i * CHUNK + d.len();
        kernel(&a[range.clone()], &dy[range], d);
    });
}

/// Adds `f(a, dy)` to `dx` elementwise, where `a` is the saved input or output of the forward
/// (named `a_name` in panic messages).
pub(super) fn accumulate(
    name: &str,
    a_name: &str,
    a: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) {
    accumulate_chunked(name, a_name, a, dy, dx, |a, dy, d| {
        for ((d, &a), &g) in d.iter_mut().zip(a).zip(dy) {
            *d += f(a, g);
        }
    });
}

// ----- elementwise functions, each forward followed by its backward ----------------------

/// `out = -x`, elementwise; `x` and `out` have the same length.
pub fn neg(x: &[f32], out: &mut [f32]) {
    map_into("neg", x, out, |v| -v);
}

/// `dx += -dy` (gradient of [`neg`]); `dy` and `dx` have the same length.
pub fn neg_backward(dy: &[f32], dx: &mut [f32]) {
    update_with("neg_backward", ("dy", "dx"), dy, dx, |g, d| d - g);
}

/// `out = e^x`, elementwise; `x` and `out` have the same length.
pub fn exp(x: &[f32], out: &mut [f32]) {
    map_into("exp", x, out, f32::exp);
}

/// `dx += dy * y` where `y = exp(x)` is the saved output (gradient of [`exp`]); same lengths.
pub fn exp_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("exp_backward", "y", y, dy, dx, |y, g| g * y);
}

/// `out = ln x`, elementwise (`-inf` at 0, NaN below, as in PyTorch); same lengths.
pub fn log(x: &[f32], out: &mut [f32]) {
    map_into("log", x, out, f32::ln);
}

/// `dx += dy / x` (gradient of [`log`]); `x`, `dy`, `dx` have the same length.
pub fn log_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("log_backward", "x", x, dy, dx, |x, g| g / x);
}

/// `out = sqrt(x)`, elementwise (NaN for negative `x`); same lengths.
pub fn sqrt(x: &[f32], out: &mut [f32]) {
    map_into("sqrt", x, out, f32::sqrt);
}

/// `dx += dy * 0.5 / y` where `y = sqrt(x)` is the saved output (gradient of [`sqrt`]).
pub fn sqrt_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("sqrt_backward", "y", y, dy, dx, |y, g| g * 0.5 / y);
}

/// `out = x^2`, elementwise; same lengths.
pub fn square(x: &[f32], out: &mut [f32]) {
    map_into("square", x, out, |v| v * v);
}

/// `dx += 2 * x * dy` (gradient of [`square`]); `x`, `dy`, `dx` have the same length.
pub fn square_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("square_backward", "x", x, dy, dx, |x, g| 2.0 * x * g);
}

/// `out = max(x, 0)`, elementwise, propagating NaN (as PyTorch does); same lengths.
pub fn relu(x: &[f32], out: &mut [f32]) {
    // `f32::max` would turn NaN into 0 and hide a diverging model; this comparison keeps it.
    map_into("relu", x, out, |v| if v < 0.0 { 0.0 } else { v });
}

/// `dx += dy` where `x > 0`, else nothing (gradient of [`relu`], 0 at `x == 0` like PyTorch).
pub fn relu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("relu_backward", "x", x, dy, dx, |x, g| if x > 0.0 { g } else { 0.0 });
}

/// `out = 1 / (1 + e^-x)`, elementwise and overflow-free; same lengths.
pub fn sigmoid(x: &[f32], out: &mut [f32]) {
    map_chunked("sigmoid", x, out, vecmath::sigmoid_into);
}

/// `dx += dy * y * (1 - y)` where `y = sigmoid(x)` is the saved output; same lengths.
pub fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("sigmoid_backward", "y", y, dy, dx, |y, g| g * y * (1.0 - y));
}

/// `out = tanh(x)`, elementwise; same lengths.
pub fn tanh(x: &[f32], out: &mut [f32]) {
    map_into("tanh", x, out, f32::tanh);
}

/// `dx += dy * (1 - y^2)` where `y = tanh(x)` is the saved output; same lengths.
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate("tanh_backward", "y", y, dy, dx, |y, g| g * (1.0 - y * y));
}

/// `out = ln(1 + e^x)`, elementwise and overflow-free; same lengths.
pub fn softplus(x: &[f32], out: &mut [f32]) {
    // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): the exponent is never positive, and log1p
    // keeps the small tail accurate for very negative x instead of rounding it to 0.
    map_chunked("softplus", x, out, vecmath::softplus_into);
}

/// `dx += dy * sigmoid(x)` (gradient of [`softplus`], overflow-free); same lengths.
pub fn softplus_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    accumulate_chunked("softplus_backward", "x", x, dy, dx, vecmath::add_dy_times_sigmoid);
}

/// `out = x^p`, elementwise (`f32::powf`); same lengths.
pub fn powf(x: &[f32], p: f32, out: &mut [f32]) {
    map_into("powf", x, out, |v| v.powf(p));
}

/// `dx += dy * p * x^(p-1)` (gradient of [`powf`]; nothing when `p == 0`, like PyTorch).
pub fn powf_backward(x: &[f32], p: f32, dy: &[f32], dx: &mut [f32]) {
    if p == 0.0 {
        // x^0 is constant; PyTorch returns a zero gradient here rather than 0 * x^-1, which
        // would be NaN at x == 0.
        accumulate("powf_backward", "x", x, dy, dx, |_, _| 0.0);
        return;
    }
    accumulate("powf_backward", "x", x, dy, dx, |x, g| g * p * x.powf(p - 1.0));
}

// ----- scalar arithmetic (backward: `add_assign` and `axpy` below) ----------------------

/// `out = x + s`, elementwise; same lengths.
pub fn add_scalar(x: &[f32], s: f32, out: &mut [f32]) {
    map_into("add_scalar", x, out, |v| v + s);
}

/// `out = x * s`, elementwise; same lengths.
pub fn mul_scalar(x: &[f32], s: f32, out: &mut [f32]) {
    map_into("mul_scalar", x, out, |v| v * s);
}

// ----- in place: the updates gradients are accumulated with -----------------------------

/// `y += alpha * x`, elementwise; `x` and `y` have the same length.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    update_with("axpy", ("x", "y"), x, y, |v, y| y + alpha * v);
}

/// `y += x`, elementwise; `x` and `y` have the same length.
pub fn add_assign(x: &[f32], y: &mut [f32]) {
    update_with("add_assign", ("x", "y"), x, y, |v, y| y + v);
}

/// `y *= s`, elementwise, in place.
pub fn scale_in_place(y: &mut [f32], s: f32) {
    for_each_chunk_mut(y, |_, ys| {
        for y in ys {
            *y *= s;
        }
    });
}

/// `y += s`, elementwise, in place (the gradient of a sum spreads its scalar this way).
pub fn add_scalar_in_place(y: &mut [f32], s: f32) {
    for_each_chunk_mut(y, |_, ys| {
        for y in ys {
            *y += s;
        }
    });
}

#[cfg(test)]
#[path = "unary_tests.rs"]
mod tests;
