//! 2-D pooling with PyTorch's semantics, forward and backward, in three sections: max pooling
//! (the notes below), average pooling, and adaptive average pooling.
//!
//! * Output size floor((H + 2p - k) / s) + 1 (no `ceil_mode`).
//! * Padding counts as -inf, never 0: an all-negative window returns its true maximum.
//!   PyTorch requires `padding <= kernel / 2`, which guarantees that every window holds at
//!   least one real input; we panic otherwise.
//! * The recorded argmax is the FIRST maximal input in row-major window order, and a NaN
//!   wins over any number (PyTorch's `val > max || isnan(val)` rule), so NaNs propagate.
//! * Backward sends each output gradient to its argmax; overlapping windows add up.
//!
//! Both directions are parallel over the `N*C` planes, which are independent, so the
//! parallel path computes exactly what the serial one does.

use super::parallel::{for_each_block_mut, should_parallelize};
use super::vecmath::widest_simd;
use rayon::prelude::*;

/// Pooled output length along one axis: floor((size + 2*padding - kernel) / stride) + 1.
pub fn pool_out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    assert!(kernel > 0 && stride > 0, "pool_out_size: kernel {kernel} and stride {stride} must be positive");
    assert!(
        size + 2 * padding >= kernel,
        "pool_out_size: kernel {kernel} is larger than the padded size {} ({size} + 2*{padding})",
        size + 2 * padding
    );
    (size + 2 * padding - kernel) / stride + 1
}

/// Clamps the window starting at `out_pos * stride - padding` to the real inputs `0..size`.
#[inline]
fn window(out_pos: usize, size: usize, kernel: usize, stride: usize, padding: usize) -> (usize, usize) {
    let start = out_pos * stride;
    let lo = start.saturating_sub(padding);
    let hi = (start + kernel - padding).min(size);
    (lo, hi)
}

// ---------------------------------------------------------------------------------------------
// Max pooling: forward (with a fast path for small strides) and backward
// ---------------------------------------------------------------------------------------------

/// Max pooling `x[N, C, H, W] -> out[N, C, OH, OW]` (overwritten), recording in `argmax`
/// (same shape as `out`) the flat index `h*W + w` of each maximum within its input plane.
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_forward(
    x: &[f32],
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out: &mut [f32],
    argmax: &mut [u32],
) {
    assert!(
        padding <= kernel / 2,
        "max_pool2d_forward: padding {padding} must be at most half the kernel size {kernel} (as in PyTorch)"
    );
    assert!(
        height > 0 && width > 0,
        "max_pool2d_forward: input planes must be non-empty, got {height}x{width}"
    );
    let oh = pool_out_size(height, kernel, stride, padding);
    let ow = pool_out_size(width, kernel, stride, padding);
    let planes = batch * channels;
    let (plane_in, plane_out) = (height * width, oh * ow);
    assert_eq!(
        x.len(),
        planes * plane_in,
        "max_pool2d_forward: x has {} elements, expected [{batch}, {channels}, {height}, {width}]",
        x.len()
    );
    assert_eq!(
        out.len(),
        planes * plane_out,
        "max_pool2d_forward: out has {} elements, expected [{batch}, {channels}, {oh}, {ow}]",
        out.len()
    );
    assert_eq!(
        argmax.len(),
        out.len(),
        "max_pool2d_forward: argmax has {} elements, out has {}",
        argmax.len(),
        out.len()
    );
    assert!(
        plane_in <= u32::MAX as usize,
        "max_pool2d_forward: a {height}x{width} plane does not fit u32 argmax indices"
    );
    if planes == 0 {
        return;
    }

    let geometry = PlaneGeometry { height, width, kernel, stride, padding, out_h: oh, out_w: ow };
    let pool_plane = |scratch: &mut Scratch, p: usize, o: &mut [f32], am: &mut [u32]| {
        max_pool_plane(&x[p * plane_in..(p + 1) * plane_in], &geometry, scratch, o, am)
    };
    if should_parallelize(out.len() * kernel * kernel) {
        out.par_chunks_mut(plane_out)
            .zip(argmax.par_chunks_mut(plane_out))
            .enumerate()
            .for_each_init(|| Scratch::new(&geometry), |scratch, (p, (o, am))| pool_plane(scratch, p, o, am));
    } else {
        let mut scratch = Scratch::new(&geometry);
        for (p, (o, am)) in out.chunks_mut(plane_out).zip(argmax.chunks_mut(plane_out)).enumerate() {
            pool_plane(&mut scratch, p, o, am);
        }
    }
}

/// The shape of one input plane and its pooled output.
pub(crate) struct PlaneGeometry {
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out_h: usize,
    out_w: usize,
}

impl PlaneGeometry {
    /// Window cells past the first that fall in the next phase row or column: `(k-1)/s`.
    fn reach(&self) -> usize {
        (self.kernel - 1) / self.stride
    }

    /// Row length of the phase planes and of the working output: `OW + reach`.
    fn row_len(&self) -> usize {
        self.out_w + self.reach()
    }

    /// Rows of a phase plane: `OH + reach`.
    fn phase_rows(&self) -> usize {
        self.out_h + self.reach()
    }

    /// Floats of one phase plane: its rows, plus `reach` cells that the last row's window
    /// columns run past (they only feed discarded output slots).
    fn phase_len(&self) -> usize {
        self.phase_rows() * self.row_len() + self.reach()
    }
}

/// Per-thread working memory of [`max_pool_plane`], made for one geometry.
///
/// The padded plane (padding as -inf) is split into `stride x stride` phase planes by row
/// and column position modulo the stride: phase `(ry, rx)` holds padded cells
/// `(j*s + ry, i*s + rx)` at `[j][i]`, with rows of `OW + reach` cells. Output `(oy, ox)`
/// lives at slot `oy * row_len + ox` of the working output, and window cell `(ky, kx)` of
/// every output at once is then one contiguous run of phase `(ky % s, kx % s)` starting at
/// `(ky / s) * row_len + kx / s`: a whole pooling layer is `k * k` long vector passes per
/// plane, with no per-row or per-window loop overhead (planes of CNNs are small: 16x16
/// outputs for CIFAR-10's first pooling).
pub(crate) struct Scratch {
    /// The `stride^2` phase planes; cells over padding hold -inf from creation on.
    phases: Vec<f32>,
    /// `oy*s*W + ox*s` per slot: the argmax index of window cell (0, 0) without padding.
    slot_offsets: Vec<u32>,
    /// Per slot, the flat index of the first real cell of its window (the scalar rule's
    /// starting argmax).
    first_real: Vec<u32>,
    best: Vec<f32>,
    best_index: Vec<u32>,
}

impl Scratch {
    fn new(g: &PlaneGeometry) -> Scratch {
        let (l, slots) = (g.row_len(), g.out_h * g.row_len());
        let slot = |o: usize| (o / l, o % l);
        Scratch {
            phases: vec![f32::NEG_INFINITY; g.stride * g.stride * g.phase_len()],
            slot_offsets: (0..slots)
                .map(|o| {
                    let (oy, ox) = slot(o);
                    (oy * g.stride * g.width + ox * g.stride) as u32
                })
                .collect(),
            first_real: (0..slots)
                .map(|o| {
                    let (oy, ox) = slot(o);
                    let y_lo = window(oy, g.height, g.kernel, g.stride, g.padding).0;
                    let x_lo = (ox * g.stride).saturating_sub(g.padding);
                    (y_lo * g.width + x_lo) as u32
                })
                .collect(),
            best: vec![0.0; slots],
            best_index: vec![0; slots],
        }
    }
}

/// `dst[i] = src[i * S]`, with the stride known at compile time and whole `S`-cell chunks,
/// so that the loads vectorise (as shuffles) instead of running one bounds-checked cell at a
/// time.
#[inline(always)]
fn gather_every<const S: usize>(dst: &mut [f32], src: &[f32]) {
    let Some((last, head)) = dst.split_last_mut() else {
        return;
    };
    let n = head.len();
    for (d, chunk) in head.iter_mut().zip(src[..n * S].chunks_exact(S)) {
        *d = chunk[0];
    }
    *last = src[n * S];
}

widest_simd! {
    /// Max-pools one `[H, W]` plane `xp` into `out` / `argmax` (`[OH, OW]` each).
    ///
    /// Visits the window cells in row-major order, each as one vector pass over all output
    /// slots: `take = v > best || v is NaN`, then a blend. That is the scalar rule applied
    /// lane by lane in the scalar order, so the values and the first-maximum argmax are
    /// exactly those of the plain loop; padded cells hold -inf and never win.
    fn max_pool_plane(xp: &[f32], g: &PlaneGeometry, scratch: &mut Scratch, out: &mut [f32], argmax: &mut [u32]) {
        let (w, k, s, pad) = (g.width, g.kernel, g.stride, g.padding);
        let (l, phase_len) = (g.row_len(), g.phase_len());
        let Scratch { phases, slot_offsets, first_real, best, best_index } = scratch;
        // Fill the phase planes' cells over real inputs (the rest stay -inf).
        for (phase_index, phase) in phases.chunks_exact_mut(phase_len).enumerate() {
            let (ry, rx) = (phase_index / s, phase_index % s);
            // Phase column i is input column i*s + rx - pad; these i are inside the row.
            let first = pad.saturating_sub(rx).div_ceil(s);
            let end = (w + pad).saturating_sub(rx).div_ceil(s).min(l);
            if first >= end {
                continue;
            }
            for j in 0..g.phase_rows() {
                // Phase row j is input row j*s + ry - pad.
                let Some(iy) = (j * s + ry).checked_sub(pad).filter(|&iy| iy < g.height) else {
                    continue;
                };
                let src = &xp[iy * w + first * s + rx - pad..(iy + 1) * w];
                let dst = &mut phase[j * l + first..j * l + end];
                match s {
                    1 => dst.copy_from_slice(&src[..dst.len()]),
                    2 => gather_every::<2>(dst, src),
                    _ => {
                        for (d, &v) in dst.iter_mut().zip(src.iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
            }
        }
        best.fill(f32::NEG_INFINITY);
        best_index.copy_from_slice(first_real);
        for ky in 0..k {
            for kx in 0..k {
                let phase = &phases[((ky % s) * s + kx % s) * phase_len..][..phase_len];
                let start = (ky / s) * l + kx / s;
                let values = &phase[start..start + best.len()];
                // Index of slot (oy, ox): (oy*s + ky - pad)*W + ox*s + kx - pad, wrapping for
                // padded cells, whose index is never taken (-inf never wins).
                let base = ((ky * w + kx) as u32).wrapping_sub((pad * w + pad) as u32);
                for (((b, bi), &v), &off) in
                    best.iter_mut().zip(best_index.iter_mut()).zip(values).zip(slot_offsets.iter())
                {
                    // The scalar rule as all-ones/all-zeros masks, with `|` rather than `||`
                    // and bit blends rather than `if`: nothing for the compiler to turn into
                    // a branch, so the slots vectorise.
                    let take = (v > *b) | v.is_nan();
                    let mask = 0u32.wrapping_sub(take as u32);
                    *b = f32::from_bits((v.to_bits() & mask) | (b.to_bits() & !mask));
                    *bi = (base.wrapping_add(off) & mask) | (*bi & !mask);
                }
            }
        }
        let ow = g.out_w;
        for (oy, (o, am)) in out.chunks_exact_mut(ow).zip(argmax.chunks_exact_mut(ow)).enumerate() {
            o.copy_from_slice(&best[oy * l..oy * l + ow]);
            am.copy_from_slice(&best_index[oy * l..oy * l + ow]);
        }
    }
}

/// Max pooling backward: ADDS each `dy[N, C, OH, OW]` entry into `dx_acc[N, C, H, W]` at the
/// position its `argmax` recorded (overlapping windows accumulate).
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_backward(
    dy: &[f32],
    argmax: &[u32],
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_h: usize,
    out_w: usize,
    dx_acc: &mut [f32],
) {
    max_pool2d_backward_into(dy, argmax, batch, channels, height, width, out_h, out_w, dx_acc, true);
}

/// [`max_pool2d_backward`], or with `accumulate` false the gradient written into `dx`
/// whatever it held: each plane is zero-filled by the task that then scatters into it (in
/// parallel, while the plane is in cache) instead of the whole buffer beforehand on one
/// thread (33 MB for the first pooling of the CIFAR-10 CNN). The same bits as zero-filling
/// `dx` and accumulating.
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_backward_into(
    dy: &[f32],
    argmax: &[u32],
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_h: usize,
    out_w: usize,
    dx_acc: &mut [f32],
    accumulate: bool,
) {
    let planes = batch * channels;
    let (plane_in, plane_out) = (height * width, out_h * out_w);
    assert_eq!(
        dy.len(),
        planes * plane_out,
        "max_pool2d_backward: dy has {} elements, expected [{batch}, {channels}, {out_h}, {out_w}]",
        dy.len()
    );
    assert_eq!(
        argmax.len(),
        dy.len(),
        "max_pool2d_backward: argmax has {} elements, dy has {}",
        argmax.len(),
        dy.len()
    );
    assert_eq!(
        dx_acc.len(),
        planes * plane_in,
        "max_pool2d_backward: dx_acc has {} elements, expected [{batch}, {channels}, {height}, {width}]",
        dx_acc.len()
    );
    // Each plane's gradient is written only by that plane's outputs, in output order.
    for_each_block_mut(dx_acc, plane_in, dy.len() + dx_acc.len(), |p, dxp| {
        if !accumulate {
            dxp.fill(0.0);
        }
        let range = p * plane_out..(p + 1) * plane_out;
        for (&g, &i) in dy[range.clone()].iter().zip(&argmax[range]) {
            let i = i as usize;
            assert!(i < plane_in, "max_pool2d_backward: argmax {i} is outside the {height}x{width} plane");
            dxp[i] += g;
        }
    });
}

/// Checks the lengths of an average-pooling kernel's input and output planes.
fn check_planes(
    op: &str,
    x: (&str, usize),
    out: (&str, usize),
    planes: usize,
    hw: [usize; 2],
    ohw: [usize; 2],
) {
    assert_eq!(
        x.1,
        planes * hw[0] * hw[1],
        "{op}: {} has {} elements, expected {planes} planes of {}x{}",
        x.0,
        x.1,
        hw[0],
        hw[1]
    );
    assert_eq!(
        out.1,
        planes * ohw[0] * ohw[1],
        "{op}: {} has {} elements, expected {planes} planes of {}x{}",
        out.0,
        out.1,
        ohw[0],
        ohw[1]
    );
}

// ---------------------------------------------------------------------------------------------
// Average pooling
// ---------------------------------------------------------------------------------------------

/// Average pooling `x[P, H, W] -> out[P, OH, OW]` (overwritten) over the `P = N*C` planes,
/// with PyTorch's `F.avg_pool2d` defaults (`count_include_pad=True`, no `ceil_mode`): each
/// output is the sum of the real inputs of its `kernel x kernel` window divided by
/// `kernel * kernel`, the zero padding counted in the divisor. Output size as
/// [`pool_out_size`].
///
/// # Panics
/// If `padding > kernel / 2` (PyTorch refuses it too) or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_forward(
    x: &[f32],
    planes: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out: &mut [f32],
) {
    assert!(
        padding <= kernel / 2,
        "avg_pool2d_forward: padding {padding} must be at most half the kernel size {kernel} (as in PyTorch)"
    );
    let oh = pool_out_size(height, kernel, stride, padding);
    let ow = pool_out_size(width, kernel, stride, padding);
    check_planes("avg_pool2d_forward", ("x", x.len()), ("out", out.len()), planes, [height, width], [oh, ow]);
    let (plane_in, plane_out) = (height * width, oh * ow);
    // Without ceil_mode every window lies inside the padded plane: the divisor is k*k.
    let scale = 1.0 / (kernel * kernel) as f32;
    for_each_block_mut(out, plane_out, out.len() * kernel * kernel, |p, o| {
        let xp = &x[p * plane_in..(p + 1) * plane_in];
        for oy in 0..oh {
            let (y_lo, y_hi) = window(oy, height, kernel, stride, padding);
            for ox in 0..ow {
                let (x_lo, x_hi) = window(ox, width, kernel, stride, padding);
                let mut sum = 0.0f32;
                for y in y_lo..y_hi {
                    sum += xp[y * width + x_lo..y * width + x_hi].iter().sum::<f32>();
                }
                o[oy * ow + ox] = sum * scale;
            }
        }
    });
}

/// Average pooling backward: ADDS `dy / (kernel * kernel)` of each output into every real
/// input of its window in `dx_acc[P, H, W]` (overlapping windows accumulate).
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_backward(
    dy: &[f32],
    planes: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dx_acc: &mut [f32],
) {
    let oh = pool_out_size(height, kernel, stride, padding);
    let ow = pool_out_size(width, kernel, stride, padding);
    check_planes(
        "avg_pool2d_backward",
        ("dx_acc", dx_acc.len()),
        ("dy", dy.len()),
        planes,
        [height, width],
        [oh, ow],
    );
    let (plane_in, plane_out) = (height * width, oh * ow);
    let scale = 1.0 / (kernel * kernel) as f32;
    for_each_block_mut(dx_acc, plane_in, dy.len() * kernel * kernel, |p, dxp| {
        let dyp = &dy[p * plane_out..(p + 1) * plane_out];
        for oy in 0..oh {
            let (y_lo, y_hi) = window(oy, height, kernel, stride, padding);
            for ox in 0..ow {
                let (x_lo, x_hi) = window(ox, width, kernel, stride, padding);
                let g = dyp[oy * ow + ox] * scale;
                for y in y_lo..y_hi {
                    dxp[y * width + x_lo..y * width + x_hi].iter_mut().for_each(|d| *d += g);
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Adaptive average pooling
// ---------------------------------------------------------------------------------------------

/// The input range `[start, end)` of adaptive pooling's output `i` of `out` along an axis of
/// `size`: `floor(i * size / out)` to `ceil((i + 1) * size / out)`, as PyTorch computes it.
pub fn adaptive_window(i: usize, size: usize, out: usize) -> (usize, usize) {
    (i * size / out, ((i + 1) * size).div_ceil(out))
}

/// Adaptive average pooling `x[P, H, W] -> out[P, OH, OW]` (overwritten), PyTorch's
/// `F.adaptive_avg_pool2d`: output `(i, j)` is the mean of the input rows and columns of
/// [`adaptive_window`] (windows may overlap when the size is not a multiple of the output's).
///
/// # Panics
/// If an output size is zero while the input's is not, or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avg_pool2d_forward(
    x: &[f32],
    planes: usize,
    height: usize,
    width: usize,
    out_h: usize,
    out_w: usize,
    out: &mut [f32],
) {
    assert!(
        out_h > 0 && out_w > 0,
        "adaptive_avg_pool2d_forward: output size {out_h}x{out_w} must be positive"
    );
    check_planes(
        "adaptive_avg_pool2d_forward",
        ("x", x.len()),
        ("out", out.len()),
        planes,
        [height, width],
        [out_h, out_w],
    );
    let plane_in = height * width;
    for_each_block_mut(out, out_h * out_w, x.len(), |p, o| {
        let xp = &x[p * plane_in..(p + 1) * plane_in];
        for oy in 0..out_h {
            let (y_lo, y_hi) = adaptive_window(oy, height, out_h);
            for ox in 0..out_w {
                let (x_lo, x_hi) = adaptive_window(ox, width, out_w);
                let mut sum = 0.0f32;
                for y in y_lo..y_hi {
                    sum += xp[y * width + x_lo..y * width + x_hi].iter().sum::<f32>();
                }
                o[oy * out_w + ox] = sum / ((y_hi - y_lo) * (x_hi - x_lo)) as f32;
            }
        }
    });
}

/// Adaptive average pooling backward: ADDS each output's `dy / window size` into every input
/// of its window in `dx_acc[P, H, W]`.
pub fn adaptive_avg_pool2d_backward(
    dy: &[f32],
    planes: usize,
    height: usize,
    width: usize,
    out_h: usize,
    out_w: usize,
    dx_acc: &mut [f32],
) {
    check_planes(
        "adaptive_avg_pool2d_backward",
        ("dx_acc", dx_acc.len()),
        ("dy", dy.len()),
        planes,
        [height, width],
        [out_h, out_w],
    );
    let plane_out = out_h * out_w;
    for_each_block_mut(dx_acc, height * width, dx_acc.len(), |p, dxp| {
        let dyp = &dy[p * plane_out..(p + 1) * plane_out];
        for oy in 0..out_h {
            let (y_lo, y_hi) = adaptive_window(oy, height, out_h);
            for ox in 0..out_w {
                let (x_lo, x_hi) = adaptive_window(ox, width, out_w);
                let g = dyp[oy * out_w + ox] / ((y_hi - y_lo) * (x_hi - x_lo)) as f32;
                for y in y_lo..y_hi {
                    dxp[y * width + x_lo..y * width + x_hi].iter_mut().for_each(|d| *d += g);
                }
            }
        }
    });
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
