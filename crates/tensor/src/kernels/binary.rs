//! Elementwise binary ops with NumPy broadcasting, and the reduction their gradients need.
//!
//! `add`, `sub`, `mul`, `div` and `maximum` take each operand with its shape and write the
//! broadcast result (shape [`broadcast_shapes`]) into `out`. Most calls in a network hit one
//! of three fast paths, which run as straight slice loops:
//!
//! * equal shapes (up to leading 1s): a zip of the two slices;
//! * one operand a single element: a map with a constant;
//! * one operand a contiguous block of the other's dims, like a bias: `[B, N] + [N]`
//!   (row broadcast) or `[B, C, H, W] + [C, 1, 1]` (one value per run of `H*W`).
//!
//! Everything else goes through broadcast strides (0 on stretched axes) after merging axes
//! that can be walked as one. All paths cut `out` into the fixed [`CHUNK`]s of
//! [`for_each_chunk_mut`]; each element is computed on its own, so results do not depend on
//! the number of threads.
//!
//! [`sum_to_shape`] is the adjoint of broadcasting: it sums a gradient over the stretched axes
//! back to an operand's shape, in a summation order fixed by the shapes alone.

use super::parallel::{for_each_block_mut, for_each_chunk_mut, CHUNK};
use crate::shape::{broadcast_shapes, numel, strides};

/// `out = a + b` with NumPy broadcasting; `out` has shape `broadcast_shapes(a_shape, b_shape)`.
pub fn add(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out: &mut [f32]) {
    broadcast_binary("add", a, a_shape, b, b_shape, out, |x, y| x + y);
}

/// `out = a - b` with NumPy broadcasting; `out` has shape `broadcast_shapes(a_shape, b_shape)`.
pub fn sub(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out: &mut [f32]) {
    broadcast_binary("sub", a, a_shape, b, b_shape, out, |x, y| x - y);
}

/// `out = a * b` with NumPy broadcasting; `out` has shape `broadcast_shapes(a_shape, b_shape)`.
pub fn mul(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out: &mut [f32]) {
    broadcast_binary("mul", a, a_shape, b, b_shape, out, |x, y| x * y);
}

/// `out = a / b` with NumPy broadcasting; `out` has shape `broadcast_shapes(a_shape, b_shape)`.
pub fn div(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out: &mut [f32]) {
    broadcast_binary("div", a, a_shape, b, b_shape, out, |x, y| x / y);
}

/// `out = max(a, b)` with NumPy broadcasting, NaN if either is NaN (like `torch.maximum`);
/// `out` has shape `broadcast_shapes(a_shape, b_shape)`.
pub fn maximum(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out: &mut [f32]) {
    broadcast_binary("maximum", a, a_shape, b, b_shape, out, max_nan);
}

/// `f32::max` returns the non-NaN operand; a NaN must reach the loss to be noticed.
#[inline]
fn max_nan(x: f32, y: f32) -> f32 {
    if x.is_nan() || x > y {
        x
    } else {
        y
    }
}

/// Gradient of [`maximum`]: adds `dy` to `da` where `a > b`, to `db` where `b > a`, half to
/// each on ties (PyTorch's rule), summed back to `a_shape` and `b_shape` (`dy`, like the
/// output, has the broadcast shape; `da` has `numel(a_shape)` elements, `db` `numel(b_shape)`).
pub fn maximum_backward(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
) {
    extremum_backward("maximum_backward", true, a, a_shape, b, b_shape, dy, da, db);
}

/// `out = min(a, b)` with NumPy broadcasting, NaN if either is NaN (like `torch.minimum`);
/// `out` has shape `broadcast_shapes(a_shape, b_shape)`.
pub fn minimum(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out: &mut [f32]) {
    broadcast_binary("minimum", a, a_shape, b, b_shape, out, |x, y| if x.is_nan() || x < y { x } else { y });
}

/// Gradient of [`minimum`]: adds `dy` to `da` where `a < b`, to `db` where `b < a`, half to
/// each on ties (PyTorch's rule), summed back to `a_shape` and `b_shape`.
pub fn minimum_backward(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
) {
    extremum_backward("minimum_backward", false, a, a_shape, b, b_shape, dy, da, db);
}

/// The backward of [`maximum`] (`is_max`) or [`minimum`]: the winner of each pair gets `dy`.
#[allow(clippy::too_many_arguments)]
fn extremum_backward(
    name: &str,
    is_max: bool,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
) {
    let out_shape = check_operands(name, a, a_shape, b, b_shape);
    let n = numel(&out_shape);
    assert_eq!(dy.len(), n, "{name}: dy has {} elements, output shape {out_shape:?} needs {n}", dy.len());
    // The share of dy each side receives, as a factor 1, 0.5 or 0. PyTorch's formula is
    // where(a == b, dy / 2, dy).masked_fill(a < b, 0) for a, and the mirror image for b;
    // NaN compares false both ways, so then both sides get all of dy.
    // For minimum the same rule holds with the comparison mirrored.
    let share = move |mine: f32, other: f32| {
        if mine == other {
            0.5
        } else if (is_max && mine < other) || (!is_max && mine > other) {
            0.0
        } else {
            1.0
        }
    };
    let mut tmp = vec![0.0f32; n];
    for (mine, mine_shape, other, other_shape, grad) in
        [(a, a_shape, b, b_shape, da), (b, b_shape, a, a_shape, db)]
    {
        // Broadcasting is symmetric, so tmp has the output's layout with either order.
        broadcast_binary(name, mine, mine_shape, other, other_shape, &mut tmp, share);
        // A masked-out position gets 0 even where dy is inf or NaN, as with masked_fill.
        for_each_chunk_mut(&mut tmp, |i, t| {
            for (t, &g) in t.iter_mut().zip(&dy[i * CHUNK..]) {
                *t = if *t == 0.0 { 0.0 } else { *t * g };
            }
        });
        sum_to_shape(&tmp, &out_shape, mine_shape, grad);
    }
}

/// `out = x` broadcast (NumPy rules) from `x_shape` to `shape`; `out` has `numel(shape)`
/// elements.
pub fn broadcast_to(x: &[f32], x_shape: &[usize], shape: &[usize], out: &mut [f32]) {
    assert_eq!(
        x.len(),
        numel(x_shape),
        "broadcast_to: x has {} elements but shape {x_shape:?} needs {}",
        x.len(),
        numel(x_shape)
    );
    assert!(
        broadcast_shapes(x_shape, shape).as_deref() == Some(shape),
        "broadcast_to: cannot broadcast shape {x_shape:?} to {shape:?}"
    );
    assert_eq!(
        out.len(),
        numel(shape),
        "broadcast_to: out has {} elements but shape {shape:?} needs {}",
        out.len(),
        numel(shape)
    );
    if x.len() == out.len() {
        out.copy_from_slice(x);
        return;
    }
    // Feeding x as both operands reuses the broadcast walker; the second is ignored.
    general(x, x_shape, x, x_shape, shape, out, |v, _| v);
}

/// Sums `grad` (shape `grad_shape`) over the axes along which `target_shape` was broadcast to
/// reach `grad_shape`, and ADDS the result to `acc` (`numel(target_shape)` elements).
///
/// This is the gradient of broadcasting. The summation order depends only on the shapes:
/// each output element is the sum of its inputs in increasing index order, except that when
/// the target is small (fewer than [`CHUNK`] elements) the inputs are summed in fixed-size
/// blocks whose partial sums are then added in order (so a long reduction can use several
/// threads). The block sum is added to `acc` last, so `acc + sum` is rounded once.
pub fn sum_to_shape(grad: &[f32], grad_shape: &[usize], target_shape: &[usize], acc: &mut [f32]) {
    assert_eq!(
        grad.len(),
        numel(grad_shape),
        "sum_to_shape: grad has {} elements but shape {grad_shape:?} needs {}",
        grad.len(),
        numel(grad_shape)
    );
    assert!(
        broadcast_shapes(target_shape, grad_shape).as_deref() == Some(grad_shape),
        "sum_to_shape: shape {target_shape:?} does not broadcast to {grad_shape:?}"
    );
    assert_eq!(
        acc.len(),
        numel(target_shape),
        "sum_to_shape: acc has {} elements but shape {target_shape:?} needs {}",
        acc.len(),
        numel(target_shape)
    );
    let t = acc.len();
    if t == 0 || grad.is_empty() {
        // Nothing to sum; adding 0.0 would still turn a -0.0 in acc into +0.0.
        return;
    }
    let r = grad.len() / t;

    // Split the axes of grad into those kept in the target and those summed over. Target
    // element j sits at grad offset kept(j) + reduced(k) for every reduced index k.
    let gstrides = strides(grad_shape);
    let pad = grad_shape.len() - target_shape.len();
    let (mut kept, mut reduced) = (Vec::new(), Vec::new());
    for (d, (&g, &s)) in grad_shape.iter().zip(&gstrides).enumerate() {
        let target_dim = if d < pad { 1 } else { target_shape[d - pad] };
        if g == 1 {
            continue;
        }
        if target_dim == 1 {
            reduced.push((g, s));
        } else {
            kept.push((g, s));
        }
    }
    let (kept, reduced) = (coalesce(kept), coalesce(reduced));

    if t >= CHUNK {
        // Enough target elements to share out: chunk the target, sum each reduction whole.
        let roffs = offsets(&reduced, 0, r);
        for_each_chunk_mut(acc, |i, a| {
            let bases = offsets(&kept, i * CHUNK, a.len());
            let mut sums = vec![0.0f32; a.len()];
            sum_into(grad, &bases, &roffs, &mut sums);
            for (a, s) in a.iter_mut().zip(&sums) {
                *a += s;
            }
        });
    } else {
        // Few target elements (a bias, a scalar): cut the reduction into blocks of about
        // CHUNK inputs each, at most MAX_BLOCKS of them, then add the partials in order.
        const MAX_BLOCKS: usize = 32;
        let rb = CHUNK.div_ceil(t).max(r.div_ceil(MAX_BLOCKS)).max(1);
        let nblocks = r.div_ceil(rb);
        let bases = offsets(&kept, 0, t);
        let mut partials = vec![0.0f32; nblocks * t];
        for_each_block_mut(&mut partials, t, grad.len(), |k, p| {
            let roffs = offsets(&reduced, k * rb, rb.min(r - k * rb));
            sum_into(grad, &bases, &roffs, p);
        });
        let (total, rest) = partials.split_at_mut(t);
        for p in rest.chunks(t) {
            for (s, v) in total.iter_mut().zip(p) {
                *s += v;
            }
        }
        for (a, s) in acc.iter_mut().zip(total.iter()) {
            *a += s;
        }
    }
}

/// `sums[j] += grad[bases[j] + roffs[0]] + grad[bases[j] + roffs[1]] + ...`, in that order.
fn sum_into(grad: &[f32], bases: &[usize], roffs: &[usize], sums: &mut [f32]) {
    let n = sums.len();
    if n == 0 {
        return;
    }
    // Both loop orders add each element's inputs in the same order, so they give the same
    // bits; pick the one that reads memory contiguously.
    let contiguous = bases.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous {
        for &ro in roffs {
            let start = bases[0] + ro;
            for (s, g) in sums.iter_mut().zip(&grad[start..start + n]) {
                *s += g;
            }
        }
    } else {
        for (s, &b) in sums.iter_mut().zip(bases) {
            for &ro in roffs {
                *s += grad[b + ro];
            }
        }
    }
}

/// Merges adjacent `(size, stride)` axes that step through memory as one axis.
fn coalesce(axes: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(axes.len());
    for (n, s) in axes {
        match out.last_mut() {
            Some(last) if last.1 == s * n => *last = (last.0 * n, s),
            _ => out.push((n, s)),
        }
    }
    out
}

/// Memory offsets of the row-major indices `start..start + len` of the index space `axes`
/// (`(size, stride)` pairs, outermost first; no axes means one index at offset 0).
fn offsets(axes: &[(usize, usize)], start: usize, len: usize) -> Vec<usize> {
    let mut idx = vec![0; axes.len()];
    let mut rem = start;
    for (d, &(n, _)) in axes.iter().enumerate().rev() {
        idx[d] = rem % n;
        rem /= n;
    }
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(idx.iter().zip(axes).map(|(i, (_, s))| i * s).sum());
        for (d, &(n, _)) in axes.iter().enumerate().rev() {
            idx[d] += 1;
            if idx[d] < n {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Checks operand lengths and shapes, returning the broadcast shape.
fn check_operands(name: &str, a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize]) -> Vec<usize> {
    let out_shape = broadcast_shapes(a_shape, b_shape)
        .unwrap_or_else(|| panic!("{name}: cannot broadcast shapes {a_shape:?} and {b_shape:?}"));
    assert_eq!(
        a.len(),
        numel(a_shape),
        "{name}: a has {} elements but shape {a_shape:?} needs {}",
        a.len(),
        numel(a_shape)
    );
    assert_eq!(
        b.len(),
        numel(b_shape),
        "{name}: b has {} elements but shape {b_shape:?} needs {}",
        b.len(),
        numel(b_shape)
    );
    out_shape
}

/// Validates the operands and writes `out[i] = f(a[..], b[..])` over the broadcast shape,
/// choosing the fastest applicable path.
fn broadcast_binary<F>(
    name: &str,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    f: F,
) where
    F: Fn(f32, f32) -> f32 + Sync + Send + Copy,
{
    let out_shape = check_operands(name, a, a_shape, b, b_shape);
    let n = numel(&out_shape);
    assert_eq!(
        out.len(),
        n,
        "{name}: out has {} elements but the broadcast of {a_shape:?} and {b_shape:?} is {out_shape:?} ({n})",
        out.len()
    );
    if n == 0 {
        return;
    }
    // With n > 0, an operand with n elements cannot be stretched along any axis: it has the
    // output's layout.
    match (a.len() == n, b.len() == n) {
        (true, true) => {
            for_each_chunk_mut(out, |i, o| {
                let r = i * CHUNK..i * CHUNK + o.len();
                zip_map(o, &a[r.clone()], &b[r], f);
            });
            return;
        }
        (true, false) => {
            if let Some(inner) = block_pattern(b_shape, &out_shape) {
                return apply_block(a, b, inner, out, f);
            }
        }
        (false, true) => {
            if let Some(inner) = block_pattern(a_shape, &out_shape) {
                return apply_block(b, a, inner, out, move |y, x| f(x, y));
            }
        }
        (false, false) => {}
    }
    general(a, a_shape, b, b_shape, &out_shape, out, f);
}

/// If `small` (aligned right to `out_shape`) is 1 everywhere except one contiguous run of
/// axes that equal the output's, returns the number of output elements per small element
/// (`inner`, the product of the output axes after the run): output element `i` then uses
/// `small[(i / inner) % small.len()]`. A single element is the case of an empty run.
fn block_pattern(small: &[usize], out_shape: &[usize]) -> Option<usize> {
    let pad = out_shape.len() - small.len();
    let dim = |d: usize| if d < pad { 1 } else { small[d - pad] };
    let non_one: Vec<usize> = (0..out_shape.len()).filter(|&d| dim(d) != 1).collect();
    let (Some(&first), Some(&last)) = (non_one.first(), non_one.last()) else {
        return Some(numel(out_shape));
    };
    if (first..=last).any(|d| dim(d) != out_shape[d]) {
        return None;
    }
    Some(numel(&out_shape[last + 1..]))
}

/// `out[i] = f(big[i], small[(i / inner) % small.len()])`, in runs that read `small` as a
/// slice (`inner == 1`) or as a constant (`inner > 1`).
fn apply_block<F>(big: &[f32], small: &[f32], inner: usize, out: &mut [f32], f: F)
where
    F: Fn(f32, f32) -> f32 + Sync + Send + Copy,
{
    let ns = small.len();
    for_each_chunk_mut(out, |ci, o| {
        let start = ci * CHUNK;
        let big = &big[start..start + o.len()];
        let mut k = 0;
        while k < o.len() {
            let p = start + k;
            let q = p / inner;
            if inner == 1 {
                // Row broadcast: consecutive outputs walk `small` until it wraps around.
                let j = q % ns;
                let run = (ns - j).min(o.len() - k);
                for ((o, &x), &y) in o[k..k + run].iter_mut().zip(&big[k..k + run]).zip(&small[j..j + run]) {
                    *o = f(x, y);
                }
                k += run;
            } else {
                let run = (inner - p % inner).min(o.len() - k);
                let y = small[q % ns];
                for (o, &x) in o[k..k + run].iter_mut().zip(&big[k..k + run]) {
                    *o = f(x, y);
                }
                k += run;
            }
        }
    });
}

/// `out[i] = f(a[i], b[i])` over equal lengths, in the widest vectors this CPU has: the
/// same-shape case of every binary op (a residual sum, GELU's gradient product), which a
/// baseline x86-64 build would run four lanes at a time.
fn zip_map<F: Fn(f32, f32) -> f32 + Copy>(out: &mut [f32], a: &[f32], b: &[f32], f: F) {
    #[inline(always)]
    fn body<F: Fn(f32, f32) -> f32>(out: &mut [f32], a: &[f32], b: &[f32], f: F) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<F: Fn(f32, f32) -> f32>(out: &mut [f32], a: &[f32], b: &[f32], f: F) {
            body(out, a, b, f)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<F: Fn(f32, f32) -> f32>(out: &mut [f32], a: &[f32], b: &[f32], f: F) {
            body(out, a, b, f)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has just been found to support AVX-512F.
            return unsafe { avx512(out, a, b, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been found to support AVX2.
            return unsafe { avx2(out, a, b, f) };
        }
    }
    body(out, a, b, f)
}

/// The general broadcast: walks the output in row-major order, keeping each operand's
/// offset through its broadcast strides (0 on stretched axes).
fn general<F>(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [f32],
    f: F,
) where
    F: Fn(f32, f32) -> f32 + Sync + Send + Copy,
{
    let bstrides = |shape: &[usize]| -> Vec<usize> {
        let pad = out_shape.len() - shape.len();
        let s = strides(shape);
        (0..out_shape.len()).map(|d| if d < pad || shape[d - pad] == 1 { 0 } else { s[d - pad] }).collect()
    };
    let (sa, sb) = (bstrides(a_shape), bstrides(b_shape));
    // Drop unit axes and merge neighbours that both operands step through as one, so the
    // innermost run is as long as possible.
    let mut axes: Vec<(usize, usize, usize)> = Vec::new();
    for d in 0..out_shape.len() {
        let (n, x, y) = (out_shape[d], sa[d], sb[d]);
        if n == 1 {
            continue;
        }
        match axes.last_mut() {
            Some(last) if last.1 == x * n && last.2 == y * n => *last = (last.0 * n, x, y),
            _ => axes.push((n, x, y)),
        }
    }
    if axes.is_empty() {
        axes.push((1, 0, 0));
    }
    let last = axes.len() - 1;
    let (inner_n, inner_a, inner_b) = axes[last];

    for_each_chunk_mut(out, |ci, o| {
        let mut idx = vec![0; axes.len()];
        let mut rem = ci * CHUNK;
        for d in (0..axes.len()).rev() {
            idx[d] = rem % axes[d].0;
            rem /= axes[d].0;
        }
        let mut k = 0;
        while k < o.len() {
            let (mut oa, mut ob) = (0, 0);
            for (i, &(_, x, y)) in idx.iter().zip(&axes) {
                oa += i * x;
                ob += i * y;
            }
            let run = (inner_n - idx[last]).min(o.len() - k);
            let dst = &mut o[k..k + run];
            // After merging, the innermost stride of an operand is 1 (it varies along the
            // axis) or 0 (stretched). Both are 0 only in broadcast_to, where "a" and "b" are
            // the same stretched input; the last arm is a fallback that never runs.
            match (inner_a, inner_b) {
                (1, 1) => {
                    for ((o, &x), &y) in dst.iter_mut().zip(&a[oa..oa + run]).zip(&b[ob..ob + run]) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in dst.iter_mut().zip(&a[oa..oa + run]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in dst.iter_mut().zip(&b[ob..ob + run]) {
                        *o = f(x, y);
                    }
                }
                (0, 0) => dst.fill(f(a[oa], b[ob])),
                _ => {
                    for (t, o) in dst.iter_mut().enumerate() {
                        *o = f(a[oa + t * inner_a], b[ob + t * inner_b]);
                    }
                }
            }
            k += run;
            idx[last] += run;
            for d in (1..axes.len()).rev() {
                if idx[d] < axes[d].0 {
                    break;
                }
                idx[d] = 0;
                idx[d - 1] += 1;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::parallel::{with_mode, Mode};
    use crate::testing::{self, assert_bits_eq, assert_par_eq_serial_bits};

    type Op = fn(&[f32], &[usize], &[f32], &[usize], &mut [f32]);
    type Scalar = fn(f32, f32) -> f32;

    /// Each op with its plain per-element formula.
    const OPS: [(&str, Op, Scalar); 5] = [
        ("add", add, |x, y| x + y),
        ("sub", sub, |x, y| x - y),
        ("mul", mul, |x, y| x * y),
        ("div", div, |x, y| x / y),
        ("maximum", maximum, |x, y| if x.is_nan() || x > y { x } else { y }),
    ];

    /// Standard normal values for an operand of `shape`, seeded.
    fn randn(shape: &[usize], seed: u64) -> Vec<f32> {
        testing::randn(numel(shape), seed)
    }

    /// Values away from zero, so that `div` stays tame.
    fn away_from_zero(shape: &[usize], seed: u64) -> Vec<f32> {
        randn(shape, seed).into_iter().map(|v| if v < 0.0 { v - 0.5 } else { v + 0.5 }).collect()
    }

    /// Row-major multi-index of `i` in `shape`.
    fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
        idx
    }

    /// Flat index into an operand of shape `shape` for the output multi-index `out_idx`
    /// (operand aligned right; size-1 axes pinned to 0).
    fn operand_index(out_idx: &[usize], shape: &[usize]) -> usize {
        let pad = out_idx.len() - shape.len();
        let mut flat = 0;
        for d in 0..shape.len() {
            let i = if shape[d] == 1 { 0 } else { out_idx[pad + d] };
            flat = flat * shape[d] + i;
        }
        flat
    }

    fn naive_binary(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], f: fn(f32, f32) -> f32) -> Vec<f32> {
        let shape = broadcast_shapes(sa, sb).unwrap();
        (0..numel(&shape))
            .map(|i| {
                let idx = unravel(i, &shape);
                f(a[operand_index(&idx, sa)], b[operand_index(&idx, sb)])
            })
            .collect()
    }

    /// Sums in increasing grad index per target element, in f64 (for tolerance checks) and
    /// in f32 (the exact order of the kernel when there is a single reduction block).
    fn naive_sum_to_shape(grad: &[f32], gs: &[usize], ts: &[usize]) -> (Vec<f64>, Vec<f32>) {
        let mut s64 = vec![0.0f64; numel(ts)];
        let mut s32 = vec![0.0f32; numel(ts)];
        for (i, &g) in grad.iter().enumerate() {
            let t = operand_index(&unravel(i, gs), ts);
            s64[t] += g as f64;
            s32[t] += g;
        }
        (s64, s32)
    }

    fn run(op: Op, a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Vec<f32> {
        let mut out = vec![f32::NAN; numel(&broadcast_shapes(sa, sb).unwrap())];
        op(a, sa, b, sb, &mut out);
        out
    }

    fn check_all_ops(sa: &[usize], sb: &[usize]) {
        let a = randn(sa, 1);
        let b = away_from_zero(sb, 2);
        for (name, op, f) in OPS {
            let want = naive_binary(&a, sa, &b, sb, f);
            for mode in [Mode::Serial, Mode::Parallel] {
                let got = with_mode(mode, || run(op, &a, sa, &b, sb));
                assert_bits_eq(&got, &want, &format!("{name} {sa:?} {sb:?} {mode:?}"));
            }
        }
    }

    // ----- forward vs naive on every path ------------------------------------------------

    #[test]
    fn row_bias_3x5_plus_5() {
        check_all_ops(&[3, 5], &[5]);
        check_all_ops(&[5], &[3, 5]);
    }

    #[test]
    fn column_times_row_3x1_and_1x4() {
        check_all_ops(&[3, 1], &[1, 4]);
    }

    #[test]
    fn middle_axis_2x3x4_and_3x1() {
        check_all_ops(&[2, 3, 4], &[3, 1]);
        check_all_ops(&[3, 1], &[2, 3, 4]);
    }

    #[test]
    fn both_stretched_4x1x5_and_3x1() {
        check_all_ops(&[4, 1, 5], &[3, 1]);
    }

    #[test]
    fn scalar_and_matrix() {
        check_all_ops(&[], &[2, 3]);
        check_all_ops(&[2, 3], &[]);
        check_all_ops(&[2, 3], &[1]);
        check_all_ops(&[1, 1], &[2, 3]);
    }

    #[test]
    fn scalars_and_unit_shapes() {
        check_all_ops(&[], &[]);
        check_all_ops(&[1], &[1, 1, 1]);
        check_all_ops(&[1, 1, 1], &[]);
    }

    #[test]
    fn equal_shapes_and_leading_ones() {
        check_all_ops(&[3, 4], &[3, 4]);
        check_all_ops(&[1, 3, 4], &[3, 4]);
    }

    #[test]
    fn channel_bias_nchw_plus_c11() {
        check_all_ops(&[2, 3, 4, 5], &[3, 1, 1]);
        check_all_ops(&[1, 3, 4, 5], &[1, 3, 1, 1]);
        check_all_ops(&[3, 1, 1], &[3, 3, 2, 2]);
    }

    #[test]
    fn block_with_interior_unit_axis_takes_general_path() {
        check_all_ops(&[2, 3, 4, 5], &[3, 1, 5]);
        check_all_ops(&[2, 3, 4], &[2, 1, 4]);
    }

    #[test]
    fn ops_across_several_chunks() {
        // Each fast path and the general path with more than two chunks and a ragged end.
        check_all_ops(&[41, 1003], &[41, 1003]);
        check_all_ops(&[41, 1003], &[1003]);
        check_all_ops(&[41, 1003], &[]);
        check_all_ops(&[9, 31, 157], &[31, 1]);
        check_all_ops(&[201, 1, 101], &[3, 101]);
        check_all_ops(&[201, 1, 3], &[1, 101, 1]);
    }

    #[test]
    fn empty_output_is_fine() {
        let mut out: Vec<f32> = vec![];
        add(&[], &[0, 3], &[1.0, 2.0, 3.0], &[3], &mut out);
        mul(&[], &[2, 0], &[1.0], &[], &mut out);
    }

    #[test]
    fn maximum_propagates_nan_from_either_side() {
        let out = run(maximum, &[f32::NAN, 1.0, 2.0], &[3], &[0.0, f32::NAN, 3.0], &[3]);
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2], 3.0);
    }

    #[test]
    fn div_by_zero_follows_ieee() {
        let out = run(div, &[1.0, -1.0, 0.0], &[3], &[0.0], &[]);
        assert_eq!(&out[..2], &[f32::INFINITY, f32::NEG_INFINITY]);
        assert!(out[2].is_nan());
    }

    #[test]
    fn forward_overwrites_stale_output() {
        let mut out = vec![f32::NAN; 4];
        sub(&[5.0, 6.0], &[2, 1], &[1.0, 2.0], &[2], &mut out);
        assert_eq!(out, vec![4.0, 3.0, 5.0, 4.0]);
    }

    // ----- shape errors ------------------------------------------------------------------

    #[test]
    #[should_panic(expected = "add: cannot broadcast shapes [2, 3] and [2]")]
    fn add_incompatible_shapes_panics() {
        add(&[0.0; 6], &[2, 3], &[0.0; 2], &[2], &mut [0.0; 6]);
    }

    #[test]
    #[should_panic(expected = "div: cannot broadcast shapes [4, 1, 5] and [3, 2]")]
    fn div_incompatible_shapes_panics() {
        div(&[0.0; 20], &[4, 1, 5], &[0.0; 6], &[3, 2], &mut [0.0; 60]);
    }

    #[test]
    #[should_panic(expected = "maximum: cannot broadcast shapes [3] and [4]")]
    fn maximum_incompatible_shapes_panics() {
        maximum(&[0.0; 3], &[3], &[0.0; 4], &[4], &mut [0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "mul: b has 4 elements but shape [5] needs 5")]
    fn operand_length_mismatch_panics() {
        mul(&[0.0; 10], &[2, 5], &[0.0; 4], &[5], &mut [0.0; 10]);
    }

    #[test]
    #[should_panic(expected = "sub: out has 5 elements but the broadcast of [2, 5] and [5] is [2, 5] (10)")]
    fn output_length_mismatch_panics() {
        sub(&[0.0; 10], &[2, 5], &[0.0; 5], &[5], &mut [0.0; 5]);
    }

    #[test]
    #[should_panic(expected = "sum_to_shape: shape [3] does not broadcast to [2, 4]")]
    fn sum_to_shape_incompatible_panics() {
        sum_to_shape(&[0.0; 8], &[2, 4], &[3], &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "sum_to_shape: acc has 2 elements but shape [4] needs 4")]
    fn sum_to_shape_acc_length_panics() {
        sum_to_shape(&[0.0; 8], &[2, 4], &[4], &mut [0.0; 2]);
    }

    #[test]
    #[should_panic(expected = "broadcast_to: cannot broadcast shape [2, 3] to [3]")]
    fn broadcast_to_cannot_shrink() {
        broadcast_to(&[0.0; 6], &[2, 3], &[3], &mut [0.0; 3]);
    }

    // ----- sum_to_shape ------------------------------------------------------------------

    /// Pairs (grad shape, target shape) small enough to be one reduction block, so the kernel
    /// must match the plain increasing-order f32 sum bit for bit.
    const SMALL_PAIRS: [(&[usize], &[usize]); 14] = [
        (&[3, 5], &[5]),
        (&[3, 5], &[1, 5]),
        (&[3, 5], &[3, 1]),
        (&[3, 5], &[]),
        (&[3, 5], &[1]),
        (&[3, 5], &[3, 5]),
        (&[4, 3, 5], &[4, 1, 5]),
        (&[4, 3, 5], &[3, 1]),
        (&[4, 3, 5], &[1, 3, 1]),
        (&[2, 3, 4, 5], &[3, 1, 1]),
        (&[2, 3, 4, 5], &[2, 1, 4, 1]),
        (&[2, 1, 3], &[1, 1, 3]),
        (&[1, 1, 1], &[1]),
        (&[], &[]),
    ];

    #[test]
    fn sum_to_shape_matches_naive_exactly_on_small_shapes() {
        for (s, (gs, ts)) in SMALL_PAIRS.into_iter().enumerate() {
            let grad = randn(gs, s as u64);
            let acc0 = randn(ts, 100 + s as u64);
            let (_, sums) = naive_sum_to_shape(&grad, gs, ts);
            let want: Vec<f32> = acc0.iter().zip(&sums).map(|(a, s)| a + s).collect();
            let mut acc = acc0.clone();
            sum_to_shape(&grad, gs, ts, &mut acc);
            assert_bits_eq(&acc, &want, &format!("{gs:?} -> {ts:?}"));
        }
    }

    #[test]
    fn sum_to_shape_matches_naive_on_large_shapes() {
        let pairs: [(&[usize], &[usize]); 6] = [
            (&[50, 1000], &[1000]),          // blocks of a bias reduction
            (&[3, 20000], &[20000]),         // target chunked, no blocks
            (&[3, 20000], &[3, 1]),          // long rows
            (&[100_003], &[]),               // full reduction, many blocks
            (&[8, 16, 28, 28], &[16, 1, 1]), // conv bias
            (&[7, 3, 5000], &[7, 1, 5000]),  // target above CHUNK, interior axis
        ];
        for (s, (gs, ts)) in pairs.into_iter().enumerate() {
            let grad = randn(gs, s as u64);
            let (want, _) = naive_sum_to_shape(&grad, gs, ts);
            let per = (grad.len() / numel(ts)) as f64;
            let mut acc = vec![0.0; numel(ts)];
            with_mode(Mode::Parallel, || sum_to_shape(&grad, gs, ts, &mut acc));
            for (j, (&g, &w)) in acc.iter().zip(&want).enumerate() {
                // f32 summation of `per` standard normals: error grows at most like per * eps.
                let tol = 1e-6 * per.max(1.0) * 4.0;
                assert!((g as f64 - w).abs() <= tol, "{gs:?} -> {ts:?} at {j}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn sum_to_shape_accumulates() {
        for (gs, ts) in [(&[3usize, 5][..], &[5usize][..]), (&[60, 600], &[600]), (&[3, 20000], &[20000])] {
            let grad = randn(gs, 5);
            let mut fresh = vec![0.0; numel(ts)];
            sum_to_shape(&grad, gs, ts, &mut fresh);
            let acc0 = randn(ts, 6);
            let mut acc = acc0.clone();
            sum_to_shape(&grad, gs, ts, &mut acc);
            let want: Vec<f32> = acc0.iter().zip(&fresh).map(|(a, s)| a + s).collect();
            assert_bits_eq(&acc, &want, &format!("{gs:?} -> {ts:?}"));
        }
    }

    #[test]
    fn sum_to_shape_of_empty_grad_leaves_acc_alone() {
        let mut acc = vec![-0.0, 2.0, 3.0];
        sum_to_shape(&[], &[0, 3], &[3], &mut acc);
        assert_eq!(acc[0].to_bits(), (-0.0f32).to_bits());
        assert_eq!(&acc[1..], &[2.0, 3.0]);
    }

    #[test]
    fn sum_to_shape_undoes_broadcast_to_up_to_replication() {
        let pairs: [(&[usize], &[usize]); 7] = [
            (&[5], &[3, 5]),
            (&[3, 1], &[3, 5]),
            (&[], &[2, 3]),
            (&[3, 1], &[4, 3, 5]),
            (&[3, 1, 1], &[2, 3, 4, 5]),
            (&[1, 7], &[40, 9, 7]),
            (&[1], &[1, 1, 1]),
        ];
        for (s, (xs, shape)) in pairs.into_iter().enumerate() {
            // Small integers keep every partial sum exact, so equality is exact.
            let x: Vec<f32> = randn(xs, s as u64).iter().map(|v| (v * 4.0).round()).collect();
            let mut big = vec![0.0; numel(shape)];
            broadcast_to(&x, xs, shape, &mut big);
            let mut back = vec![0.0; x.len()];
            sum_to_shape(&big, shape, xs, &mut back);
            let count = (numel(shape) / x.len()) as f32;
            let want: Vec<f32> = x.iter().map(|v| v * count).collect();
            assert_eq!(back, want, "{xs:?} -> {shape:?}");
        }
    }

    // ----- broadcast_to ------------------------------------------------------------------

    #[test]
    fn broadcast_to_matches_naive() {
        let pairs: [(&[usize], &[usize]); 7] = [
            (&[5], &[3, 5]),
            (&[3, 1], &[3, 5]),
            (&[], &[2, 3]),
            (&[4, 1, 5], &[4, 3, 5]),
            (&[2, 3], &[2, 3]),
            (&[1, 3, 1], &[2, 3, 4]),
            (&[7, 1], &[5, 7, 3001]),
        ];
        for (s, (xs, shape)) in pairs.into_iter().enumerate() {
            let x = randn(xs, s as u64);
            let want: Vec<f32> =
                (0..numel(shape)).map(|i| x[operand_index(&unravel(i, shape), xs)]).collect();
            for mode in [Mode::Serial, Mode::Parallel] {
                let mut out = vec![f32::NAN; numel(shape)];
                with_mode(mode, || broadcast_to(&x, xs, shape, &mut out));
                assert_bits_eq(&out, &want, &format!("{xs:?} -> {shape:?}"));
            }
        }
    }

    // ----- maximum_backward --------------------------------------------------------------

    #[test]
    fn maximum_backward_matches_naive_with_ties() {
        let (sa, sb) = ([3usize, 4], [4usize]);
        let mut a = randn(&sa, 1);
        let b = randn(&sb, 2);
        a[1] = b[1]; // a tie: half to each side
        a[6] = b[2];
        let dy = randn(&[3, 4], 3);
        let (mut da, mut db) = (vec![1.0; 12], vec![1.0; 4]);
        maximum_backward(&a, &sa, &b, &sb, &dy, &mut da, &mut db);
        let (mut wa, mut wb) = (vec![1.0f32; 12], vec![1.0f32; 4]);
        let mut share_b = [0.0f32; 12];
        for i in 0..12 {
            let (x, y) = (a[i], b[i % 4]);
            let (ga, gb) = if x == y {
                (dy[i] / 2.0, dy[i] / 2.0)
            } else if x > y {
                (dy[i], 0.0)
            } else {
                (0.0, dy[i])
            };
            wa[i] += ga;
            share_b[i] = gb;
        }
        for (j, w) in wb.iter_mut().enumerate() {
            *w += (0..3).map(|r| share_b[r * 4 + j]).fold(0.0, |s, v| s + v);
        }
        assert_bits_eq(&da, &wa, "da");
        assert_bits_eq(&db, &wb, "db");
    }

    #[test]
    fn minimum_backward_mirrors_maximum_with_ties_and_nan() {
        // min(a, b) = -max(-a, -b): the same shares, ties half to each side.
        let (sa, sb) = ([3usize, 4], [4usize]);
        let mut a = randn(&sa, 4);
        let b = randn(&sb, 5);
        a[1] = b[1];
        a[6] = b[2];
        let dy = randn(&[3, 4], 6);
        let (mut da, mut db) = (vec![1.0; 12], vec![1.0; 4]);
        minimum_backward(&a, &sa, &b, &sb, &dy, &mut da, &mut db);
        let neg = |v: &[f32]| v.iter().map(|x| -x).collect::<Vec<f32>>();
        let (mut wa, mut wb) = (vec![1.0; 12], vec![1.0; 4]);
        maximum_backward(&neg(&a), &sa, &neg(&b), &sb, &dy, &mut wa, &mut wb);
        assert_bits_eq(&da, &wa, "da");
        assert_bits_eq(&db, &wb, "db");
        let mut out = vec![0.0; 12];
        minimum(&a, &sa, &b, &sb, &mut out);
        assert_bits_eq(&out, &naive_binary(&a, &sa, &b, &sb, f32::min), "minimum");
        // NaN: the value is NaN and both sides get all of dy, as for maximum.
        let (mut da, mut db) = (vec![0.0; 1], vec![0.0; 1]);
        minimum_backward(&[f32::NAN], &[1], &[1.0], &[1], &[2.0], &mut da, &mut db);
        assert_eq!((da[0], db[0]), (2.0, 2.0));
        minimum(&[f32::NAN], &[1], &[1.0], &[1], &mut da);
        assert!(da[0].is_nan());
    }

    #[test]
    fn maximum_backward_matches_finite_differences() {
        let (sa, sb) = ([2usize, 3], [2usize, 1]);
        let a = [0.3f32, -1.2, 2.0, 0.9, -0.4, 1.7];
        let b = [0.5f32, -0.1];
        let dy = [1.0f32, -2.0, 0.5, 3.0, 1.5, -1.0];
        let loss = |a: &[f32], b: &[f32]| -> f64 {
            run(maximum, a, &sa, b, &sb).iter().zip(&dy).map(|(&y, &g)| y as f64 * g as f64).sum()
        };
        let (mut da, mut db) = (vec![0.0; 6], vec![0.0; 2]);
        maximum_backward(&a, &sa, &b, &sb, &dy, &mut da, &mut db);
        let h = 1e-2f32;
        for i in 0..6 {
            let (mut p, mut m) = (a, a);
            p[i] += h;
            m[i] -= h;
            let fd = (loss(&p, &b) - loss(&m, &b)) / (p[i] as f64 - m[i] as f64);
            assert!((da[i] as f64 - fd).abs() < 1e-4, "da[{i}]: {} vs {fd}", da[i]);
        }
        for j in 0..2 {
            let (mut p, mut m) = (b, b);
            p[j] += h;
            m[j] -= h;
            let fd = (loss(&a, &p) - loss(&a, &m)) / (p[j] as f64 - m[j] as f64);
            assert!((db[j] as f64 - fd).abs() < 1e-4, "db[{j}]: {} vs {fd}", db[j]);
        }
    }

    #[test]
    #[should_panic(expected = "maximum_backward: dy has 3 elements, output shape [2, 2] needs 4")]
    fn maximum_backward_dy_length_panics() {
        maximum_backward(&[0.0; 2], &[2, 1], &[0.0; 2], &[2], &[0.0; 3], &mut [0.0; 2], &mut [0.0; 2]);
    }

    // ----- parallel == serial ------------------------------------------------------------

    #[test]
    fn large_broadcasts_are_bit_identical_serial_and_parallel() {
        let cases: [(&[usize], &[usize]); 5] = [
            (&[3 * CHUNK + 17], &[3 * CHUNK + 17]),
            (&[3 * CHUNK + 17], &[]),
            (&[17, 3001], &[3001]),
            (&[5, 7, 30, 61], &[7, 1, 1]),
            (&[301, 1, 211], &[1, 3, 211]),
        ];
        for (sa, sb) in cases {
            let a = randn(sa, 11);
            let b = away_from_zero(sb, 12);
            for (name, op, _) in OPS {
                assert_par_eq_serial_bits(&format!("{name} {sa:?} {sb:?}"), || run(op, &a, sa, &b, sb));
            }
        }
    }

    #[test]
    fn sum_to_shape_and_broadcast_to_are_bit_identical_serial_and_parallel() {
        let pairs: [(&[usize], &[usize]); 5] = [
            (&[300, 1000], &[1000]),
            (&[4, 3 * CHUNK + 17], &[3 * CHUNK + 17]),
            (&[3 * CHUNK + 17], &[]),
            (&[16, 32, 14, 14], &[32, 1, 1]),
            (&[60, 7, 300], &[60, 1, 300]),
        ];
        for (gs, ts) in pairs {
            let grad = randn(gs, 21);
            let acc0 = randn(ts, 22);
            let reduce = || {
                let mut acc = acc0.clone();
                sum_to_shape(&grad, gs, ts, &mut acc);
                acc
            };
            assert_par_eq_serial_bits(&format!("sum_to_shape {gs:?} -> {ts:?}"), reduce);

            let expand = || {
                let mut out = vec![0.0; grad.len()];
                broadcast_to(&acc0, ts, gs, &mut out);
                out
            };
            assert_par_eq_serial_bits(&format!("broadcast_to {ts:?} -> {gs:?}"), expand);
        }
    }
}
