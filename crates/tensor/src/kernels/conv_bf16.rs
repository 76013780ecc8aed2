//! The bf16 convolution on the native `vdpbf16ps` kernel: [`conv2d_forward_in`] and
//! [`conv2d_backward_in`] with [`Precision::Bf16`](super::Precision::Bf16) come here when
//! [`bf16_backend`] is [`Bf16Backend::Avx512Bf16`].
//!
//! The products are those of the f32 path (see [`conv`](mod@super::conv)), with each operand
//! rounded to bf16 once and handed to the GEMM in the layout its kernel reads
//! ([`sgemm_bf16_prepacked`]) instead of as f32 that every product rounds and packs again:
//!
//! * the weight is rounded once per call (and once more transposed, for `dcol`), not once
//!   per image;
//! * each image is rounded once, and im2col copies its bf16 (im2col only copies, so this is
//!   rounding the im2col matrix, without rounding each pixel `KH*KW` times);
//! * the forward im2col writes straight into the packed `b` of `W @ col`
//!   ([`PackedBf16B`]), a pair of rows at a time, instead of an f32 `col` (1.6 MB for conv2
//!   of the CIFAR-10 CNN) that the packing reads back;
//! * the backward im2col writes bf16 rows ([`Bf16Rows`]), and the weight gradient is computed
//!   transposed, `dW^T[C*KH*KW, OC] (+)= col @ dy_i^T`, so that `col` is the `a` operand read
//!   in place (only the small `dy_i` is packed);
//! * `dcol = W^T @ dy_i` is computed and folded back onto the image (col2im) a block of rows
//!   at a time, while the block is in L2.
//!
//! Each element meets the same bf16 products in the same order as on the generic path
//! (`matmul_in` on the f32 im2col matrix), and the sums over the batch are taken in the same
//! group order, so the results are the generic path's bit for bit, whatever the number of
//! threads.
//!
//! [`conv2d_forward_in`]: super::conv2d_forward_in
//! [`conv2d_backward_in`]: super::conv2d_backward_in

use super::conv::{
    add_partials, add_row_sums, col2im_rows, for_each_group_out, im2col_row, map_groups_backward,
    with_thread_scratch, Conv2dGeometry, CONV_BATCH_GROUP,
};
use super::conv_shift::Shifts;
use super::gemm::{
    bf16_backend, f32_to_bf16_slice, sgemm_bf16_prepacked, sgemm_bf16_prepacked_rows, Bf16B, Bf16Backend,
    Bf16Rows, PackedBf16B, StridedMat,
};
use crate::pool;
use std::cell::Cell;

/// Size of a block of `dcol` in the backward pass: small enough for L2 beside the operands.
const DCOL_BLOCK_BYTES: usize = 256 << 10;

/// Whether the bf16 convolution runs here (the CPU has AVX512_BF16).
pub(super) fn native() -> bool {
    #[cfg(test)]
    if FORCE_GENERIC.get() {
        return false;
    }
    bf16_backend() == Bf16Backend::Avx512Bf16
}

#[cfg(test)]
thread_local! {
    /// Sends this thread's bf16 convolutions down the generic path, as on a CPU without
    /// AVX512_BF16, so that tests run both paths here.
    static FORCE_GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// One thread's bf16 operands and f32 row buffer, reused across images and calls.
#[derive(Default)]
struct Scratch {
    packed: PackedBf16B,
    rows: Bf16Rows,
    /// Two im2col rows of bf16 (`2 * OH*OW`).
    pair16: Vec<u16>,
    /// One image rounded to bf16.
    image16: Vec<u16>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch (see [`with_thread_scratch`]).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    with_thread_scratch(&SCRATCH, f)
}

/// im2col of `image` into `dst`, the packed `b` `[C*KH*KW, OH*OW]` of `W @ col`, from the
/// image rounded once into `image16` ([`round_image`]), a pair of rows at a time through
/// `pair16` (two rows of bf16).
fn im2col_packed(
    image: &[f32],
    g: &Conv2dGeometry,
    shifts: Option<&Shifts>,
    dst: &mut PackedBf16B,
    image16: &mut Vec<u16>,
    pair16: &mut Vec<u16>,
) {
    let (rows, out) = (g.col_rows(), (g.out_h(), g.out_w()));
    let ohw = out.0 * out.1;
    dst.reset(rows, ohw);
    round_image(image, image16);
    pair16.resize(2 * ohw, 0);
    let (even, odd) = pair16.split_at_mut(ohw);
    for p in (0..rows).step_by(2) {
        im2col_row_bits(image16, g, shifts, out, p, even);
        if p + 1 < rows {
            im2col_row_bits(image16, g, shifts, out, p + 1, odd);
            dst.set_pair_bits(p, even, Some(odd));
        } else {
            dst.set_pair_bits(p, even, None);
        }
    }
}

/// `image` rounded to bf16 into `image16`, once per image: im2col only copies, so its rows
/// can be built from the bf16 pixels (the same bits as rounding each col row, which would
/// round every pixel `KH*KW` times and copy it as f32 first).
fn round_image(image: &[f32], image16: &mut Vec<u16>) {
    image16.resize(image.len(), 0);
    f32_to_bf16_slice(image, image16);
}

/// im2col of `image` into `dst` as bf16 rows `[C*KH*KW, OH*OW]`, from the image rounded
/// once into `image16` ([`round_image`]).
fn im2col_rows(
    image: &[f32],
    g: &Conv2dGeometry,
    shifts: Option<&Shifts>,
    dst: &mut Bf16Rows,
    image16: &mut Vec<u16>,
) {
    let (rows, out) = (g.col_rows(), (g.out_h(), g.out_w()));
    dst.reset(rows, out.0 * out.1);
    round_image(image, image16);
    for r in 0..rows {
        dst.set_row_bits(r, |row| im2col_row_bits(image16, g, shifts, out, r, row));
    }
}

/// im2col row `r` of the bf16 image `image16`, through `shifts` (32 lanes, made for `g`)
/// where there are some (same bits).
fn im2col_row_bits(
    image16: &[u16],
    g: &Conv2dGeometry,
    shifts: Option<&Shifts>,
    out: (usize, usize),
    r: usize,
    row: &mut [u16],
) {
    match shifts {
        Some(s) => s.im2col_row_u16(image16, r, row),
        None => im2col_row(image16, g, out, r, row),
    }
}

/// [`conv2d_forward_in`](super::conv2d_forward_in) in bf16, the arguments checked by it and
/// `out` not empty.
pub(super) fn forward(
    x: &[f32],
    batch: usize,
    g: &Conv2dGeometry,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (rows, ohw) = (g.col_rows(), g.col_cols());
    let (in_size, out_size) = (g.image_len(), out_channels * ohw);
    let mut w16 = Bf16Rows::new();
    w16.assign(StridedMat::row_major(weight, out_channels, rows, false));
    let shifts = Shifts::new(g, 32);
    let run_group = |group: usize, out_g: &mut [f32]| {
        with_scratch(|s| {
            for (j, y) in out_g.chunks_exact_mut(out_size).enumerate() {
                let i = group * CONV_BATCH_GROUP + j;
                let image = &x[i * in_size..(i + 1) * in_size];
                im2col_packed(image, g, shifts.as_ref(), &mut s.packed, &mut s.image16, &mut s.pair16);
                if let Some(b) = bias {
                    // Start from the bias and add W @ col to it, as the generic path does.
                    for (y_row, &bv) in y.chunks_exact_mut(ohw).zip(b) {
                        y_row.fill(bv);
                    }
                }
                sgemm_bf16_prepacked(&w16, Bf16B::Packed(&s.packed), y, bias.is_some());
            }
        })
    };
    for_each_group_out(out, out_size, batch * out_size * rows, run_group);
}

/// [`conv2d_backward_in`](super::conv2d_backward_in) in bf16, the arguments checked by it,
/// `batch` and `dy` not empty.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
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
    let (rows, ohw) = (g.col_rows(), g.col_cols());
    let (in_size, out_size) = (g.image_len(), out_channels * ohw);
    let oc = out_channels;
    let want_db = dbias_acc.is_some();
    // W^T [C*KH*KW, OC] in bf16, the `a` of every dcol product.
    let mut w16t = Bf16Rows::new();
    if dx.is_some() && in_size > 0 {
        w16t.assign(StridedMat::row_major(weight, oc, rows, false).transposed());
    }

    // Rows of dcol per block: about DCOL_BLOCK_BYTES of f32, a multiple of the kernel's
    // 12-row tiles (blocks then start at a multiple of 4, as sgemm_bf16_prepacked_rows wants).
    let dcol_rows = ((DCOL_BLOCK_BYTES / 4 / ohw) / 12 * 12).max(12);
    // im2col of bf16 cells (32 to a vector) and col2im of f32 ones (16).
    let (shifts16, shifts) = (Shifts::new(g, 32), Shifts::new(g, 16));
    // Returns this group's (dW^T, db) partial sums; writes its images' dx directly.
    let run_group = |group: usize, mut dx_g: Option<&mut [f32]>| -> (Vec<f32>, Vec<f32>) {
        // dwt and dcol are overwritten (the first image's product does not accumulate).
        let mut dwt = pool::take_for_overwrite(rows * oc);
        let mut db = vec![0.0f32; if want_db { oc } else { 0 }];
        let mut dcol = pool::take_for_overwrite(if dx_g.is_some() { dcol_rows.min(rows) * ohw } else { 0 });
        let first = group * CONV_BATCH_GROUP;
        let count = CONV_BATCH_GROUP.min(batch - first);
        with_scratch(|s| {
            for j in 0..count {
                let i = first + j;
                let dy_i = &dy[i * out_size..(i + 1) * out_size];
                im2col_rows(
                    &x[i * in_size..(i + 1) * in_size],
                    g,
                    shifts16.as_ref(),
                    &mut s.rows,
                    &mut s.image16,
                );
                // dW^T[rows, OC] (+)= col[rows, OH*OW] @ dy_i^T[OH*OW, OC]
                let dy_t = StridedMat::row_major(dy_i, ohw, oc, true);
                sgemm_bf16_prepacked(&s.rows, Bf16B::F32(dy_t), &mut dwt, j > 0);
                if want_db {
                    add_row_sums(dy_i, ohw, &mut db);
                }
                if let Some(dx_g) = dx_g.as_deref_mut() {
                    // dcol[rows, OH*OW] = W^T @ dy_i, folded back onto the image a block of
                    // rows at a time, while the block is still in L2 (all of dcol is 1.6 MB
                    // for conv2 of the CNN); dy_i is packed once for all blocks.
                    s.packed.reset(oc, ohw);
                    for p in (0..oc).step_by(2) {
                        let odd = (p + 1 < oc).then(|| &dy_i[(p + 1) * ohw..(p + 2) * ohw]);
                        s.packed.set_pair(p, &dy_i[p * ohw..(p + 1) * ohw], odd);
                    }
                    let dx_i = &mut dx_g[j * in_size..(j + 1) * in_size];
                    for r0 in (0..rows).step_by(dcol_rows) {
                        let r1 = (r0 + dcol_rows).min(rows);
                        let block = &mut dcol[..(r1 - r0) * ohw];
                        sgemm_bf16_prepacked_rows(&w16t, r0..r1, Bf16B::Packed(&s.packed), block, false);
                        col2im_rows(block, g, shifts.as_ref(), r0, dx_i);
                    }
                }
            }
        });
        pool::recycle(dcol);
        (dwt, db)
    };

    let partials = map_groups_backward(batch, in_size, dx, batch * out_size * rows, run_group);
    // The partials are added to the accumulator in group order, whatever order the groups
    // finished in: the accumulator is turned into dW^T, the partials added to it (each
    // element sees the additions of the generic path, in its order), and it is turned back.
    // Two transposes instead of a strided pass per group (3 % of the CNN's step).
    let mut total = pool::take_for_overwrite(rows * oc);
    transpose(dweight_acc, oc, rows, &mut total);
    add_partials(&mut total, dbias_acc, partials);
    transpose(&total, rows, oc, dweight_acc);
    pool::recycle(total);
}

/// `dst[c, r] = src[r, c]` for a row-major `[rows, cols]` `src`, by blocks of 16 x 16 (both
/// sides then stay in a few cache lines).
pub(super) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert_eq!(
        (src.len(), dst.len()),
        (rows * cols, rows * cols),
        "transpose: lengths differ from {rows}x{cols}"
    );
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::{col2im, conv2d_backward_in, conv2d_forward_in, im2col};
    use super::super::gemm::Precision;
    use super::super::matmul::matmul_in;
    use super::*;
    use crate::kernels::parallel::{with_mode, Mode};
    use crate::testing::randn;

    /// The generic bf16 path (the f32 im2col matrix through `matmul_in`), serially: per
    /// image `y = bias + W @ col`, `dW (+)= dy @ col^T` summed per group of
    /// [`CONV_BATCH_GROUP`] then over the groups, `dcol = W^T @ dy`.
    #[allow(clippy::type_complexity)]
    fn generic(
        x: &[f32],
        n: usize,
        g: &Conv2dGeometry,
        w: &[f32],
        oc: usize,
        b: &[f32],
        dy: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (rows, ohw, in_size) = (g.col_rows(), g.col_cols(), g.image_len());
        let p = Precision::Bf16;
        let (mut y, mut dx, mut dw) = (vec![0.0; n * oc * ohw], vec![0.0; x.len()], vec![0.0; w.len()]);
        let (mut col, mut dcol, mut dw_g) =
            (vec![0.0; rows * ohw], vec![0.0; rows * ohw], vec![0.0; w.len()]);
        for i in 0..n {
            im2col(&x[i * in_size..(i + 1) * in_size], g, &mut col);
            let y_i = &mut y[i * oc * ohw..(i + 1) * oc * ohw];
            for (row, &bv) in y_i.chunks_exact_mut(ohw).zip(b) {
                row.fill(bv);
            }
            matmul_in(p, w, &col, y_i, oc, rows, ohw, false, false, true);
            let dy_i = &dy[i * oc * ohw..(i + 1) * oc * ohw];
            let j = i % CONV_BATCH_GROUP;
            matmul_in(p, dy_i, &col, &mut dw_g, oc, ohw, rows, false, true, j > 0);
            if j + 1 == CONV_BATCH_GROUP || i + 1 == n {
                dw.iter_mut().zip(&dw_g).for_each(|(a, v)| *a += v);
            }
            matmul_in(p, w, dy_i, &mut dcol, rows, oc, ohw, true, false, false);
            col2im(&dcol, g, &mut dx[i * in_size..(i + 1) * in_size]);
        }
        (y, dx, dw)
    }

    /// The native path gives the generic path's bits: forward, dx and dW, on shapes with an
    /// odd `C*KH*KW` (75: a zero step), several K blocks (400 and 1600 rows), padded rows and
    /// columns, 1024 output positions (the padded row stride), strides and a short group.
    #[test]
    fn native_equals_generic_path_bitwise() {
        if !native() {
            return;
        }
        let cases = [
            (6, Conv2dGeometry::new(3, 32, 32, 5, 1, 2), 8),
            (5, Conv2dGeometry::new(16, 8, 8, 5, 1, 2), 20),
            (3, Conv2dGeometry::new(64, 8, 8, 5, 1, 2), 13),
            (9, Conv2dGeometry::new(3, 9, 7, 3, 2, 1), 5),
            (1, Conv2dGeometry::new(1, 7, 5, 3, 1, 1), 2),
            // One col row (a single step, odd) and one output channel.
            (2, Conv2dGeometry::new(1, 3, 3, 1, 1, 0), 1),
        ];
        for (s, &(n, g, oc)) in cases.iter().enumerate() {
            let s = 10 * s as u64;
            let (x, w, b) =
                (randn(n * g.image_len(), s + 1), randn(oc * g.col_rows(), s + 2), randn(oc, s + 3));
            let dy = randn(n * oc * g.col_cols(), s + 4);
            let (want_y, want_dx, want_dw) = generic(&x, n, &g, &w, oc, &b, &dy);
            let mut y = vec![f32::NAN; want_y.len()];
            conv2d_forward_in(Precision::Bf16, &x, n, &g, &w, oc, Some(&b), &mut y);
            let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; oc]);
            conv2d_backward_in(
                Precision::Bf16,
                &x,
                n,
                &g,
                &w,
                oc,
                &dy,
                Some(&mut dx),
                &mut dw,
                Some(&mut db),
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "y n={n} {g:?}");
            assert_eq!(bits(&dx), bits(&want_dx), "dx n={n} {g:?}");
            assert_eq!(bits(&dw), bits(&want_dw), "dW n={n} {g:?}");
            // The bias gradient is the f32 sum of dy, as on the f32 path.
            let (mut dx32, mut dw32, mut db32) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; oc]);
            conv2d_backward_in(
                Precision::F32,
                &x,
                n,
                &g,
                &w,
                oc,
                &dy,
                Some(&mut dx32),
                &mut dw32,
                Some(&mut db32),
            );
            assert_eq!(db, db32);
            // And the bf16 results are not the f32 ones (the operands really were rounded).
            assert_ne!(dw, dw32);
        }
    }

    /// The generic path (taken without AVX512_BF16) still runs, and gives the native
    /// path's bits (through `sgemm_bf16`, here on the native backend).
    #[test]
    fn generic_path_equals_native_path_bitwise() {
        let (n, g, oc) = (6, Conv2dGeometry::new(5, 9, 9, 3, 1, 1), 7);
        let (x, w, b) = (randn(n * g.image_len(), 1), randn(oc * g.col_rows(), 2), randn(oc, 3));
        let dy = randn(n * oc * g.col_cols(), 4);
        let run = |generic: bool| {
            FORCE_GENERIC.set(generic);
            let mut y = vec![f32::NAN; dy.len()];
            conv2d_forward_in(Precision::Bf16, &x, n, &g, &w, oc, Some(&b), &mut y);
            let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; oc]);
            conv2d_backward_in(
                Precision::Bf16,
                &x,
                n,
                &g,
                &w,
                oc,
                &dy,
                Some(&mut dx),
                &mut dw,
                Some(&mut db),
            );
            FORCE_GENERIC.set(false);
            (y, dx, dw, db)
        };
        let via_generic = run(true);
        // Against the reference of the generic path, so that this test checks something on
        // every CPU.
        let (want_y, want_dx, want_dw) = generic(&x, n, &g, &w, oc, &b, &dy);
        assert_eq!((&via_generic.0, &via_generic.1, &via_generic.2), (&want_y, &want_dx, &want_dw));
        if native() {
            assert_eq!(via_generic, run(false));
        }
    }

    /// Without a bias, without dx or db: the same values as with them.
    #[test]
    fn optional_outputs_do_not_change_the_others() {
        if !native() {
            return;
        }
        let (n, g, oc) = (5, Conv2dGeometry::new(4, 9, 9, 3, 1, 1), 6);
        let (x, w, dy) =
            (randn(n * g.image_len(), 1), randn(oc * g.col_rows(), 2), randn(n * oc * g.col_cols(), 3));
        let (_, _, want_dw) = generic(&x, n, &g, &w, oc, &vec![0.0; oc], &dy);
        let mut y = vec![f32::NAN; dy.len()];
        conv2d_forward_in(Precision::Bf16, &x, n, &g, &w, oc, None, &mut y);
        let mut y0 = vec![f32::NAN; dy.len()];
        conv2d_forward_in(Precision::Bf16, &x, n, &g, &w, oc, Some(&vec![0.0; oc]), &mut y0);
        assert_eq!(y, y0);
        let mut dw = vec![0.0; w.len()];
        conv2d_backward_in(Precision::Bf16, &x, n, &g, &w, oc, &dy, None, &mut dw, None);
        assert_eq!(dw, want_dw);
    }

    /// Parallel = serial, bit for bit, and accumulators are added to, not overwritten.
    #[test]
    fn native_parallel_equals_serial_bitwise() {
        if !native() {
            return;
        }
        // 11 images: two full groups of 4 and a short one of 3.
        let (n, g, oc) = (11, Conv2dGeometry::new(3, 12, 10, 5, 1, 2), 6);
        let (x, w, b) = (randn(n * g.image_len(), 1), randn(oc * g.col_rows(), 2), randn(oc, 3));
        let dy = randn(n * oc * g.col_cols(), 4);
        let run = |mode| {
            with_mode(mode, || {
                let mut out = vec![0.0; dy.len()];
                conv2d_forward_in(Precision::Bf16, &x, n, &g, &w, oc, Some(&b), &mut out);
                let (mut dx, mut dw, mut db) = (vec![0.5; x.len()], vec![0.25; w.len()], vec![1.0; oc]);
                conv2d_backward_in(
                    Precision::Bf16,
                    &x,
                    n,
                    &g,
                    &w,
                    oc,
                    &dy,
                    Some(&mut dx),
                    &mut dw,
                    Some(&mut db),
                );
                (out, dx, dw, db)
            })
        };
        let serial = run(Mode::Serial);
        assert_eq!(serial, run(Mode::Parallel));
        let (_, want_dx, want_dw) = generic(&x, n, &g, &w, oc, &b, &dy);
        // The accumulators started at 0.5 and 0.25 (added to along the way, so up to rounding).
        let added = |got: &[f32], want: &[f32], start: f32| {
            got.iter().zip(want).all(|(&g, &w)| (g - (w + start)).abs() <= 1e-5 * (1.0 + w.abs()))
        };
        assert!(added(&serial.1, &want_dx, 0.5), "dx");
        assert!(added(&serial.2, &want_dw, 0.25), "dW");
    }
}
