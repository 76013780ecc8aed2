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
#[path = "binary_tests.rs"]
mod tests;
