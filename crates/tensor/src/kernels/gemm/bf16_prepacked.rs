//! Operands of the native bf16 GEMM rounded (and packed) once by the caller:
//! [`sgemm_bf16_prepacked`] multiplies a [`Bf16Rows`] by an f32 matrix or by a
//! [`PackedBf16B`].
//!
//! [`sgemm_bf16`](super::sgemm_bf16) rounds both operands while it packs them, on every call.
//! That is wasted when an operand serves many products (a convolution's weight meets every
//! image of the batch) or when the caller makes the operand itself and can write it in the
//! kernel's layout directly (im2col): the f32 copy is written, read back and rounded. Here
//!
//! * `a` is a bf16 matrix stored by rows ([`Bf16Rows`]), which the kernel reads in place, as
//!   the f32 kernel reads a row-major `a`;
//! * `b` is either f32 (packed and rounded by the driver as usual) or already in the packed
//!   panel layout of the bf16 kernel ([`PackedBf16B`], filled a pair of rows at a time).
//!
//! The kernel meets the same bf16 values in the same order as in
//! [`sgemm_bf16`](super::sgemm_bf16) with [`Bf16Backend::Avx512Bf16`], so the results are
//! the same bit for bit. These operands need that backend: callers check [`bf16_backend`]
//! and otherwise use [`sgemm_bf16`](super::sgemm_bf16).

use super::driver::{k_block, Prepacked};
use super::{bf16_backend, f32_to_bf16, product_is_empty, Bf16Backend, Dest, StridedMat};
use std::ops::Range;

/// Row stride (elements) of a [`Bf16Rows`] of `cols` columns: whole pairs of steps, plus a
/// cache line when rows would lie a multiple of 2 KiB apart (the rows of a 12-row strip then
/// share a few L1 sets and evict each other, as for the f32 `a` read in place).
fn row_stride(cols: usize) -> usize {
    let stride = cols.next_multiple_of(2);
    if (stride * 2).is_multiple_of(2048) {
        stride + 32
    } else {
        stride
    }
}

/// Whether this CPU rounds with `vcvtne2ps2bf16` (else element by element, same bits).
fn vector_rounding() -> bool {
    bf16_backend() == Bf16Backend::Avx512Bf16
}

/// `src` rounded to bf16 ([`f32_to_bf16`]) into `dst` (as long), with `vcvtne2ps2bf16`
/// where the CPU has AVX512_BF16.
pub fn f32_to_bf16_slice(src: &[f32], dst: &mut [u16]) {
    round_slice(src, dst);
}

/// [`f32_to_bf16_slice`].
fn round_slice(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_bf16_slice: {} values for {} places", src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if vector_rounding() {
        // SAFETY: the CPU has the features (checked); dst holds src.len() elements.
        unsafe { super::avx512bf16::round_into(dst.as_mut_ptr(), src) };
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32_to_bf16(s);
    }
}

/// A `rows x cols` matrix of bf16 stored by rows, as [`sgemm_bf16_prepacked`] reads its `a`
/// operand: rows an even number of elements apart (plus a cache line when that would be a
/// multiple of 2 KiB), a zero past an odd last column (the kernel takes steps in pairs), and
/// zero rows up to a multiple of 4 (its smallest tile height). Reused across calls, it
/// allocates only when it grows.
#[derive(Clone, Debug, Default)]
pub struct Bf16Rows {
    data: Vec<u16>,
    rows: usize,
    cols: usize,
    stride: usize,
    /// Rows written since the last [`Bf16Rows::reset`] (each once): the product checks that
    /// all were.
    written: usize,
}

impl Bf16Rows {
    /// An empty matrix (0 x 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this a `rows x cols` matrix whose rows are all to be written again
    /// ([`Bf16Rows::set_row`]); the padding is zero.
    pub fn reset(&mut self, rows: usize, cols: usize) {
        let stride = row_stride(cols);
        let len = rows.next_multiple_of(4) * stride;
        if (rows, cols) != (self.rows, self.cols) {
            // The padding rows and column must be zero: start from zeros.
            self.data.clear();
            self.data.resize(len, 0);
        }
        (self.rows, self.cols, self.stride, self.written) = (rows, cols, stride, 0);
    }

    /// Writes row `i` as `values` rounded to bf16 (nearest even, [`f32_to_bf16`]).
    pub fn set_row(&mut self, i: usize, values: &[f32]) {
        assert!(i < self.rows, "Bf16Rows::set_row: row {i} of {}", self.rows);
        assert_eq!(
            values.len(),
            self.cols,
            "Bf16Rows::set_row: {} values for {} columns",
            values.len(),
            self.cols
        );
        let row = &mut self.data[i * self.stride..i * self.stride + self.cols];
        round_slice(values, row);
        self.written += 1;
    }

    /// Writes row `i` as bf16 bits: `fill` gets the row (`cols` elements) to overwrite, for a
    /// producer that has its values in bf16 already.
    pub fn set_row_bits(&mut self, i: usize, fill: impl FnOnce(&mut [u16])) {
        assert!(i < self.rows, "Bf16Rows::set_row_bits: row {i} of {}", self.rows);
        fill(&mut self.data[i * self.stride..i * self.stride + self.cols]);
        self.written += 1;
    }

    /// `src` rounded to bf16, replacing the contents.
    pub fn assign(&mut self, src: StridedMat) {
        self.reset(src.rows, src.cols);
        let mut row = vec![0.0f32; src.cols];
        for i in 0..src.rows {
            for (p, v) in row.iter_mut().enumerate() {
                *v = src.at(i, p);
            }
            self.set_row(i, &row);
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The bits of element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> u16 {
        assert!(
            i < self.rows && j < self.cols,
            "Bf16Rows::get: ({i}, {j}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.data[i * self.stride + j]
    }
}

/// 64 bytes of bf16: the unit of [`PackedBf16B`], whose panels the kernel loads aligned.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u16; 32]);

/// A `k x n` matrix of bf16 in the packed layout of the native bf16 kernel, as the driver
/// packs all of `b` once: K blocks of `k_block(k)` steps, each `n.div_ceil(32)` panels of
/// pairs of steps (`[kc/2][32][2]`, see `avx512bf16.rs`), zero columns past `n` and a zero
/// step past an odd `k`. Filled a pair of rows at a time ([`PackedBf16B::set_pair`]), so that
/// a producer such as im2col writes it without an f32 copy of the whole matrix. Reused across
/// calls, it allocates only when it grows.
#[derive(Clone, Debug, Default)]
pub struct PackedBf16B {
    lines: Vec<Line>,
    rows: usize,
    cols: usize,
    /// Pairs written since the last [`PackedBf16B::reset`] (each once).
    written: usize,
}

impl PackedBf16B {
    /// An empty matrix (0 x 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this a `rows x cols` matrix whose pairs of rows are all to be written again.
    pub fn reset(&mut self, rows: usize, cols: usize) {
        // Every block but the last is an even number of steps: all of it takes the room of
        // k.next_multiple_of(2) steps of every panel, one line per step pair and panel half.
        let lines = cols.div_ceil(32) * rows.next_multiple_of(2);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; 32]));
        }
        (self.rows, self.cols, self.written) = (rows, cols, 0);
    }

    /// Writes rows `p` and `p + 1` (`p` even) as `even` and `odd` rounded to bf16; `odd` is
    /// `None` exactly for the last row of an odd `k` (its pair takes a zero step).
    pub fn set_pair(&mut self, p: usize, even: &[f32], odd: Option<&[f32]>) {
        let (start, panel_stride) = self.pair_place(p, even.len(), odd.map(|o| o.len()));
        let (n, panels) = (self.cols, self.cols.div_ceil(32));
        let data: &mut [u16] = bytemuck_lines(&mut self.lines);
        #[cfg(target_arch = "x86_64")]
        if vector_rounding() {
            // SAFETY: the CPU has the features (checked); odd is as long as even; the pair of
            // each panel lies inside the block, inside `lines` (sized by reset).
            assert!(n == 0 || start + (panels - 1) * panel_stride + 64 <= data.len());
            unsafe { super::avx512bf16::pack_pair(data.as_mut_ptr().add(start), panel_stride, even, odd) };
            self.written += 1;
            return;
        }
        for j in 0..panels * 32 {
            let at = start + (j / 32) * panel_stride + 2 * (j % 32);
            data[at] = if j < n { f32_to_bf16(even[j]) } else { 0 };
            data[at + 1] = match odd {
                Some(odd) if j < n => f32_to_bf16(odd[j]),
                _ => 0,
            };
        }
        self.written += 1;
    }

    /// [`PackedBf16B::set_pair`] for rows given as bf16 bits already (no rounding).
    pub fn set_pair_bits(&mut self, p: usize, even: &[u16], odd: Option<&[u16]>) {
        let (start, panel_stride) = self.pair_place(p, even.len(), odd.map(|o| o.len()));
        let (n, panels) = (self.cols, self.cols.div_ceil(32));
        let data: &mut [u16] = bytemuck_lines(&mut self.lines);
        #[cfg(target_arch = "x86_64")]
        if vector_rounding() {
            assert!(n == 0 || start + (panels - 1) * panel_stride + 64 <= data.len());
            // SAFETY: the CPU has AVX-512F and BW (checked with AVX512_BF16); odd is as long
            // as even; each panel's pair lies inside `lines` (sized by reset).
            unsafe {
                super::avx512bf16::pack_pair_bits(data.as_mut_ptr().add(start), panel_stride, even, odd)
            };
            self.written += 1;
            return;
        }
        for j in 0..panels * 32 {
            let at = start + (j / 32) * panel_stride + 2 * (j % 32);
            data[at] = if j < n { even[j] } else { 0 };
            data[at + 1] = match odd {
                Some(odd) if j < n => odd[j],
                _ => 0,
            };
        }
        self.written += 1;
    }

    /// Checks the arguments of a pair `p` (`even_len` values, `odd_len` if given) and returns
    /// where its first panel starts and how far apart the panels are.
    fn pair_place(&self, p: usize, even_len: usize, odd_len: Option<usize>) -> (usize, usize) {
        let (k, n) = (self.rows, self.cols);
        assert!(p.is_multiple_of(2) && p < k, "PackedBf16B::set_pair: row {p} is not an even row of {k}");
        assert_eq!(
            odd_len.is_none(),
            p + 1 == k,
            "PackedBf16B::set_pair: row {} of {k} must be given",
            p + 1
        );
        assert_eq!(even_len, n, "PackedBf16B::set_pair: {even_len} values for {n} columns");
        if let Some(odd_len) = odd_len {
            assert_eq!(odd_len, n, "PackedBf16B::set_pair: {odd_len} values for {n} columns");
        }
        let kc = k_block(k);
        let p0 = p / kc * kc;
        // Panels of this K block are panel_len(kc_block) apart; the pair is 64 elements.
        let panel_stride = (kc.min(k - p0)).next_multiple_of(2) * 32;
        (p0 * n.div_ceil(32) * 32 + (p - p0) / 2 * 64, panel_stride)
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

/// All the packed bits of `b` (for tests).
#[cfg(test)]
pub(super) fn bytemuck_bits(b: &mut PackedBf16B) -> Vec<u16> {
    bytemuck_lines(&mut b.lines).to_vec()
}

/// The lines as a flat slice of bf16.
fn bytemuck_lines(lines: &mut [Line]) -> &mut [u16] {
    // SAFETY: Line is 32 u16 with no padding (64 bytes, align 64), so the lines are
    // lines.len() * 32 consecutive u16.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u16>(), lines.len() * 32) }
}

/// The `b` operand of [`sgemm_bf16_prepacked`].
#[derive(Clone, Copy, Debug)]
pub enum Bf16B<'a> {
    /// f32 values, rounded while the driver packs them.
    F32(StridedMat<'a>),
    /// Already rounded and packed.
    Packed(&'a PackedBf16B),
}

/// `c = a @ b` (or `c += a @ b` when `accumulate`), `c` row-major `[a.rows(), b.cols]`, with
/// the native bf16 kernel: the bits of [`sgemm_bf16`](super::sgemm_bf16) on the f32 values
/// of the operands, without rounding or packing `a` (nor `b` when packed) again. Panics
/// unless [`bf16_backend`] is [`Bf16Backend::Avx512Bf16`], or if an operand was not fully
/// written since its last reset.
pub fn sgemm_bf16_prepacked(a: &Bf16Rows, b: Bf16B, c: &mut [f32], accumulate: bool) {
    sgemm_bf16_prepacked_rows(a, 0..a.rows, b, c, accumulate);
}

/// [`sgemm_bf16_prepacked`] with the rows `rows` of `a` only (`rows.start` a multiple of 4,
/// the kernel's smallest tile height), `c` `[rows.len(), b.cols]`: the same bits as those
/// rows of the whole product (each row of `c` is computed on its own).
pub fn sgemm_bf16_prepacked_rows(
    a: &Bf16Rows,
    rows: Range<usize>,
    b: Bf16B,
    c: &mut [f32],
    accumulate: bool,
) {
    assert_eq!(
        bf16_backend(),
        Bf16Backend::Avx512Bf16,
        "sgemm_bf16_prepacked: needs AVX512_BF16 (use sgemm_bf16)"
    );
    assert_eq!(
        a.written, a.rows,
        "sgemm_bf16_prepacked: {} of the {} rows of a were written",
        a.written, a.rows
    );
    assert!(
        rows.start.is_multiple_of(4) && rows.start <= rows.end && rows.end <= a.rows,
        "sgemm_bf16_prepacked: rows {rows:?} of {} (the first a multiple of 4)",
        a.rows
    );
    let (m, k) = (rows.len(), a.cols);
    let (b_rows, n) = match b {
        Bf16B::F32(s) => (s.rows, s.cols),
        Bf16B::Packed(p) => {
            let pairs = p.rows.div_ceil(2);
            assert_eq!(
                p.written, pairs,
                "sgemm_bf16_prepacked: {} of the {pairs} row pairs of b were written",
                p.written
            );
            (p.rows, p.cols)
        }
    };
    assert_eq!(b_rows, k, "sgemm_bf16_prepacked: a is {m}x{k} but b is {b_rows}x{n}");
    assert_eq!(c.len(), m * n, "sgemm_bf16_prepacked: c has {} elements, expected [{m}, {n}]", c.len());
    let (a_shape, (b_mat, b_pre)) = (
        StridedMat::shape_only(m, k),
        match b {
            Bf16B::F32(s) => (s, None),
            Bf16B::Packed(p) => (StridedMat::shape_only(k, n), Some(p.lines.as_ptr().cast::<u8>())),
        },
    );
    let mut dest = Dest { c, ldc: n, accumulate, bias: None };
    if product_is_empty(&a_shape, &b_mat, &mut dest) {
        return;
    }
    // The first row; the kernel reads up to rows.end rounded up to 4, inside the padded rows.
    let a_first = a.data[rows.start * a.stride..].as_ptr().cast::<u8>();
    let pre = Prepacked { a: Some((a_first, a.stride)), b: b_pre };
    #[cfg(target_arch = "x86_64")]
    super::driver::gemm_prepacked::<super::avx512bf16::Avx512Bf16>(a_shape, b_mat, dest, pre);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (b_mat, dest, pre);
        unreachable!("sgemm_bf16_prepacked: no AVX512_BF16 off x86-64");
    }
}
