//! The f32 convolution on the AVX-512 GEMM backend: [`conv2d_forward_in`] and
//! [`conv2d_backward_in`] in [`Precision::F32`](super::Precision::F32) come here when
//! [`gemm_backend`] is [`GemmBackend::Avx512`].
//!
//! The products are those of the row-major path in [`conv`](mod@super::conv) (im2col into an
//! f32 matrix, then `matmul_in`), with the operands handed to the GEMM in the layouts it
//! reads, as the bf16 convolution does (`conv_bf16.rs`):
//!
//! * the forward im2col writes each row straight into the packed `b` of `W @ col`
//!   ([`PackedF32B`]), instead of into a `[C*KH*KW, OH*OW]` matrix (1.6 MB per image for
//!   conv2 of the CIFAR-10 CNN) that the GEMM's packing reads back;
//! * the weight gradient is computed transposed, `dW^T[C*KH*KW, OC] (+)= col @ dy_i^T`, so
//!   that `col` is the `a` operand, read in place, and only the small `dy_i^T` is packed
//!   (`dW = dy_i @ col^T` packed all of `col^T`, with transposes, for every image);
//! * `dcol = W^T @ dy_i` is computed and folded back onto the image (col2im) a block of
//!   about 256 KiB of rows at a time, while the block is in L2, with `dy_i` packed once per
//!   image for all blocks.
//!
//! Every element is the same chain of FMAs over the same K blocks as on the row-major path,
//! and the sums over the batch are added in the same group order, so the results are that
//! path's bit for bit (tests), whatever the number of threads.
//!
//! [`conv2d_forward_in`]: super::conv2d_forward_in
//! [`conv2d_backward_in`]: super::conv2d_backward_in

use super::conv::{
    add_partials, add_row_sums, col2im_rows, for_each_group_out, im2col_row_with, im2col_with,
    map_groups_backward, with_thread_scratch, Conv2dGeometry, CONV_BATCH_GROUP,
};
use super::conv_bf16::transpose;
use super::conv_shift::Shifts;
use super::gemm::{gemm_backend, sgemm, sgemm_prepacked_b, GemmBackend, PackedF32B, StridedMat};
use crate::pool;
use std::cell::Cell;

/// Size of a block of `dcol` in the backward pass: small enough for L2 beside the operands.
const DCOL_BLOCK_BYTES: usize = 256 << 10;

/// Whether the f32 convolution runs here (the GEMM's backend is AVX-512).
pub(super) fn native() -> bool {
    #[cfg(test)]
    if FORCE_ROW_MAJOR.get() {
        return false;
    }
    gemm_backend() == GemmBackend::Avx512
}

#[cfg(test)]
thread_local! {
    /// Sends this thread's f32 convolutions down the row-major path, as on a CPU without
    /// AVX-512, so that tests compare the two here.
    static FORCE_ROW_MAJOR: Cell<bool> = const { Cell::new(false) };
}

/// One thread's packed operand and im2col row, reused across images and calls.
#[derive(Default)]
struct Scratch {
    packed: PackedF32B,
    row: Vec<f32>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch (see [`with_thread_scratch`]).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    with_thread_scratch(&SCRATCH, f)
}

/// [`conv2d_forward_in`](super::conv2d_forward_in) in f32, the arguments checked by it and
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
    let w = StridedMat::row_major(weight, out_channels, rows, false);
    let shifts = Shifts::new(g, 16);
    let run_group = |group: usize, out_g: &mut [f32]| {
        with_scratch(|s| {
            s.row.resize(ohw, 0.0);
            for (j, y) in out_g.chunks_exact_mut(out_size).enumerate() {
                let i = group * CONV_BATCH_GROUP + j;
                let image = &x[i * in_size..(i + 1) * in_size];
                // col[C*KH*KW, OH*OW], a row at a time into the GEMM's panels.
                s.packed.reset(rows, ohw);
                for r in 0..rows {
                    im2col_row_with(image, g, shifts.as_ref(), r, &mut s.row);
                    s.packed.set_row(r, &s.row);
                }
                if let Some(b) = bias {
                    // Start from the bias and add W @ col to it, as the row-major path does.
                    for (y_row, &bv) in y.chunks_exact_mut(ohw).zip(b) {
                        y_row.fill(bv);
                    }
                }
                // y_i[OC, OH*OW] (+)= W[OC, C*KH*KW] @ col
                sgemm_prepacked_b(w, &s.packed, y, bias.is_some());
            }
        })
    };
    for_each_group_out(out, out_size, batch * out_size * rows, run_group);
}

/// [`conv2d_backward_in`](super::conv2d_backward_in) in f32, the arguments checked by it,
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
    // Rows of dcol per block: about DCOL_BLOCK_BYTES, a multiple of the kernel's 12-row tiles.
    let dcol_rows = ((DCOL_BLOCK_BYTES / 4 / ohw.max(1)) / 12 * 12).max(12);
    let shifts = Shifts::new(g, 16);
    // Returns this group's (dW^T, db) partial sums; writes its images' dx directly.
    let run_group = |group: usize, mut dx_g: Option<&mut [f32]>| -> (Vec<f32>, Vec<f32>) {
        // dwt, col and dcol are overwritten (the first image's product does not accumulate).
        let mut dwt = pool::take_for_overwrite(rows * oc);
        let mut db = vec![0.0f32; if want_db { oc } else { 0 }];
        let mut col = pool::take_for_overwrite(rows * ohw);
        let mut dcol = pool::take_for_overwrite(if dx_g.is_some() { dcol_rows.min(rows) * ohw } else { 0 });
        let first = group * CONV_BATCH_GROUP;
        let count = CONV_BATCH_GROUP.min(batch - first);
        with_scratch(|s| {
            for j in 0..count {
                let i = first + j;
                let dy_i = &dy[i * out_size..(i + 1) * out_size];
                let image = &x[i * in_size..(i + 1) * in_size];
                im2col_with(image, g, shifts.as_ref(), &mut col);
                // dW^T[rows, OC] (+)= col[rows, OH*OW] @ dy_i^T[OH*OW, OC]
                let col_a = StridedMat::row_major(&col, rows, ohw, false);
                sgemm(col_a, StridedMat::row_major(dy_i, ohw, oc, true), &mut dwt, j > 0);
                if want_db {
                    add_row_sums(dy_i, ohw, &mut db);
                }
                if let Some(dx_g) = dx_g.as_deref_mut() {
                    // dcol[rows, OH*OW] = W^T @ dy_i, folded back a block of rows at a time
                    // while the block is in L2; dy_i is packed once for all blocks.
                    s.packed.reset(oc, ohw);
                    for (o, dy_row) in dy_i.chunks_exact(ohw).enumerate() {
                        s.packed.set_row(o, dy_row);
                    }
                    let dx_i = &mut dx_g[j * in_size..(j + 1) * in_size];
                    for r0 in (0..rows).step_by(dcol_rows) {
                        let r1 = (r0 + dcol_rows).min(rows);
                        let block = &mut dcol[..(r1 - r0) * ohw];
                        // Rows r0..r1 of W^T: columns of the row-major weight [OC, rows].
                        let wt_rows = StridedMat::new(&weight[r0..], r1 - r0, oc, 1, rows);
                        sgemm_prepacked_b(wt_rows, &s.packed, block, false);
                        col2im_rows(block, g, shifts.as_ref(), r0, dx_i);
                    }
                }
            }
        });
        pool::recycle(col);
        pool::recycle(dcol);
        (dwt, db)
    };

    let partials = map_groups_backward(batch, in_size, dx, batch * out_size * rows, run_group);
    // The partials are added in group order, whatever order the groups finished in, into the
    // accumulator turned into dW^T and back (each element sees the row-major path's additions
    // in its order).
    let mut total = pool::take_for_overwrite(rows * oc);
    transpose(dweight_acc, oc, rows, &mut total);
    add_partials(&mut total, dbias_acc, partials);
    transpose(&total, rows, oc, dweight_acc);
    pool::recycle(total);
}

#[cfg(test)]
mod tests {
    use super::super::conv::{conv2d_backward_in, conv2d_forward_in};
    use super::super::gemm::Precision;
    use super::*;
    use crate::kernels::parallel::{with_mode, Mode};
    use crate::testing::randn;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Forward and backward on the chosen path; (y, dx, dw, db), the gradients added to
    /// non-zero accumulators.
    #[allow(clippy::type_complexity)]
    fn run(
        row_major: bool,
        g: &Conv2dGeometry,
        batch: usize,
        oc: usize,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        FORCE_ROW_MAJOR.set(row_major);
        let x = randn(batch * g.image_len(), seed);
        let w = randn(oc * g.col_rows(), seed + 1);
        let b = randn(oc, seed + 2);
        let ohw = g.col_cols();
        let mut y = vec![f32::NAN; batch * oc * ohw];
        conv2d_forward_in(Precision::F32, &x, batch, g, &w, oc, Some(&b), &mut y);
        let dy = randn(y.len(), seed + 3);
        let (mut dx, mut dw, mut db) =
            (randn(x.len(), seed + 4), randn(w.len(), seed + 5), randn(oc, seed + 6));
        conv2d_backward_in(Precision::F32, &x, batch, g, &w, oc, &dy, Some(&mut dx), &mut dw, Some(&mut db));
        FORCE_ROW_MAJOR.set(false);
        (y, dx, dw, db)
    }

    #[test]
    fn native_equals_row_major_path_bitwise() {
        if !native() {
            eprintln!("skipped: no AVX-512 backend on this CPU");
            return;
        }
        // The CNN's layers (conv1 without dx in the net, here with), strides, no padding, a
        // batch that is not a whole number of groups, dcol in several blocks.
        let cases = [
            (Conv2dGeometry::new(3, 32, 32, 5, 1, 2), 5, 8),
            (Conv2dGeometry::new(16, 16, 16, 5, 1, 2), 6, 16),
            (Conv2dGeometry::new(8, 8, 8, 5, 1, 2), 4, 24),
            (Conv2dGeometry::new(3, 11, 9, 3, 2, 1), 3, 5),
            (Conv2dGeometry::new(2, 7, 7, 3, 1, 0), 2, 3),
        ];
        for (seed, (g, batch, oc)) in cases.iter().enumerate() {
            let seed = 10 * seed as u64;
            let want = run(true, g, *batch, *oc, seed);
            let got = run(false, g, *batch, *oc, seed);
            for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip([
                (&got.0, &want.0),
                (&got.1, &want.1),
                (&got.2, &want.2),
                (&got.3, &want.3),
            ]) {
                assert_eq!(bits(a), bits(b), "{name} of {g:?}, batch {batch}, {oc} channels");
            }
        }
    }

    #[test]
    fn native_parallel_equals_serial_bitwise() {
        if !native() {
            return;
        }
        let g = Conv2dGeometry::new(8, 16, 16, 5, 1, 2);
        let parallel = with_mode(Mode::Parallel, || run(false, &g, 9, 16, 3));
        let serial = with_mode(Mode::Serial, || run(false, &g, 9, 16, 3));
        assert_eq!(bits(&parallel.0), bits(&serial.0));
        assert_eq!(bits(&parallel.1), bits(&serial.1));
        assert_eq!(bits(&parallel.2), bits(&serial.2));
        assert_eq!(bits(&parallel.3), bits(&serial.3));
    }
}
