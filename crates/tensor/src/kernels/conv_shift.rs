//! im2col and col2im of a stride-1 convolution whose output rows are as wide as its input
//! rows (the "same" convolutions of the CIFAR-10 CNN: 5x5, padding 2), as masked AVX-512
//! copies and adds.
//!
//! In such a layer the im2col row of kernel offset `(ki, kj)` is the input plane shifted by
//! `delta = (ki - pad_h) * W + (kj - pad_w)` cells, with the cells whose column fell off
//! the row's edge (and whole rows above or below the image) set to zero. So the row is built
//! a vector at a time (16 f32 or 32 bf16 cells): a masked load from the plane at `p + delta`
//! whose mask says which cells are inside, and a store. col2im is the same shift backwards,
//! a masked add into the plane.
//!
//! Each cell gets the value, or the one addition, that the row loops of
//! [`conv`](mod@super::conv) give it, with the rows taken in the same order, so the results
//! are theirs bit for bit (tests below). Those loops made a `memcpy` or `memset` call per
//! output-row segment (8 or 16 cells on the CNN's second and third layers) and about ten
//! integer divisions per im2col row, which cost more than the copies themselves.

use super::conv::{valid_range, Conv2dGeometry};

/// Whether this CPU has the AVX-512 subsets used here (F for the f32 cells, BW for the
/// 16-bit ones).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The shift of one kernel offset `(ki, kj)`.
struct Shift {
    /// Plane index read for output cell `p`: `p + delta`.
    delta: isize,
    /// Output cells `start..end` (the output rows that read image rows); the others are zero.
    start: usize,
    end: usize,
    /// `masks[k % masks.len()]`: the lanes of the vector at `start + k * lanes` whose column
    /// is inside the image (the pattern repeats every `lcm(OW, lanes)` cells).
    masks: Vec<u32>,
}

/// The shifts of every kernel offset of one geometry, for vectors of `lanes` cells.
pub(super) struct Shifts {
    lanes: usize,
    /// Cells of one input plane, `H * W`.
    plane: usize,
    /// Cells of one im2col row, `OH * OW`.
    ohw: usize,
    /// By kernel offset `ki * KW + kj`.
    offsets: Vec<Shift>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Shifts {
    /// The shifts of `g` for vectors of `lanes` cells (16 for f32, 32 for bf16), or `None`
    /// when `g` is not a stride-1 convolution with output rows as wide as its input rows, or
    /// the CPU lacks AVX-512F and BW (the row loops serve then).
    pub(super) fn new(g: &Conv2dGeometry, lanes: usize) -> Option<Shifts> {
        assert!(lanes == 16 || lanes == 32, "Shifts: {lanes} lanes");
        let (oh, ow) = (g.out_h(), g.out_w());
        let usable = g.stride_h == 1 && g.stride_w == 1 && ow == g.width && oh > 0 && ow > 0;
        if !usable || !available() {
            return None;
        }
        let period = ow / gcd(ow, lanes);
        let offsets = (0..g.kernel_h * g.kernel_w)
            .map(|r| {
                let (ki, kj) = (r / g.kernel_w, r % g.kernel_w);
                let (x_lo, x_hi) = valid_range(ow, g.width, kj, 1, g.pad_w);
                let (y_lo, y_hi) = valid_range(oh, g.height, ki, 1, g.pad_h);
                if x_lo >= x_hi || y_lo >= y_hi {
                    return Shift { delta: 0, start: 0, end: 0, masks: vec![0] };
                }
                let masks = (0..period)
                    .map(|k| {
                        (0..lanes)
                            .filter(|l| (x_lo..x_hi).contains(&((k * lanes + l) % ow)))
                            .fold(0u32, |m, l| m | 1 << l)
                    })
                    .collect();
                let delta =
                    (ki as isize - g.pad_h as isize) * g.width as isize + kj as isize - g.pad_w as isize;
                Shift { delta, start: y_lo * ow, end: y_hi * ow, masks }
            })
            .collect();
        Some(Shifts { lanes, plane: g.height * g.width, ohw: oh * ow, offsets })
    }

    /// The shift of im2col row `row` and the plane it reads, after checking the lengths.
    fn locate(&self, row: usize, image_len: usize, col_row_len: usize, lanes: usize) -> (&Shift, usize) {
        assert_eq!(self.lanes, lanes, "Shifts: made for {} lanes, used with {lanes}", self.lanes);
        assert_eq!(col_row_len, self.ohw, "Shifts: a col row has {} cells, not {col_row_len}", self.ohw);
        let (c, r) = (row / self.offsets.len(), row % self.offsets.len());
        assert!(
            (c + 1) * self.plane <= image_len,
            "Shifts: row {row} reads plane {c}, the image has {image_len} cells"
        );
        (&self.offsets[r], c * self.plane)
    }

    /// Row `row` of im2col of `image` into `col_row` (overwritten), as `conv::im2col_row`.
    pub(super) fn im2col_row_f32(&self, image: &[f32], row: usize, col_row: &mut [f32]) {
        let (shift, first) = self.locate(row, image.len(), col_row.len(), 16);
        let plane = &image[first..first + self.plane];
        col_row[..shift.start].fill(0.0);
        col_row[shift.end..].fill(0.0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` found AVX-512F; the shift's lengths were checked by `locate`.
        unsafe {
            avx512::im2col_f32(shift, plane, col_row)
        }
    }

    /// [`im2col_row_f32`](Self::im2col_row_f32) of an image of bf16 bits.
    pub(super) fn im2col_row_u16(&self, image: &[u16], row: usize, col_row: &mut [u16]) {
        let (shift, first) = self.locate(row, image.len(), col_row.len(), 32);
        let plane = &image[first..first + self.plane];
        col_row[..shift.start].fill(0);
        col_row[shift.end..].fill(0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` found AVX-512F and BW; the lengths were checked by `locate`.
        unsafe {
            avx512::im2col_u16(shift, plane, col_row)
        }
    }

    /// Adds im2col row `row`'s cells `col_row` back into `image_acc`, as `conv::col2im_rows`
    /// does for one row.
    pub(super) fn col2im_row(&self, col_row: &[f32], row: usize, image_acc: &mut [f32]) {
        let (shift, first) = self.locate(row, image_acc.len(), col_row.len(), 16);
        let plane = &mut image_acc[first..first + self.plane];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` found AVX-512F; the lengths were checked by `locate`.
        unsafe {
            avx512::col2im_f32(shift, col_row, plane)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The vector loops. For every output cell `p` in `start..end` whose lane is set in its
    //! mask, `p + delta` is inside the plane: `valid_range` gave the rows and columns whose
    //! input cell exists, and the plane is `W` cells wide, as the output rows are. Lanes
    //! outside the mask are never accessed (a masked load or store suppresses them), so the
    //! pointers to them are formed with `wrapping_*` and may lie outside the plane.

    use super::Shift;
    use std::arch::x86_64::*;

    /// The lanes of the vector at `p` that are below `end`.
    #[inline(always)]
    fn tail_mask(p: usize, end: usize, lanes: usize) -> u32 {
        let n = (end - p).min(lanes);
        if n == 32 {
            u32::MAX
        } else {
            (1u32 << n) - 1
        }
    }

    /// `out[p] = plane[p + delta]` in the shift's mask over `start..end`, 0 elsewhere there.
    ///
    /// # Safety
    /// AVX-512F; `shift` was made for `plane` and `out` (the lengths `Shifts::locate` checks).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn im2col_f32(shift: &Shift, plane: &[f32], out: &mut [f32]) {
        let src = plane.as_ptr().wrapping_offset(shift.delta);
        let dst = out.as_mut_ptr();
        let (mut p, mut k) = (shift.start, 0);
        while p < shift.end {
            let tail = tail_mask(p, shift.end, 16) as u16;
            let inside = shift.masks[k] as u16 & tail;
            let v = _mm512_maskz_loadu_ps(inside, src.wrapping_add(p));
            _mm512_mask_storeu_ps(dst.add(p), tail, v);
            p += 16;
            k = if k + 1 == shift.masks.len() { 0 } else { k + 1 };
        }
    }

    /// [`im2col_f32`] on 16-bit cells (bf16 bits), 32 at a time.
    ///
    /// # Safety
    /// AVX-512F and BW; as [`im2col_f32`].
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn im2col_u16(shift: &Shift, plane: &[u16], out: &mut [u16]) {
        let src = plane.as_ptr().wrapping_offset(shift.delta) as *const i16;
        let dst = out.as_mut_ptr() as *mut i16;
        let (mut p, mut k) = (shift.start, 0);
        while p < shift.end {
            let tail = tail_mask(p, shift.end, 32);
            let inside = shift.masks[k] & tail;
            let v = _mm512_maskz_loadu_epi16(inside, src.wrapping_add(p));
            _mm512_mask_storeu_epi16(dst.add(p), tail, v);
            p += 32;
            k = if k + 1 == shift.masks.len() { 0 } else { k + 1 };
        }
    }

    /// `plane[p + delta] += col_row[p]` in the shift's mask over `start..end`.
    ///
    /// # Safety
    /// AVX-512F; as [`im2col_f32`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn col2im_f32(shift: &Shift, col_row: &[f32], plane: &mut [f32]) {
        let img = plane.as_mut_ptr().wrapping_offset(shift.delta);
        let col = col_row.as_ptr();
        let (mut p, mut k) = (shift.start, 0);
        while p < shift.end {
            let inside = shift.masks[k] as u16 & tail_mask(p, shift.end, 16) as u16;
            let acc = _mm512_maskz_loadu_ps(inside, img.wrapping_add(p));
            let add = _mm512_maskz_loadu_ps(inside, col.add(p));
            _mm512_mask_storeu_ps(img.wrapping_add(p), inside, _mm512_add_ps(acc, add));
            p += 16;
            k = if k + 1 == shift.masks.len() { 0 } else { k + 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::{col2im_rows_scalar, im2col_row};
    use super::*;
    use crate::testing::randn;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Geometries with and without shifts: the CNN's three layers, odd widths (masks that
    /// repeat over several vectors), kernels wider than the image, asymmetric padding.
    fn geometries() -> Vec<(Conv2dGeometry, bool)> {
        let mut v = vec![
            (Conv2dGeometry::new(3, 32, 32, 5, 1, 2), true),
            (Conv2dGeometry::new(4, 16, 16, 5, 1, 2), true),
            (Conv2dGeometry::new(5, 8, 8, 5, 1, 2), true),
            (Conv2dGeometry::new(2, 7, 13, 3, 1, 1), true),
            (Conv2dGeometry::new(2, 3, 37, 7, 1, 3), true),
            (Conv2dGeometry::new(1, 2, 2, 5, 1, 2), true),
            (Conv2dGeometry::new(2, 9, 9, 3, 2, 1), false),
            (Conv2dGeometry::new(2, 9, 9, 3, 1, 0), false),
        ];
        // Taller padding than wide: the output has more rows than the input, as wide.
        let mut g = Conv2dGeometry::new(2, 5, 6, 3, 1, 1);
        g.pad_h = 2;
        v.push((g, true));
        v
    }

    #[test]
    fn shifts_equal_the_row_loops_bitwise() {
        if !available() {
            eprintln!("skipped: this CPU lacks AVX-512F/BW, the row loops are the only path");
            return;
        }
        for (seed, (g, has_shifts)) in geometries().into_iter().enumerate() {
            let seed = seed as u64;
            let (s16, s32) = (Shifts::new(&g, 16), Shifts::new(&g, 32));
            assert_eq!((s16.is_some(), s32.is_some()), (has_shifts, has_shifts), "{g:?}");
            let (Some(s16), Some(s32)) = (s16, s32) else { continue };
            let image = randn(g.image_len(), seed);
            let image16: Vec<u16> = image.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
            let (rows, ohw, out) = (g.col_rows(), g.col_cols(), (g.out_h(), g.out_w()));
            for r in 0..rows {
                // NaN and all-ones fillers: every cell must be written.
                let (mut got, mut want) = (vec![f32::NAN; ohw], vec![f32::NAN; ohw]);
                s16.im2col_row_f32(&image, r, &mut got);
                im2col_row(&image, &g, out, r, &mut want);
                assert_eq!(bits(&got), bits(&want), "{g:?} row {r}");
                let (mut got16, mut want16) = (vec![0xffffu16; ohw], vec![0xffffu16; ohw]);
                s32.im2col_row_u16(&image16, r, &mut got16);
                im2col_row(&image16, &g, out, r, &mut want16);
                assert_eq!(got16, want16, "{g:?} row {r} (16-bit cells)");
            }
            // col2im: the same additions, rows in the same order.
            let col = randn(rows * ohw, seed + 100);
            let mut want = randn(g.image_len(), seed + 200);
            let mut got = want.clone();
            col2im_rows_scalar(&col, &g, 0, &mut want);
            for (r, col_row) in col.chunks_exact(ohw).enumerate() {
                s16.col2im_row(col_row, r, &mut got);
            }
            assert_eq!(bits(&got), bits(&want), "{g:?} col2im");
        }
    }

    #[test]
    #[should_panic(expected = "a col row has")]
    fn a_short_col_row_is_refused() {
        let g = Conv2dGeometry::new(1, 8, 8, 3, 1, 1);
        let Some(s) = Shifts::new(&g, 16) else { panic!("a col row has (no AVX-512 here)") };
        s.im2col_row_f32(&[0.0; 64], 0, &mut [0.0; 63]);
    }
}
