//! The AVX-512F micro-kernel (12 x 32) and its packers.

use super::{pack_a_columns, pack_a_rows, pack_b_generic, MicroKernel, PrefetchLines, StridedMat};
use std::arch::x86_64::*;

/// Rows of the register tile.
const MR: usize = 12;
/// Columns of the register tile: two zmm vectors of 16 floats.
const NR: usize = 32;

/// The AVX-512F tier of [`MicroKernel`].
pub(super) struct Avx512;

impl MicroKernel for Avx512 {
    type Packed = f32;
    const MR: usize = MR;
    const NR: usize = NR;
    const READS_A_IN_PLACE: bool = true;

    unsafe fn pack_a(dst: *mut f32, a: &StridedMat, i0: usize, rows: usize, p0: usize, kc: usize) {
        // SAFETY: forwarded contract (AVX-512F present, block inside a, dst valid).
        unsafe { pack_a(dst, a, i0, rows, p0, kc) }
    }

    unsafe fn pack_b(dst: *mut f32, b: &StridedMat, p0: usize, kc: usize, j0: usize, cols: usize) {
        // SAFETY: forwarded contract.
        unsafe { pack_b(dst, b, p0, kc, j0, cols) }
    }

    fn tile_extent(rows: usize, cols: usize) -> (usize, usize) {
        (rows.next_multiple_of(4), cols.next_multiple_of(16))
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
        super::dispatch_tile!(kc, rows, cols, a, a_row_stride, b, c, ldc, accumulate, prefetch; rows [4, 8, 12], lanes 16);
    }
}

/// `c[ROWS x 16*VECS] (+)= a[ROWS x kc] * b_panel[kc x 16*VECS]` (12 x 32 for a full tile),
/// where `a[i, p]` is at `a[p * 12 + i]` for a column panel (`COLUMNS`), else at
/// `a[i * a_row_stride + p]`.
///
/// # Safety
/// AVX-512F is available; `a` holds the `ROWS x kc` block as described; `b` holds
/// `kc * 32` floats and is 64-byte aligned; `c` is valid for a `ROWS x 16*VECS` tile with
/// row stride `ldc`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
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
    // acc[i][v] holds c[i, 16v .. 16v + 16]: 24 zmm registers for a full tile.
    let mut acc = [[_mm512_setzero_ps(); VECS]; ROWS];
    // One step of k: c[0..12, 0..32] += a[0..12, p] * b[p, 0..32].
    let mut step = |p: usize| {
        let mut b_p = [_mm512_setzero_ps(); VECS];
        for (v, b_pv) in b_p.iter_mut().enumerate() {
            // SAFETY: p < kc, so row p of the b panel is inside it; its rows are 128 bytes
            // from a 64-byte aligned start.
            *b_pv = unsafe { _mm512_load_ps(b.add(p * NR + 16 * v)) };
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let offset = if COLUMNS { p * MR + i } else { i * a_row_stride + p };
            // SAFETY: i < ROWS and p < kc: inside the block of a.
            let a_ip = _mm512_set1_ps(unsafe { *a.add(offset) });
            for (acc_iv, &b_pv) in acc_i.iter_mut().zip(&b_p) {
                *acc_iv = _mm512_fmadd_ps(a_ip, b_pv, *acc_iv);
            }
        }
    };
    // The first steps also prefetch (into L2, for a later block; see PrefetchWalk); the
    // rest run without the bookkeeping.
    let prefetch_steps = prefetch[0].count.max(prefetch[1].count).min(kc);
    for p in 0..prefetch_steps {
        for pf in &prefetch {
            if p < pf.count {
                _mm_prefetch::<_MM_HINT_T1>(pf.start.wrapping_add(p * pf.stride).cast());
            }
        }
        step(p);
    }
    for p in prefetch_steps..kc {
        step(p);
    }
    store_tile!(acc, c, ldc, accumulate);
}

/// `c[ROWS x 16*VECS] (+)= acc`: the end of a micro-kernel, `acc[i][v]` (an array of zmm
/// accumulators) holding `c[i, 16v .. 16v + 16]`; adds to `c` when `accumulate`, else
/// overwrites it unread. A macro, as a function was not inlined (the accumulators went
/// through the stack). Expands to unsafe code: the caller guarantees AVX-512F and that `c`
/// is valid for reads and writes of the tile with row stride `ldc`.
macro_rules! store_tile {
    ($acc:expr, $c:expr, $ldc:expr, $accumulate:expr) => {
        for (i, acc_i) in $acc.iter().enumerate() {
            for (v, &sum) in acc_i.iter().enumerate() {
                // SAFETY: (i, 16v..16v+16) is inside the tile of c (the caller's contract).
                unsafe {
                    let dst = $c.add(i * $ldc + 16 * v);
                    let value = if $accumulate { _mm512_add_ps(_mm512_loadu_ps(dst), sum) } else { sum };
                    _mm512_storeu_ps(dst, value);
                }
            }
        }
    };
}
pub(super) use store_tile;

/// Transposes the 16 x 16 matrix whose rows are `r[0..16]`, in registers (64 shuffles).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn transpose_16x16(r: &mut [__m512; 16]) {
    // After the two unpack stages, u[4g + c] holds, in 128-bit lane l, column 4l + c of
    // rows 4g..4g + 4.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let t0 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]);
        let t1 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
        let t2 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
        let t3 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
        let (t0, t1) = (_mm512_castps_pd(t0), _mm512_castps_pd(t1));
        let (t2, t3) = (_mm512_castps_pd(t2), _mm512_castps_pd(t3));
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // Then gather lane l of the four row groups: column 4l + c.
    for c in 0..4 {
        let even01 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]); // lanes 0,2 of g0, g1
        let odd01 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]); // lanes 1,3 of g0, g1
        let even23 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let odd23 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
        r[c] = _mm512_shuffle_f32x4::<0x88>(even01, even23);
        r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(even01, even23);
        r[4 + c] = _mm512_shuffle_f32x4::<0x88>(odd01, odd23);
        r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(odd01, odd23);
    }
}

/// A mask of the first `w` (<= 16) lanes.
#[inline(always)]
pub(super) fn first_lanes(w: usize) -> __mmask16 {
    if w >= 16 {
        0xFFFF
    } else {
        (1u16 << w) - 1
    }
}

/// Loads `rows` (<= 16) vectors of `w` (<= 16) floats, vector `q` from `ptr(q)`, zero
/// elsewhere; transposes them; and hands column `s` (`s < w`) to `store(s, column)`.
///
/// # Safety
/// AVX-512F is available; `ptr(q)` for `q < rows` is valid for `w` float reads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(
    rows: usize,
    w: usize,
    ptr: impl Fn(usize) -> *const f32,
    mut store: impl FnMut(usize, __m512),
) {
    let mask = first_lanes(w);
    let mut r = [_mm512_setzero_ps(); 16];
    // Constant indices (the loop is unrolled), so r stays in registers.
    for (q, r_q) in r.iter_mut().enumerate() {
        if q < rows {
            // SAFETY: the caller's contract: lanes < w of row q are readable; masked-off
            // lanes are not accessed.
            *r_q = unsafe { _mm512_maskz_loadu_ps(mask, ptr(q)) };
        }
    }
    transpose_16x16(&mut r);
    for (s, &col) in r.iter().enumerate() {
        if s < w {
            store(s, col);
        }
    }
}

/// [`MicroKernel::pack_a`] for AVX-512F.
///
/// # Safety
/// As [`MicroKernel::pack_a`].
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(dst: *mut f32, a: &StridedMat, i0: usize, rows: usize, p0: usize, kc: usize) {
    if a.rows_contiguous() {
        // SAFETY: forwarded contract.
        unsafe { pack_a_rows(dst, a, i0, rows, p0, kc, MR) };
    } else if a.row_stride == 1 {
        // Columns of a are contiguous (a transposed): each step of k is one masked copy.
        let mask = first_lanes(rows);
        for p in 0..kc {
            // SAFETY: lanes < rows of column p0+p are inside a (masked loads touch no
            // others); row p of the panel holds 12 floats, and lanes 12..16 of the store
            // are masked off.
            unsafe {
                let col = _mm512_maskz_loadu_ps(mask, a.ptr(i0, p0 + p));
                _mm512_mask_storeu_ps(dst.add(p * MR), 0x0FFF, col);
            }
        }
    } else {
        // SAFETY: forwarded contract.
        unsafe { pack_a_columns(dst, a, i0, rows, p0, kc, MR) };
    }
}

/// [`MicroKernel::pack_b`] for AVX-512F: 32-column panels.
///
/// # Safety
/// As [`MicroKernel::pack_b`].
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(dst: *mut f32, b: &StridedMat, p0: usize, kc: usize, j0: usize, cols: usize) {
    let panels = cols.div_ceil(NR);
    if b.col_stride == 1 {
        // Rows of b are contiguous (b not transposed): walk each row once, left to right
        // (one sequential stream), dealing 32 floats to each panel.
        for p in 0..kc {
            for t in 0..panels {
                let rest = cols - t * NR;
                let (m0, m1) = (first_lanes(rest), first_lanes(rest.saturating_sub(16)));
                let src = b.ptr(p0 + p, j0 + t * NR);
                // SAFETY: lanes < rest of row p0+p from column j0+32t are inside b (masked
                // loads touch no others); row p of panel t is 32 floats, 64-byte aligned.
                unsafe {
                    let row = dst.add((t * kc + p) * NR);
                    _mm512_store_ps(row, _mm512_maskz_loadu_ps(m0, src));
                    _mm512_store_ps(row.add(16), _mm512_maskz_loadu_ps(m1, src.wrapping_add(16)));
                }
            }
        }
    } else if b.row_stride == 1 {
        // Columns of b are contiguous along k (b transposed): turn 16 x 16 blocks.
        for t in 0..panels {
            for half in 0..2 {
                let j = t * NR + 16 * half;
                let h = cols.saturating_sub(j).min(16);
                for p in (0..kc).step_by(16) {
                    let w = (kc - p).min(16);
                    // SAFETY: columns j0+j+q (q < h) and rows p0+p..p0+p+w lie inside b;
                    // column s lands in row p+s < kc of panel t at offset 16*half, 64-byte
                    // aligned.
                    unsafe {
                        let panel = dst.add(t * kc * NR + 16 * half);
                        transpose_block(
                            h,
                            w,
                            |q| b.ptr(p0 + p, j0 + j + q),
                            |s, col| _mm512_store_ps(panel.add((p + s) * NR), col),
                        );
                    }
                }
            }
        }
    } else {
        // SAFETY: forwarded contract.
        unsafe { pack_b_generic(dst, b, p0, kc, j0, cols, NR) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_16x16_transposes() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let src: Vec<f32> = (0..256).map(|v| v as f32).collect();
        let mut out = [0.0f32; 256];
        // SAFETY: AVX-512F checked above; all pointers index the 256-float arrays.
        unsafe {
            transpose_block(
                16,
                16,
                |q| src.as_ptr().add(16 * q),
                |s, col| _mm512_storeu_ps(out.as_mut_ptr().add(16 * s), col),
            );
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(out[16 * j + i], src[16 * i + j], "({i}, {j})");
            }
        }
    }
}
