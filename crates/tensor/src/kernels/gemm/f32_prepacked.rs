//! The `b` operand of the AVX-512 f32 GEMM packed by its producer: [`PackedF32B`] and
//! [`sgemm_prepacked_b`].
//!
//! [`sgemm`](super::sgemm) packs `b` into `NR`-column panels on every call. When the caller
//! makes `b` itself, a row at a time (im2col), it can write the rows straight into those
//! panels instead of into a row-major matrix that the packing then reads back: for conv2 of
//! the CIFAR-10 CNN that matrix is 1.6 MB per image, written and read once more than needed.
//! The kernel meets the same values in the same order as after its own packing, so the
//! results are [`sgemm`](super::sgemm)'s bit for bit (tests).

use super::driver::{k_block, Prepacked};
use super::{gemm_backend, product_is_empty, Dest, GemmBackend, StridedMat};

/// Columns of a panel of the AVX-512 kernel (its `NR`).
const NR: usize = 32;

/// 64 bytes of f32, the unit of [`PackedF32B`] (the panels are 64-byte aligned).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A `k x n` f32 matrix in the packed `b` layout of the AVX-512 f32 kernel, as the driver
/// packs all of `b` once: K blocks of `k_block(k)` steps, each block `n.div_ceil(32)` panels
/// of `[steps][32]` values, zero columns past `n`. Filled a row at a time
/// ([`PackedF32B::set_row`]); reused across calls, it allocates only when it grows.
#[derive(Clone, Debug, Default)]
pub struct PackedF32B {
    lines: Vec<Line>,
    rows: usize,
    cols: usize,
    /// Rows written since the last [`PackedF32B::reset`] (each once).
    written: usize,
}

impl PackedF32B {
    /// An empty matrix (0 x 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this a `rows x cols` matrix whose rows are all to be written again.
    pub fn reset(&mut self, rows: usize, cols: usize) {
        // Two lines per step and panel; the blocks are unpadded.
        let lines = cols.div_ceil(NR) * rows * 2;
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0.0; 16]));
        }
        (self.rows, self.cols, self.written) = (rows, cols, 0);
    }

    /// Writes row `p` as `values` (`cols` of them), with zeros past them in its last panel.
    pub fn set_row(&mut self, p: usize, values: &[f32]) {
        let (k, n) = (self.rows, self.cols);
        assert!(p < k, "PackedF32B::set_row: row {p} of {k}");
        assert_eq!(values.len(), n, "PackedF32B::set_row: {} values for {n} columns", values.len());
        let kc = k_block(k);
        let p0 = p / kc * kc;
        let panels = n.div_ceil(NR);
        // Block p0 / kc starts at p0 * panels * NR; its panels are (its steps) * NR apart.
        let (start, panel_stride) = (p0 * panels * NR + (p - p0) * NR, kc.min(k - p0) * NR);
        let data = flat(&mut self.lines);
        let mut chunks = values.chunks_exact(NR);
        for (j, chunk) in chunks.by_ref().enumerate() {
            data[start + j * panel_stride..][..NR].copy_from_slice(chunk);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let last = &mut data[start + (panels - 1) * panel_stride..][..NR];
            last[..rest.len()].copy_from_slice(rest);
            last[rest.len()..].fill(0.0);
        }
        self.written += 1;
    }

    /// Number of rows (`k`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (`n`).
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// The lines as a flat slice of f32.
fn flat(lines: &mut [Line]) -> &mut [f32] {
    // SAFETY: Line is 16 f32 with no padding (64 bytes, align 64), so the lines are
    // lines.len() * 16 consecutive f32.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<f32>(), lines.len() * 16) }
}

/// `c = a @ b` (or `c += a @ b` when `accumulate`), `c` row-major `[a.rows, b.cols]`, with `b`
/// packed already: the bits of [`sgemm`](super::sgemm) with the AVX-512 backend on the same
/// values. Panics unless [`gemm_backend`] is [`GemmBackend::Avx512`] (callers check it and
/// otherwise use [`sgemm`](super::sgemm)), or if a row of `b` was not written since its reset.
pub fn sgemm_prepacked_b(a: StridedMat, b: &PackedF32B, c: &mut [f32], accumulate: bool) {
    assert_eq!(gemm_backend(), GemmBackend::Avx512, "sgemm_prepacked_b: needs the AVX-512 backend");
    assert_eq!(
        b.written, b.rows,
        "sgemm_prepacked_b: {} of the {} rows of b were written",
        b.written, b.rows
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "sgemm_prepacked_b: a is {m}x{k} but b is {}x{n}", b.rows);
    assert_eq!(c.len(), m * n, "sgemm_prepacked_b: c has {} elements, expected [{m}, {n}]", c.len());
    // The shape of b; its data is never read (the packed panels are).
    let b_shape = StridedMat::shape_only(k, n);
    let mut dest = Dest { c, ldc: n, accumulate, bias: None };
    if product_is_empty(&a, &b_shape, &mut dest) {
        return;
    }
    let pre = Prepacked { a: None, b: Some(b.lines.as_ptr().cast::<u8>()) };
    #[cfg(target_arch = "x86_64")]
    super::driver::gemm_prepacked::<super::avx512::Avx512>(a, b_shape, dest, pre);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, b_shape, dest, pre);
        unreachable!("sgemm_prepacked_b: no AVX-512 off x86-64");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::sgemm;
    use crate::testing::randn;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn equals_sgemm_bitwise() {
        if gemm_backend() != GemmBackend::Avx512 {
            eprintln!("skipped: no AVX-512 backend on this CPU");
            return;
        }
        let mut packed = PackedF32B::new();
        // Several K blocks, edge panels and tiles, a row-major and a transposed a; the
        // CNN's conv2 and conv3 forward shapes; a packed b reused at another shape.
        for (seed, &(m, k, n, trans_a, accumulate)) in [
            (64, 1600, 256, false, true),
            (128, 1600, 64, false, false),
            (13, 700, 45, true, false),
            (1, 5, 1, false, true),
            (30, 1100, 97, false, false),
            (12, 16, 32, true, true),
        ]
        .iter()
        .enumerate()
        {
            let seed = seed as u64;
            let a_data = randn(m * k, seed);
            let b_data = randn(k * n, seed + 10);
            let c0 = randn(m * n, seed + 20);
            // [m, k], or the transpose of a row-major [k, m].
            let a = StridedMat::row_major(&a_data, m, k, trans_a);
            let mut want = c0.clone();
            sgemm(a, StridedMat::row_major(&b_data, k, n, false), &mut want, accumulate);
            packed.reset(k, n);
            // Rows in any order: each lands in its place.
            for p in (0..k).rev() {
                packed.set_row(p, &b_data[p * n..(p + 1) * n]);
            }
            let mut got = c0;
            sgemm_prepacked_b(a, &packed, &mut got, accumulate);
            assert_eq!(bits(&got), bits(&want), "{m}x{k}x{n} trans_a={trans_a}");
        }
    }

    #[test]
    #[should_panic(expected = "of the 3 rows of b were written")]
    fn an_unwritten_row_is_refused() {
        if gemm_backend() != GemmBackend::Avx512 {
            panic!("2 of the 3 rows of b were written (no AVX-512 here)");
        }
        let mut packed = PackedF32B::new();
        packed.reset(3, 4);
        packed.set_row(0, &[1.0; 4]);
        packed.set_row(2, &[1.0; 4]);
        sgemm_prepacked_b(StridedMat::row_major(&[1.0; 6], 2, 3, false), &packed, &mut [0.0; 8], false);
    }
}
