//! The AVX2 + FMA micro-kernel (6 x 16), for x86-64 CPUs without AVX-512. Its packers are
//! the portable ones: only the kernel needs the wider registers.

use super::{pack_a_columns, pack_a_rows, pack_b_generic, MicroKernel, PrefetchLines, StridedMat};
use std::arch::x86_64::*;

/// Rows of the register tile.
const MR: usize = 6;
/// Columns of the register tile: two ymm vectors of 8 floats.
const NR: usize = 16;

/// The AVX2 + FMA tier of [`MicroKernel`].
pub(super) struct Avx2;

impl MicroKernel for Avx2 {
    type Packed = f32;
    const MR: usize = MR;
    const NR: usize = NR;
    const READS_A_IN_PLACE: bool = true;

    unsafe fn pack_a(dst: *mut f32, a: &StridedMat, i0: usize, rows: usize, p0: usize, kc: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            if a.rows_contiguous() {
                pack_a_rows(dst, a, i0, rows, p0, kc, MR)
            } else {
                pack_a_columns(dst, a, i0, rows, p0, kc, MR)
            }
        }
    }

    unsafe fn pack_b(dst: *mut f32, b: &StridedMat, p0: usize, kc: usize, j0: usize, cols: usize) {
        // SAFETY: forwarded contract.
        unsafe { pack_b_generic(dst, b, p0, kc, j0, cols, NR) }
    }

    fn tile_extent(rows: usize, cols: usize) -> (usize, usize) {
        (rows.next_multiple_of(2), cols.next_multiple_of(8))
    }

    unsafe fn kernel(
        kc: usize,
        rows: usize,
        cols: usize,
        a: *const f32,
        a_row_stride: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        prefetch: [PrefetchLines; 2],
    ) {
        super::dispatch_tile!(kc, rows, cols, a, a_row_stride, b, c, ldc, accumulate, prefetch; rows [2, 4, 6], lanes 8);
    }
}

/// `c[ROWS x 8*VECS] (+)= a[ROWS x kc] * b_panel[kc x 8*VECS]` (6 x 16 for a full tile),
/// where `a[i, p]` is at `a[p * 6 + i]` for a column panel (`COLUMNS`), else at
/// `a[i * a_row_stride + p]`.
///
/// # Safety
/// AVX2 and FMA are available; `a` holds the `ROWS x kc` block as described; `b` holds
/// `kc * 16` floats and is 64-byte aligned; `c` is valid for a `ROWS x 8*VECS` tile with
/// row stride `ldc`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const COLUMNS: bool, const ROWS: usize, const VECS: usize>(
    kc: usize,
    a: *const f32,
    a_row_stride: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    prefetch: [PrefetchLines; 2],
) {
    // acc[i][v] holds c[i, 8v .. 8v + 8]: 12 ymm registers for a full tile.
    let mut acc = [[_mm256_setzero_ps(); VECS]; ROWS];
    // One step of k: c[0..6, 0..16] += a[0..6, p] * b[p, 0..16].
    let mut step = |p: usize| {
        let mut b_p = [_mm256_setzero_ps(); VECS];
        for (v, b_pv) in b_p.iter_mut().enumerate() {
            // SAFETY: p < kc, so row p of the b panel is inside it; its rows are 64 bytes
            // from a 64-byte aligned start.
            *b_pv = unsafe { _mm256_load_ps(b.add(p * NR + 8 * v)) };
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let offset = if COLUMNS { p * MR + i } else { i * a_row_stride + p };
            // SAFETY: i < ROWS and p < kc: inside the block of a.
            let a_ip = _mm256_set1_ps(unsafe { *a.add(offset) });
            for (acc_iv, &b_pv) in acc_i.iter_mut().zip(&b_p) {
                *acc_iv = _mm256_fmadd_ps(a_ip, b_pv, *acc_iv);
            }
        }
    };
    let prefetch_steps = prefetch[0].count.max(prefetch[1].count).min(kc);
    for p in 0..prefetch_steps {
        for pf in &prefetch {
            if p < pf.count {
                _mm_prefetch::<_MM_HINT_T1>(pf.start.wrapping_add(p * pf.stride).cast());
            }
        }
        step(p);
    }
    // Unrolled by 4: with 256-bit vectors the FMAs share ports 0 and 1 with scalar
    // instructions, so the loop's own bookkeeping costs FMA slots.
    let mut p = prefetch_steps;
    while p + 4 <= kc {
        step(p);
        step(p + 1);
        step(p + 2);
        step(p + 3);
        p += 4;
    }
    for p in p..kc {
        step(p);
    }
    for (i, acc_i) in acc.iter().enumerate() {
        for (v, &sum) in acc_i.iter().enumerate() {
            // SAFETY: (i, 8v..8v+8) is inside the ROWS x 8*VECS tile of c.
            unsafe {
                let dst = c.add(i * ldc + 8 * v);
                let value = if accumulate { _mm256_add_ps(_mm256_loadu_ps(dst), sum) } else { sum };
                _mm256_storeu_ps(dst, value);
            }
        }
    }
}
