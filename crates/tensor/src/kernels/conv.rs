//! 2-D convolution by im2col + GEMM, forward and backward.
//!
//! For one image `x_i` of shape `[C, H, W]`, [`im2col`] lays every receptive field out as a
//! column of a `[C*KH*KW, OH*OW]` matrix, so the convolution is one matrix product:
//! `y_i[OC, OH*OW] = W[OC, C*KH*KW] @ col`. The backward pass is two more products,
//! `dW += dy_i @ col^T` and `dcol = W^T @ dy_i`, and [`col2im`] (the adjoint of
//! [`im2col`]) folds `dcol` back into the image gradient.
//!
//! # Parallelism and determinism
//!
//! [`conv2d_forward`] and [`conv2d_backward`] split the batch into fixed groups of
//! [`CONV_BATCH_GROUP`] images (the last group may be shorter), independent of the number of
//! threads. Forward outputs and `dx` are per image, so any schedule gives the same bits. The
//! weight and bias gradients are sums over the batch: each group sums its own images into a
//! private partial (in image order), and the partials are added into the accumulators in
//! group order. The serial path runs exactly the same arithmetic, so parallel == serial bit
//! for bit.
//!
//! Inside a group the GEMMs go to [`matmul_in`], which may split them further over rayon (fixed
//! row blocks, so still deterministic; nested rayon work is just stolen by idle threads).
//! matrixmultiply's own threads (`MATMUL_NUM_THREADS`) do not change results either, but
//! they oversubscribe the cores when the batch is already spread over rayon: for conv1 of
//! the CIFAR-10 CNN (batch 128, 3x32x32 -> 64, 5x5 pad 2) forward+backward took 19-20 ms
//! with `MATMUL_NUM_THREADS=1` and 2 rayon threads, 29-37 ms with 2 + 2, 38-45 ms on one
//! thread (2-core VM; see `examples/bench_kernels.rs` and the
//! [`matmul` module](mod@crate::kernels::matmul)).

use super::conv_bf16;
use super::conv_f32;
use super::conv_shift::Shifts;
use super::gemm::Precision;
use super::matmul::matmul_in;
use super::parallel::should_parallelize;
use crate::pool;
use rayon::prelude::*;

/// Images per batch group in [`conv2d_forward`]/[`conv2d_backward`]: the unit of parallel
/// work and of partial weight-gradient sums (fixed, so results do not depend on threads).
pub const CONV_BATCH_GROUP: usize = 4;

/// Shape of one 2-D convolution over a `[channels, height, width]` image (PyTorch's
/// `Conv2d` geometry without dilation or groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Input channels `C`.
    pub channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Kernel height `KH`.
    pub kernel_h: usize,
    /// Kernel width `KW`.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero padding added above and below.
    pub pad_h: usize,
    /// Zero padding added left and right.
    pub pad_w: usize,
}

/// floor((size + 2*pad - kernel) / stride) + 1, panicking (naming `what`) on a kernel that
/// does not fit or a zero stride/kernel.
fn conv_out_size(what: &str, size: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    assert!(
        kernel > 0 && stride > 0,
        "Conv2dGeometry: {what} kernel {kernel} and stride {stride} must be positive"
    );
    assert!(
        size + 2 * pad >= kernel,
        "Conv2dGeometry: {what} kernel {kernel} is larger than the padded {what} {} ({size} + 2*{pad})",
        size + 2 * pad
    );
    (size + 2 * pad - kernel) / stride + 1
}

impl Conv2dGeometry {
    /// Geometry with a square `kernel`, equal `stride` and equal `padding` in both directions.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        let g = Conv2dGeometry {
            channels,
            height,
            width,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            pad_h: padding,
            pad_w: padding,
        };
        // Validate now rather than at first use.
        g.out_h();
        g.out_w();
        g
    }

    /// Output height: floor((H + 2*pad_h - KH) / stride_h) + 1 (PyTorch's formula).
    pub fn out_h(&self) -> usize {
        conv_out_size("height", self.height, self.kernel_h, self.stride_h, self.pad_h)
    }

    /// Output width: floor((W + 2*pad_w - KW) / stride_w) + 1 (PyTorch's formula).
    pub fn out_w(&self) -> usize {
        conv_out_size("width", self.width, self.kernel_w, self.stride_w, self.pad_w)
    }

    /// Rows of the im2col matrix: `C * KH * KW`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }

    /// Columns of the im2col matrix: `OH * OW`.
    pub fn col_cols(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Elements of one input image: `C * H * W`.
    pub(super) fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// For kernel offset `kj` along an axis, the range of output positions `x` whose input
/// position `x*stride + kj - pad` falls inside `0..size` (the others read padding).
#[inline]
pub(super) fn valid_range(
    out: usize,
    size: usize,
    k_off: usize,
    stride: usize,
    pad: usize,
) -> (usize, usize) {
    let lo = if pad > k_off { (pad - k_off).div_ceil(stride) } else { 0 }.min(out);
    let hi = if size + pad > k_off { ((size + pad - k_off - 1) / stride + 1).min(out) } else { 0 };
    (lo, hi.max(lo))
}

/// Length checks shared by im2col and col2im.
fn check_im2col(name: &str, image_len: usize, col_len: usize, g: &Conv2dGeometry) {
    assert_eq!(
        image_len,
        g.image_len(),
        "{name}: image has {image_len} elements, expected [{}, {}, {}]",
        g.channels,
        g.height,
        g.width
    );
    assert_eq!(
        col_len,
        g.col_rows() * g.col_cols(),
        "{name}: col has {col_len} elements, expected [{}, {}] for {g:?}",
        g.col_rows(),
        g.col_cols()
    );
}

/// Unfolds an image `[C, H, W]` into `col` `[C*KH*KW, OH*OW]` (overwritten); cells that
/// fall in the padding are 0.
pub fn im2col(image: &[f32], g: &Conv2dGeometry, col: &mut [f32]) {
    im2col_with(image, g, Shifts::new(g, 16).as_ref(), col);
}

/// [`im2col`] through `shifts` (16 lanes, made for `g`) where there are some: same bits.
pub(super) fn im2col_with(image: &[f32], g: &Conv2dGeometry, shifts: Option<&Shifts>, col: &mut [f32]) {
    check_im2col("im2col", image.len(), col.len(), g);
    for (row, col_row) in col.chunks_exact_mut(g.col_cols()).enumerate() {
        im2col_row_with(image, g, shifts, row, col_row);
    }
}

/// Row `row` of [`im2col`] through `shifts` (16 lanes, made for `g`) where there are some,
/// else [`im2col_row`]: the same bits.
pub(super) fn im2col_row_with(
    image: &[f32],
    g: &Conv2dGeometry,
    shifts: Option<&Shifts>,
    row: usize,
    col_row: &mut [f32],
) {
    match shifts {
        Some(s) => s.im2col_row_f32(image, row, col_row),
        None => im2col_row(image, g, (g.out_h(), g.out_w()), row, col_row),
    }
}

/// Row `row` of [`im2col`] (`OH*OW` values, overwritten): the image values that kernel
/// offset `row = (c * KH + ki) * KW + kj` meets at each output position. `(oh, ow)` is
/// `(g.out_h(), g.out_w())`, computed once by the caller (they divide and check); the
/// caller has checked the lengths. Generic over the element (f32, or the bits of a bf16,
/// whose `T::default()` is +0.0 as well), as im2col only copies.
#[inline]
pub(super) fn im2col_row<T: Copy + Default>(
    image: &[T],
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    row: usize,
    col_row: &mut [T],
) {
    let (h, w) = (g.height, g.width);
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let (sh, sw) = (g.stride_h, g.stride_w);
    // Row index = (c * KH + ki) * KW + kj, matching the weight layout [OC, C, KH, KW].
    let c = row / (kh * kw);
    let ki = (row / kw) % kh;
    let kj = row % kw;
    let plane = &image[c * h * w..(c + 1) * h * w];
    let (x_lo, x_hi) = valid_range(ow, w, kj, sw, g.pad_w);
    let (y_lo, y_hi) = valid_range(oh, h, ki, sh, g.pad_h);
    if sh == 1 && sw == 1 && ow == w && y_lo < y_hi && x_lo < x_hi {
        // "Same" convolution at stride 1: this col row is the image plane shifted by
        // (ki - pad_h, kj - pad_w), so one long copy fills it, and only the cells that
        // wrapped around a row edge (or fall above/below the image) are zeroed after.
        // Far fewer, longer copies than one per output row.
        let first = y_lo * ow + x_lo;
        let last = (y_hi - 1) * ow + x_hi;
        let src_first = (y_lo + ki - g.pad_h) * w + x_lo + kj - g.pad_w;
        col_row[first..last].copy_from_slice(&plane[src_first..src_first + (last - first)]);
        col_row[..first].fill(T::default());
        col_row[last..].fill(T::default());
        if x_lo > 0 || x_hi < ow {
            for y in y_lo..y_hi - 1 {
                col_row[y * ow + x_hi..(y + 1) * ow + x_lo].fill(T::default());
            }
        }
        return;
    }
    for (y, dst) in col_row.chunks_exact_mut(ow).enumerate() {
        if y < y_lo || y >= y_hi {
            dst.fill(T::default());
            continue;
        }
        let iy = y * sh + ki - g.pad_h;
        let src = &plane[iy * w..(iy + 1) * w];
        dst[..x_lo].fill(T::default());
        dst[x_hi..].fill(T::default());
        if sw == 1 {
            // Stride 1: the valid stretch is a contiguous run of the image row.
            let start = x_lo + kj - g.pad_w;
            dst[x_lo..x_hi].copy_from_slice(&src[start..start + (x_hi - x_lo)]);
        } else {
            for (x, d) in dst[x_lo..x_hi].iter_mut().enumerate() {
                *d = src[(x + x_lo) * sw + kj - g.pad_w];
            }
        }
    }
}

/// Folds `col` `[C*KH*KW, OH*OW]` back into an image `[C, H, W]`, ADDING into `image_acc`
/// (the adjoint of [`im2col`]; entries that came from padding are dropped).
pub fn col2im(col: &[f32], g: &Conv2dGeometry, image_acc: &mut [f32]) {
    check_im2col("col2im", image_acc.len(), col.len(), g);
    col2im_rows(col, g, Shifts::new(g, 16).as_ref(), 0, image_acc);
}

/// [`col2im`] of the rows `first..` of `col` only, given as `col` (a whole number of rows,
/// `first` + their count at most `C*KH*KW`), through `shifts` (16 lanes, made for `g`) where
/// there are some (same bits); the caller has checked `image_acc`'s length.
pub(super) fn col2im_rows(
    col: &[f32],
    g: &Conv2dGeometry,
    shifts: Option<&Shifts>,
    first: usize,
    image_acc: &mut [f32],
) {
    match shifts {
        Some(s) => {
            let ohw = g.col_cols().max(1);
            assert!(
                col.len().is_multiple_of(ohw),
                "col2im: {} values are not whole rows of {ohw}",
                col.len()
            );
            for (row, col_row) in col.chunks_exact(ohw).enumerate() {
                s.col2im_row(col_row, first + row, image_acc);
            }
        }
        None => col2im_rows_scalar(col, g, first, image_acc),
    }
}

/// [`col2im_rows`] one output-row segment at a time: any geometry, any CPU.
pub(super) fn col2im_rows_scalar(col: &[f32], g: &Conv2dGeometry, first: usize, image_acc: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let (h, w) = (g.height, g.width);
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let (sh, sw) = (g.stride_h, g.stride_w);
    assert!(
        col.len().is_multiple_of((oh * ow).max(1)) && first + col.len() / (oh * ow).max(1) <= g.col_rows(),
        "col2im: {} values from row {first} are not whole rows of [{}, {}]",
        col.len(),
        g.col_rows(),
        oh * ow
    );
    for (row, col_row) in col.chunks_exact(oh * ow).enumerate() {
        let row = first + row;
        let c = row / (kh * kw);
        let ki = (row / kw) % kh;
        let kj = row % kw;
        let plane = &mut image_acc[c * h * w..(c + 1) * h * w];
        let (x_lo, x_hi) = valid_range(ow, w, kj, sw, g.pad_w);
        let (y_lo, y_hi) = valid_range(oh, h, ki, sh, g.pad_h);
        for y in y_lo..y_hi {
            let iy = y * sh + ki - g.pad_h;
            let dst = &mut plane[iy * w..(iy + 1) * w];
            let src = &col_row[y * ow + x_lo..y * ow + x_hi];
            if sw == 1 {
                let start = x_lo + kj - g.pad_w;
                for (d, s) in dst[start..start + src.len()].iter_mut().zip(src) {
                    *d += s;
                }
            } else {
                for (x, s) in src.iter().enumerate() {
                    dst[(x + x_lo) * sw + kj - g.pad_w] += s;
                }
            }
        }
    }
}

/// Rows of `sums` summed side by side in [`add_row_sums`]: independent chains of additions
/// that hide the latency of each (one chain is 4 cycles per element).
const ROW_SUM_LANES: usize = 16;

/// `acc[r] += data[r * len .. (r + 1) * len].iter().sum()` for every row `r`, with the same
/// bits (each row is summed in order, from -0.0 as `Iterator::sum` does), but
/// [`ROW_SUM_LANES`] rows at a time: one sum at a time is latency-bound, and took 3 % of the
/// CIFAR-10 CNN's bf16 step (the bias gradient of conv1: 128 x 64 rows of 1024).
pub(super) fn add_row_sums(data: &[f32], len: usize, acc: &mut [f32]) {
    assert_eq!(
        data.len(),
        acc.len() * len,
        "add_row_sums: {} values for {} rows of {len}",
        data.len(),
        acc.len()
    );
    for (block, acc_b) in acc.chunks_mut(ROW_SUM_LANES).enumerate() {
        let rows = &data[block * ROW_SUM_LANES * len..][..acc_b.len() * len];
        let mut s = [-0.0f32; ROW_SUM_LANES];
        if acc_b.len() == ROW_SUM_LANES {
            // A full block: constant trip counts and no bounds checks, so that the 16 chains
            // stay in registers (with checks this loop was no faster than one row at a time).
            for p in 0..len {
                for (l, s_l) in s.iter_mut().enumerate() {
                    // SAFETY: l < ROW_SUM_LANES rows of len values are in `rows`, and p < len.
                    *s_l += unsafe { *rows.get_unchecked(l * len + p) };
                }
            }
        } else {
            for p in 0..len {
                for (l, s_l) in s.iter_mut().enumerate().take(acc_b.len()) {
                    *s_l += rows[l * len + p];
                }
            }
        }
        for (a, s_l) in acc_b.iter_mut().zip(s) {
            *a += s_l;
        }
    }
}

/// Length checks shared by the whole-layer kernels.
fn check_conv(
    name: &str,
    x_len: usize,
    batch: usize,
    g: &Conv2dGeometry,
    weight_len: usize,
    out_channels: usize,
) {
    assert_eq!(
        x_len,
        batch * g.image_len(),
        "{name}: x has {x_len} elements, expected [{batch}, {}, {}, {}]",
        g.channels,
        g.height,
        g.width
    );
    assert_eq!(
        weight_len,
        out_channels * g.col_rows(),
        "{name}: weight has {weight_len} elements, expected [{out_channels}, {}] ({} x {}x{} per output channel)",
        g.col_rows(),
        g.channels,
        g.kernel_h,
        g.kernel_w
    );
}

/// Convolution forward: `out[N, OC, OH, OW] = conv(x[N, C, H, W], weight[OC, C*KH*KW]) + bias[OC]`
/// (overwrites `out`).
pub fn conv2d_forward(
    x: &[f32],
    batch: usize,
    g: &Conv2dGeometry,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    conv2d_forward_in(Precision::F32, x, batch, g, weight, out_channels, bias, out);
}

/// [`conv2d_forward`] in `precision`: with [`Precision::Bf16`] the products take the image's
/// and the weight's values rounded to bf16 and sum them in f32; the bias is added in f32.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_in(
    precision: Precision,
    x: &[f32],
    batch: usize,
    g: &Conv2dGeometry,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    check_conv("conv2d_forward", x.len(), batch, g, weight.len(), out_channels);
    let (rows, ohw) = (g.col_rows(), g.col_cols());
    let in_size = g.image_len();
    let out_size = out_channels * ohw;
    if let Some(b) = bias {
        assert_eq!(
            b.len(),
            out_channels,
            "conv2d_forward: bias has {} elements, expected [{out_channels}]",
            b.len()
        );
    }
    assert_eq!(
        out.len(),
        batch * out_size,
        "conv2d_forward: out has {} elements, expected [{batch}, {out_channels}, {}, {}]",
        out.len(),
        g.out_h(),
        g.out_w()
    );
    if out.is_empty() {
        return;
    }
    if precision == Precision::Bf16 && conv_bf16::native() {
        // The operands rounded once and handed over in the kernel's layouts (same bits).
        conv_bf16::forward(x, batch, g, weight, out_channels, bias, out);
        return;
    }
    if precision == Precision::F32 && conv_f32::native() {
        // im2col straight into the GEMM's packed panels (same bits).
        conv_f32::forward(x, batch, g, weight, out_channels, bias, out);
        return;
    }

    let shifts = Shifts::new(g, 16);
    let run_group = |group: usize, out_g: &mut [f32]| {
        // One im2col buffer per group, reused for each of its images (im2col overwrites it).
        let mut col = pool::take_for_overwrite(rows * ohw);
        for (j, y) in out_g.chunks_exact_mut(out_size).enumerate() {
            let i = group * CONV_BATCH_GROUP + j;
            im2col_with(&x[i * in_size..(i + 1) * in_size], g, shifts.as_ref(), &mut col);
            match bias {
                Some(b) => {
                    // Start from the bias and let sgemm add W @ col (beta = 1): one pass.
                    for (y_row, &bv) in y.chunks_exact_mut(ohw).zip(b) {
                        y_row.fill(bv);
                    }
                    matmul_in(precision, weight, &col, y, out_channels, rows, ohw, false, false, true);
                }
                None => matmul_in(precision, weight, &col, y, out_channels, rows, ohw, false, false, false),
            }
        }
        pool::recycle(col);
    };
    for_each_group_out(out, out_size, batch * out_size * rows, run_group);
}

/// Convolution backward: given `dy[N, OC, OH, OW]`, ADDS the gradients into `dx[N, C, H, W]`
/// (if wanted), `dweight_acc[OC, C*KH*KW]` and `dbias_acc[OC]` (if wanted).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    x: &[f32],
    batch: usize,
    g: &Conv2dGeometry,
    weight: &[f32],
    out_channels: usize,
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dweight_acc: &mut [f32],
    dbias_acc: Option<&mut [f32]>,
) {
    conv2d_backward_in(Precision::F32, x, batch, g, weight, out_channels, dy, dx, dweight_acc, dbias_acc);
}

/// [`conv2d_backward`] in `precision`: with [`Precision::Bf16`] the two products of each
/// image (`dW`, `dcol`) take bf16-rounded operands (`dy`, the image, the weight) and sum in
/// f32, as PyTorch's autocast computes a bf16 convolution's backward; the bias gradient and
/// the sums over the batch stay f32.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_in(
    precision: Precision,
    x: &[f32],
    batch: usize,
    g: &Conv2dGeometry,
    weight: &[f32],
    out_channels: usize,
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dweight_acc: &mut [f32],
    dbias_acc: Option<&mut [f32]>,
) {
    check_conv("conv2d_backward", x.len(), batch, g, weight.len(), out_channels);
    let (rows, ohw) = (g.col_rows(), g.col_cols());
    let in_size = g.image_len();
    let out_size = out_channels * ohw;
    assert_eq!(
        dy.len(),
        batch * out_size,
        "conv2d_backward: dy has {} elements, expected [{batch}, {out_channels}, {}, {}]",
        dy.len(),
        g.out_h(),
        g.out_w()
    );
    if let Some(d) = dx.as_deref() {
        assert_eq!(d.len(), x.len(), "conv2d_backward: dx has {} elements, x has {}", d.len(), x.len());
    }
    assert_eq!(
        dweight_acc.len(),
        weight.len(),
        "conv2d_backward: dweight_acc has {} elements, weight has {}",
        dweight_acc.len(),
        weight.len()
    );
    if let Some(db) = dbias_acc.as_deref() {
        assert_eq!(
            db.len(),
            out_channels,
            "conv2d_backward: dbias_acc has {} elements, expected [{out_channels}]",
            db.len()
        );
    }
    if batch == 0 || out_size == 0 {
        return;
    }
    if precision == Precision::Bf16 && conv_bf16::native() {
        // The operands rounded once and handed over in the kernel's layouts (same bits).
        conv_bf16::backward(x, batch, g, weight, out_channels, dy, dx, dweight_acc, dbias_acc);
        return;
    }
    if precision == Precision::F32 && conv_f32::native() {
        // dW computed transposed, col read in place; dcol by blocks (same bits).
        conv_f32::backward(x, batch, g, weight, out_channels, dy, dx, dweight_acc, dbias_acc);
        return;
    }

    let want_db = dbias_acc.is_some();

    let shifts = Shifts::new(g, 16);
    // Returns this group's (dW, db) partial sums; writes its images' dx directly.
    let run_group = |group: usize, mut dx_g: Option<&mut [f32]>| -> (Vec<f32>, Vec<f32>) {
        // dw, col and dcol are overwritten (the first image's dW product does not accumulate).
        let mut dw = pool::take_for_overwrite(weight.len());
        let mut db = vec![0.0f32; if want_db { out_channels } else { 0 }];
        let mut col = pool::take_for_overwrite(rows * ohw);
        let mut dcol = pool::take_for_overwrite(if dx_g.is_some() { rows * ohw } else { 0 });
        let first = group * CONV_BATCH_GROUP;
        let count = CONV_BATCH_GROUP.min(batch - first);
        for j in 0..count {
            let i = first + j;
            let dy_i = &dy[i * out_size..(i + 1) * out_size];
            im2col_with(&x[i * in_size..(i + 1) * in_size], g, shifts.as_ref(), &mut col);
            // dW[OC, rows] (+)= dy_i[OC, OH*OW] @ col^T
            matmul_in(precision, dy_i, &col, &mut dw, out_channels, ohw, rows, false, true, j > 0);
            if want_db {
                add_row_sums(dy_i, ohw, &mut db);
            }
            if let Some(dx_g) = dx_g.as_deref_mut() {
                // dcol[rows, OH*OW] = W^T @ dy_i, then fold back onto the image.
                matmul_in(precision, weight, dy_i, &mut dcol, rows, out_channels, ohw, true, false, false);
                col2im_rows(&dcol, g, shifts.as_ref(), 0, &mut dx_g[j * in_size..(j + 1) * in_size]);
            }
        }
        pool::recycle(col);
        pool::recycle(dcol);
        (dw, db)
    };

    let partials = map_groups_backward(batch, in_size, dx, batch * out_size * rows, run_group);
    add_partials(dweight_acc, dbias_acc, partials);
}

/// Runs `f` with this thread's scratch in `key` (moved out for the duration, so that a nested
/// call on the same thread, as rayon may make while this one waits, starts with its own).
pub(super) fn with_thread_scratch<S: Default, R>(
    key: &'static std::thread::LocalKey<std::cell::Cell<S>>,
    f: impl FnOnce(&mut S) -> R,
) -> R {
    let mut s = key.take();
    let r = f(&mut s);
    key.set(s);
    r
}

/// Runs `run_group(group, out_chunk)` on each batch group's chunk of the forward output
/// (`CONV_BATCH_GROUP` images of `out_size` values), on rayon when `work` is worth it.
pub(super) fn for_each_group_out(
    out: &mut [f32],
    out_size: usize,
    work: usize,
    run_group: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let chunk = CONV_BATCH_GROUP * out_size;
    if should_parallelize(work) {
        out.par_chunks_mut(chunk).enumerate().for_each(|(gi, o)| run_group(gi, o));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(gi, o)| run_group(gi, o));
    }
}

/// Runs `run_group(group, dx_chunk)` for each of the `batch.div_ceil(CONV_BATCH_GROUP)` batch
/// groups of a backward pass, on rayon when `work` is worth it, and returns their results in
/// group order. `dx_chunk` is the group's part of `dx` (`in_size` values per image), `None`
/// when no input gradient is wanted or the images are empty.
pub(super) fn map_groups_backward<R: Send>(
    batch: usize,
    in_size: usize,
    dx: Option<&mut [f32]>,
    work: usize,
    run_group: impl Fn(usize, Option<&mut [f32]>) -> R + Sync + Send,
) -> Vec<R> {
    let groups = batch.div_ceil(CONV_BATCH_GROUP);
    // An empty image (C, H or W = 0) has no gradient to receive.
    let dx_chunks: Vec<Option<&mut [f32]>> = match dx.filter(|_| in_size > 0) {
        Some(d) => d.chunks_mut(CONV_BATCH_GROUP * in_size).map(Some).collect(),
        None => (0..groups).map(|_| None).collect(),
    };
    if should_parallelize(work) {
        dx_chunks.into_par_iter().enumerate().map(|(gi, d)| run_group(gi, d)).collect()
    } else {
        dx_chunks.into_iter().enumerate().map(|(gi, d)| run_group(gi, d)).collect()
    }
}

/// Elements of the weight-gradient accumulator per parallel task of [`add_partials`].
const PARTIALS_BLOCK: usize = 8192;

/// Adds the batch groups' partial sums `(dW, db)` into `dw_acc` and `db_acc` in group order,
/// whatever order the groups finished in: every element gets `+= p_0`, then `+= p_1`, ...,
/// as in a serial loop over the groups (same bits), but blocks of `dw_acc` are summed in
/// parallel (serial, this fold over 32 groups took about 4 % of a 2-thread CNN step, with
/// the other thread idle). The `dW` partials go back to the pool.
pub(super) fn add_partials(
    dw_acc: &mut [f32],
    db_acc: Option<&mut [f32]>,
    partials: Vec<(Vec<f32>, Vec<f32>)>,
) {
    for (dw, _) in &partials {
        assert_eq!(
            dw.len(),
            dw_acc.len(),
            "add_partials: a partial of {} for {} elements",
            dw.len(),
            dw_acc.len()
        );
    }
    let fold = |(block, acc): (usize, &mut [f32])| {
        let first = block * PARTIALS_BLOCK;
        for (dw, _) in &partials {
            for (a, v) in acc.iter_mut().zip(&dw[first..]) {
                *a += v;
            }
        }
    };
    if should_parallelize(dw_acc.len() * partials.len()) {
        dw_acc.par_chunks_mut(PARTIALS_BLOCK).enumerate().for_each(fold);
    } else {
        dw_acc.chunks_mut(PARTIALS_BLOCK).enumerate().for_each(fold);
    }
    if let Some(db_acc) = db_acc {
        for (_, db) in &partials {
            for (a, v) in db_acc.iter_mut().zip(db) {
                *a += v;
            }
        }
    }
    partials.into_iter().for_each(|(dw, _)| pool::recycle(dw));
}

#[cfg(test)]
#[path = "conv_tests.rs"]
mod tests;
