//! The AVX512_BF16 micro-kernel (12 x 32, `vdpbf16ps`) and its packers, which round the f32
//! operands to bf16 as they copy them (`vcvtne2ps2bf16`).
//!
//! `vdpbf16ps` multiplies 32 pairs of bf16 and adds each pair of products to one of 16 f32
//! lanes, so k is taken two steps at a time: the packed panels hold pairs of steps.
//!
//! * `b` panel (per K block of `kc` steps, `kc` rounded up to even): `[kc/2][32][2]` bf16,
//!   element `(p, j)` at `(p / 2) * 64 + 2 j + p % 2`. One pair of steps is 64 bf16, two zmm:
//!   lane `j` of vector `v` holds the pair of column `16 v + j`.
//! * `a` panel: the pair `(a[i, 2q], a[i, 2q + 1])` is one 32-bit word, broadcast to all
//!   lanes; in a row panel at `i * A_ROW_STRIDE + 2 q` (bf16 elements), in a column panel at
//!   `(q * 12 + i) * 2`.
//!
//! An odd `kc` is padded with a zero step in both panels (its products are `0 * 0`). Each
//! k-pair is 24 `vdpbf16ps` against 2 vector loads and 12 broadcasts: the f32 kernel's
//! instruction mix doing twice the multiply-adds.

use super::avx512::{first_lanes, store_tile, transpose_16x16};
use super::bf16::f32_to_bf16;
use super::{MicroKernel, PrefetchLines, StridedMat, A_ROW_STRIDE, PREFETCH_MIN_BYTES};
use std::arch::x86_64::*;

/// Rows of the register tile.
const MR: usize = 12;
/// Columns of the register tile: two zmm vectors of 16 f32 accumulators.
const NR: usize = 32;

/// The AVX512_BF16 tier of [`MicroKernel`] (needs AVX-512F and BW too).
pub(super) struct Avx512Bf16;

impl MicroKernel for Avx512Bf16 {
    type Packed = u16;
    const MR: usize = MR;
    const NR: usize = NR;
    // The operands must be rounded, so a is always packed.
    const READS_A_IN_PLACE: bool = false;

    fn panel_len(kc: usize) -> usize {
        kc.next_multiple_of(2) * NR
    }

    unsafe fn pack_a(dst: *mut u16, a: &StridedMat, i0: usize, rows: usize, p0: usize, kc: usize) {
        // SAFETY: forwarded contract (the CPU has the features, block inside a, dst valid).
        unsafe { pack_a(dst, a, i0, rows, p0, kc) }
    }

    unsafe fn pack_b(dst: *mut u16, b: &StridedMat, p0: usize, kc: usize, j0: usize, cols: usize) {
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
        a: *const u16,
        a_row_stride: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        prefetch: [PrefetchLines; 2],
    ) {
        super::dispatch_tile!(kc, rows, cols, a, a_row_stride, b, c, ldc, accumulate, prefetch; rows [4, 8, 12], lanes 16);
    }
}

/// The bits of a vector as 32 bf16 (any bits are a valid `__m512bh`).
#[inline(always)]
fn as_bh(x: __m512i) -> __m512bh {
    // SAFETY: both are 64 bytes of plain data.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
}

/// The bits of 32 bf16 as an integer vector.
#[inline(always)]
fn bh_bits(x: __m512bh) -> __m512i {
    // SAFETY: both are 64 bytes of plain data.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(x) }
}

/// `c[ROWS x 16*VECS] (+)= a[ROWS x kc] * b_panel[kc x 16*VECS]` (12 x 32 for a full tile)
/// in `kc.div_ceil(2)` steps of `vdpbf16ps`, the panels laid out as the module says (a column
/// panel when `COLUMNS`).
///
/// # Safety
/// AVX-512F and AVX512_BF16 are available; `a` holds the `ROWS x kc` block as described; `b`
/// holds `kc.div_ceil(2) * 64` bf16 and is 64-byte aligned; `c` is valid for a
/// `ROWS x 16*VECS` tile with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel<const COLUMNS: bool, const ROWS: usize, const VECS: usize>(
    kc: usize,
    a: *const u16,
    a_row_stride: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    prefetch: [PrefetchLines; 2],
) {
    let pairs = kc.div_ceil(2);
    // acc[i][v] holds c[i, 16v .. 16v + 16]: 24 zmm registers for a full tile.
    let mut acc = [[_mm512_setzero_ps(); VECS]; ROWS];
    // One pair of steps: c[0..12, 0..32] += a[0..12, 2q..2q+2] * b[2q..2q+2, 0..32].
    let mut step = |q: usize| {
        let mut b_q = [as_bh(_mm512_setzero_si512()); VECS];
        for (v, b_qv) in b_q.iter_mut().enumerate() {
            // SAFETY: q < pairs, so pair q of the b panel is inside it; its 64-bf16 rows are
            // 128 bytes from a 64-byte aligned start.
            *b_qv = as_bh(unsafe { _mm512_load_si512(b.add(q * 2 * NR + 32 * v).cast()) });
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let offset = if COLUMNS { (q * MR + i) * 2 } else { i * a_row_stride + 2 * q };
            // SAFETY: i < ROWS and q < pairs: inside the block of a (two bf16).
            let pair = unsafe { a.add(offset).cast::<i32>().read_unaligned() };
            let a_iq = as_bh(_mm512_set1_epi32(pair));
            for (acc_iv, &b_qv) in acc_i.iter_mut().zip(&b_q) {
                *acc_iv = _mm512_dpbf16_ps(*acc_iv, a_iq, b_qv);
            }
        }
    };
    // The first steps also prefetch, two lines of each walk per step (the walk hands out up
    // to kc lines, and there are half as many steps).
    let prefetch_steps = prefetch[0].count.max(prefetch[1].count).div_ceil(2).min(pairs);
    for q in 0..prefetch_steps {
        for pf in &prefetch {
            for line in [2 * q, 2 * q + 1] {
                if line < pf.count {
                    _mm_prefetch::<_MM_HINT_T1>(pf.start.wrapping_add(line * pf.stride).cast());
                }
            }
        }
        step(q);
    }
    for q in prefetch_steps..pairs {
        step(q);
    }
    // c is valid for the tile (the caller's contract).
    store_tile!(acc, c, ldc, accumulate);
}

/// Lane order that interleaves the two halves of a vector of 32 bf16: lane `2j` takes lane
/// `j`, lane `2j + 1` takes lane `16 + j`.
const INTERLEAVE: [i16; 32] = {
    let mut idx = [0; 32];
    let mut j = 0;
    while j < 16 {
        idx[2 * j] = j as i16;
        idx[2 * j + 1] = 16 + j as i16;
        j += 1;
    }
    idx
};

/// Rounds `lo` and `hi` (16 f32 each) to bf16 and interleaves them: lane `2j` is `lo[j]`, lane
/// `2j + 1` is `hi[j]` (the pair of steps of column `j`, or of row `j`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn round_pairs(lo: __m512, hi: __m512) -> __m512i {
    // SAFETY: INTERLEAVE is 64 readable bytes.
    let idx = unsafe { _mm512_loadu_si512(INTERLEAVE.as_ptr().cast()) };
    // cvtne2ps puts its second operand in the low 16 lanes.
    _mm512_permutexvar_epi16(idx, bh_bits(_mm512_cvtne2ps_pbh(hi, lo)))
}

/// Loads up to 32 floats from `src` (`w` of them, zero past), rounded to bf16 in order.
///
/// # Safety
/// AVX-512F, BW and AVX512_BF16 are available; `src` is valid for `w` float reads.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn round_run(src: *const f32, w: usize) -> __m512i {
    // SAFETY: lanes < w are readable; masked-off lanes are not accessed.
    let (lo, hi) = unsafe {
        (
            _mm512_maskz_loadu_ps(first_lanes(w), src),
            _mm512_maskz_loadu_ps(first_lanes(w.saturating_sub(16)), src.wrapping_add(16)),
        )
    };
    bh_bits(_mm512_cvtne2ps_pbh(hi, lo))
}

/// A mask of the first `w` (<= 32) 16-bit lanes.
#[inline(always)]
fn first_words(w: usize) -> __mmask32 {
    if w >= 32 {
        u32::MAX
    } else {
        (1u32 << w) - 1
    }
}

/// Rounds `src` to bf16 into `dst[..src.len()]`, 32 at a time (`vcvtne2ps2bf16`).
///
/// # Safety
/// AVX-512F, BW and AVX512_BF16 are available; `dst` is valid for `src.len()` writes.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn round_into(dst: *mut u16, src: &[f32]) {
    for p in (0..src.len()).step_by(32) {
        let w = (src.len() - p).min(32);
        // SAFETY: src holds w floats from p, dst has room for w bf16 there; masked lanes are
        // not accessed.
        unsafe {
            _mm512_mask_storeu_epi16(dst.add(p).cast(), first_words(w), round_run(src.as_ptr().add(p), w))
        };
    }
}

/// Writes one pair of steps of a packed `b` (the layout of the module documentation): column
/// `j` of `even` and `odd` (rows `2q`, `2q + 1` of `b`, `odd` zero if `None`) to
/// `dst[(j / 32) * panel_stride + 2 (j % 32) + s]`, the columns of the last panel past
/// `even.len()` as zeros.
///
/// # Safety
/// AVX-512F, BW and AVX512_BF16 are available; `odd` (if any) is as long as `even`; `dst` is
/// valid for writes of `64` bf16 at each of `even.len().div_ceil(32)` panels `panel_stride`
/// apart.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_pair(dst: *mut u16, panel_stride: usize, even: &[f32], odd: Option<&[f32]>) {
    let n = even.len();
    for t in 0..n.div_ceil(NR) {
        for half in 0..2 {
            let j = t * NR + 16 * half;
            let mask = first_lanes(n.saturating_sub(j));
            // SAFETY: lanes < n - j from column j are inside both rows; masked loads touch no
            // others; the 32 bf16 stored lie inside pair q of panel t.
            unsafe {
                let e = _mm512_maskz_loadu_ps(mask, even.as_ptr().wrapping_add(j));
                let o = match odd {
                    Some(odd) => _mm512_maskz_loadu_ps(mask, odd.as_ptr().wrapping_add(j)),
                    None => _mm512_setzero_ps(),
                };
                _mm512_storeu_si512(dst.add(t * panel_stride + 32 * half).cast(), round_pairs(e, o));
            }
        }
    }
}

/// Lane orders of `_mm512_permutex2var_epi16` that interleave two vectors of 32 bf16 `e`
/// and `o`: the first gives `e[0], o[0], ..., e[15], o[15]`, the second the same of lanes
/// 16..32 (index 32 + j is lane j of the second operand).
const ZIP: [[i16; 32]; 2] = {
    let mut idx = [[0; 32]; 2];
    let mut j = 0;
    while j < 16 {
        idx[0][2 * j] = j as i16;
        idx[0][2 * j + 1] = 32 + j as i16;
        idx[1][2 * j] = 16 + j as i16;
        idx[1][2 * j + 1] = 48 + j as i16;
        j += 1;
    }
    idx
};

/// [`pack_pair`] for rows already in bf16: column `j` of `even` and `odd` (zero if `None`)
/// to `dst[(j / 32) * panel_stride + 2 (j % 32) + s]`, zero columns past `even.len()`.
///
/// # Safety
/// As [`pack_pair`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_pair_bits(dst: *mut u16, panel_stride: usize, even: &[u16], odd: Option<&[u16]>) {
    let n = even.len();
    // SAFETY: ZIP is 2 x 64 readable bytes.
    let zip =
        unsafe { [_mm512_loadu_si512(ZIP[0].as_ptr().cast()), _mm512_loadu_si512(ZIP[1].as_ptr().cast())] };
    for t in 0..n.div_ceil(NR) {
        let j = t * NR;
        let mask = first_words(n - j);
        // SAFETY: words < n - j from column j are inside both rows; masked loads touch no
        // others; the 64 bf16 stored are pair q of panel t.
        unsafe {
            let e = _mm512_maskz_loadu_epi16(mask, even.as_ptr().add(j).cast());
            let o = match odd {
                Some(odd) => _mm512_maskz_loadu_epi16(mask, odd.as_ptr().add(j).cast()),
                None => _mm512_setzero_si512(),
            };
            let at = dst.add(t * panel_stride);
            _mm512_storeu_si512(at.cast(), _mm512_permutex2var_epi16(e, zip[0], o));
            _mm512_storeu_si512(at.add(32).cast(), _mm512_permutex2var_epi16(e, zip[1], o));
        }
    }
}

/// [`MicroKernel::pack_a`] for the bf16 kernel: a row panel of bf16 (rows of `a` contiguous)
/// or a column panel of pairs, zero rows past `rows` and a zero step past an odd `kc`.
///
/// # Safety
/// As [`MicroKernel::pack_a`] (with AVX-512F, BW and AVX512_BF16).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_a(dst: *mut u16, a: &StridedMat, i0: usize, rows: usize, p0: usize, kc: usize) {
    let padded = kc.next_multiple_of(2);
    if a.rows_contiguous() {
        // The same columns of the next strip are fetched into L2 while the kernel runs on
        // this one, when `a` is out of the caches and the strip is not one contiguous run
        // that the hardware prefetchers follow (kc < k). The kernel's own prefetching, a few
        // rows per call, falls short when the strip meets few panels of b: the copy waited on
        // memory for 40 % of the time of 32768x1600x64. With the driver's strip-first order
        // (b packed beforehand) the packs of one strip's K blocks fetch the whole next strip,
        // spread over its work: 125 -> 156 GFLOP/s on that product, 159 -> 181 on
        // 8192x1600x128 (one thread); on the 75-step one it cost 9 %, hence the condition.
        let prefetch = kc < a.cols && a.rows * a.cols * 4 > PREFETCH_MIN_BYTES;
        for i in 0..MR {
            for p in (0..padded).step_by(32) {
                if prefetch {
                    // Any address: a prefetch never faults.
                    let next = a.ptr(i0 + MR + i, p0 + p);
                    _mm_prefetch::<_MM_HINT_T1>(next.cast());
                    _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(16).cast());
                }
                // The load stops at kc, the store at the padded length (<= A_ROW_STRIDE).
                let v = if i < rows {
                    // SAFETY: row i0+i is contiguous from column p0+p for kc-p floats.
                    unsafe { round_run(a.ptr(i0 + i, p0 + p), (kc - p).min(32)) }
                } else {
                    _mm512_setzero_si512()
                };
                // SAFETY: lanes < padded-p of row i of the panel lie inside its A_ROW_STRIDE.
                unsafe {
                    _mm512_mask_storeu_epi16(dst.add(i * A_ROW_STRIDE + p).cast(), first_words(padded - p), v)
                };
            }
        }
    } else if a.row_stride == 1 {
        // Columns of a are contiguous (a transposed): each pair of steps is two masked loads,
        // rounded and interleaved into 12 pairs.
        let mask = first_lanes(rows);
        for q in 0..padded / 2 {
            let p = 2 * q;
            // SAFETY: lanes < rows of columns p0+p (and p0+p+1 if < kc) are inside a;
            // masked loads touch no others.
            let (even, odd) = unsafe {
                let even = _mm512_maskz_loadu_ps(mask, a.ptr(i0, p0 + p));
                let odd = if p + 1 < kc {
                    _mm512_maskz_loadu_ps(mask, a.ptr(i0, p0 + p + 1))
                } else {
                    _mm512_setzero_ps()
                };
                (even, odd)
            };
            // SAFETY: pair q of the panel is 24 bf16 at (q * 12) * 2, inside the
            // kc.div_ceil(2) * 24 <= A_ROW_STRIDE * 12 written.
            unsafe {
                _mm512_mask_storeu_epi16(
                    dst.add(q * MR * 2).cast(),
                    first_words(2 * MR),
                    round_pairs(even, odd),
                )
            };
        }
    } else {
        // Any strides: element by element.
        for q in 0..padded / 2 {
            for i in 0..MR {
                for s in 0..2 {
                    let p = 2 * q + s;
                    let v = if i < rows && p < kc { f32_to_bf16(a.at(i0 + i, p0 + p)) } else { 0 };
                    // SAFETY: inside the column panel, as above.
                    unsafe { *dst.add((q * MR + i) * 2 + s) = v };
                }
            }
        }
    }
}

/// [`MicroKernel::pack_b`] for the bf16 kernel: `[kc/2][32][2]` panels (see the module
/// documentation), zero columns past `cols` and a zero step past an odd `kc`.
///
/// # Safety
/// As [`MicroKernel::pack_b`] (with AVX-512F, BW and AVX512_BF16).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_b(dst: *mut u16, b: &StridedMat, p0: usize, kc: usize, j0: usize, cols: usize) {
    let panels = cols.div_ceil(NR);
    let (pairs, panel_len) = (kc.div_ceil(2), Avx512Bf16::panel_len(kc));
    if b.col_stride == 1 {
        // Rows of b are contiguous (b not transposed): two rows at a time, 16 columns of each
        // rounded and interleaved into one vector of pairs.
        for q in 0..pairs {
            let p = 2 * q;
            for t in 0..panels {
                for half in 0..2 {
                    let j = t * NR + 16 * half;
                    let mask = first_lanes(cols.saturating_sub(j));
                    // SAFETY: lanes < cols-j of rows p0+p (and p0+p+1 if < kc) from column
                    // j0+j are inside b; masked loads touch no others. Pair q of panel t is
                    // 64 bf16 (128 bytes), 64-byte aligned as panel_len is a multiple of 64.
                    unsafe {
                        let even = _mm512_maskz_loadu_ps(mask, b.ptr(p0 + p, j0 + j));
                        let odd = if p + 1 < kc {
                            _mm512_maskz_loadu_ps(mask, b.ptr(p0 + p + 1, j0 + j))
                        } else {
                            _mm512_setzero_ps()
                        };
                        let at = dst.add(t * panel_len + q * 2 * NR + 32 * half);
                        _mm512_store_si512(at.cast(), round_pairs(even, odd));
                    }
                }
            }
        }
    } else if b.row_stride == 1 {
        // Columns of b are contiguous along k (b transposed): 32 steps of a column round to
        // 16 pairs, one 32-bit lane each, so a 16 x 16 transpose of such lanes turns 16
        // columns into 16 vectors of pairs.
        for t in 0..panels {
            for half in 0..2 {
                let j = t * NR + 16 * half;
                let h = cols.saturating_sub(j).min(16);
                for p in (0..kc).step_by(32) {
                    let w = (kc - p).min(32);
                    let mut r = [_mm512_setzero_ps(); 16];
                    // Constant indices (the loop is unrolled), so r stays in registers.
                    for (q, r_q) in r.iter_mut().enumerate() {
                        if q < h {
                            // SAFETY: rows p0+p..p0+p+w of column j0+j+q are inside b.
                            *r_q = _mm512_castsi512_ps(unsafe { round_run(b.ptr(p0 + p, j0 + j + q), w) });
                        }
                    }
                    transpose_16x16(&mut r);
                    for (s, &pair) in r.iter().enumerate().take(w.div_ceil(2)) {
                        // SAFETY: pair p/2+s < pairs of panel t, at offset 32*half: 64
                        // bf16-aligned, so 64-byte aligned.
                        unsafe {
                            let at = dst.add(t * panel_len + (p / 2 + s) * 2 * NR + 32 * half);
                            _mm512_store_si512(at.cast(), _mm512_castps_si512(pair));
                        }
                    }
                }
            }
        }
    } else {
        // Any strides: element by element.
        for t in 0..panels {
            for p in 0..2 * pairs {
                for jj in 0..NR {
                    let j = t * NR + jj;
                    let v = if p < kc && j < cols { f32_to_bf16(b.at(p0 + p, j0 + j)) } else { 0 };
                    // SAFETY: inside panel t (p < 2 * pairs, jj < NR).
                    unsafe { *dst.add(t * panel_len + (p / 2) * 2 * NR + 2 * jj + p % 2) = v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar rounding is the instruction's, bit for bit: every special class and
    /// pseudo-random bit patterns, a million in all, through `vcvtne2ps2bf16` and `f32_to_bf16`.
    #[test]
    fn scalar_rounding_matches_vcvtne2ps2bf16() {
        if !super::super::Bf16Backend::Avx512Bf16.is_available() {
            return;
        }
        let specials = [
            0x0000_0000u32,
            0x8000_0000,
            0x0000_0001,
            0x807f_ffff,
            0x0040_0000,
            0x0080_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7f80_0001,
            0xffc0_0000,
            0x7fff_ffff,
            0x7f7f_ffff,
            0x7f7f_8000,
            0x3f80_8000,
            0x3f81_8000,
            0x3f80_7fff,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut bits: Vec<u32> = specials.to_vec();
        bits.extend((specials.len()..1 << 20).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 16) as u32
        }));
        for chunk in bits.chunks_exact(32) {
            let mut out = [0u16; 32];
            // SAFETY: the features were checked; chunk holds 32 floats, out 32 bf16.
            unsafe {
                let v = round_run(chunk.as_ptr().cast(), 32);
                _mm512_storeu_si512(out.as_mut_ptr().cast(), v);
            }
            for (&x, &got) in chunk.iter().zip(&out) {
                assert_eq!(f32_to_bf16(f32::from_bits(x)), got, "{x:#010x}");
            }
        }
    }
}
