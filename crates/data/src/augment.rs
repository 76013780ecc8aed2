//! Image augmentation of training batches: a random crop of the image padded with zeros, and
//! a random horizontal flip (torchvision's `RandomCrop(32, padding=4)` then
//! `RandomHorizontalFlip()`, the usual CIFAR-10 recipe).
//!
//! Each example's crop and flip are drawn from `(seed, epoch, example)` alone, where
//! `example` is the image's position in the dataset (a [`Batch`]'s `indices`): the same run
//! sees the same augmented image whatever the batch order, the batch size, the number of
//! threads or a resume from a checkpoint, and a new epoch draws new ones. Only training
//! batches are augmented; the facade's `fit` never passes evaluation batches through it.
//!
//! ```
//! use adamant_data::augment::Augment;
//! use adamant_tensor::Tensor;
//!
//! let images = Tensor::ones(&[2, 3, 8, 8]);
//! let augmented = Augment::default().apply(&images, &[17, 4], 0, 1);
//! assert_eq!(augmented.shape(), &[2, 3, 8, 8]);
//! // A crop of the zero-padded image shifts some zeros in, unless it drew no shift.
//! assert!(augmented.data().iter().all(|&x| x == 0.0 || x == 1.0));
//! ```

use std::fmt;

use adamant_tensor::rng::{self, Purpose};
use adamant_tensor::{pool, Tensor};

use crate::Batch;

/// Separates augmentation's numbers from other uses of [`Purpose::Data`] (subsets, splits):
/// mixed into the epoch's stream seed.
const AUGMENT_KEY: u64 = 0x6175_676D_656E_7400; // "augment\0"

/// Which random transforms to apply to each training image (`[C, H, W]` of an `[N, C, H, W]`
/// batch). [`Augment::default`] is the CIFAR-10 recipe: 4 pixels of zero padding, crop,
/// flip with probability 0.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding added on each side before cropping back to the original size, so the
    /// image shifts by up to this many pixels each way (torchvision's
    /// `RandomCrop(size, padding)`); 0: no crop.
    pub crop_padding: usize,
    /// Mirror each image left-right with probability 0.5 (torchvision's
    /// `RandomHorizontalFlip()`).
    pub horizontal_flip: bool,
}

impl Default for Augment {
    /// 4 pixels of padding and horizontal flips: the standard CIFAR-10 augmentation.
    fn default() -> Self {
        Augment { crop_padding: 4, horizontal_flip: true }
    }
}

impl fmt::Display for Augment {
    /// `crop4+flip`, `crop4`, `flip` or `none`: the spelling a checkpoint records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.crop_padding, self.horizontal_flip) {
            (0, false) => write!(f, "none"),
            (0, true) => write!(f, "flip"),
            (p, false) => write!(f, "crop{p}"),
            (p, true) => write!(f, "crop{p}+flip"),
        }
    }
}

/// The transform drawn for one example: where its crop starts in the padded image, and
/// whether it is mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transform {
    /// First row of the crop in the padded image, in `0..=2 * crop_padding` (`crop_padding`:
    /// no vertical shift).
    pub top: usize,
    /// First column of the crop in the padded image, in `0..=2 * crop_padding`.
    pub left: usize,
    /// Whether the crop is mirrored left-right.
    pub flip: bool,
}

impl Augment {
    /// The transform of dataset example `example` in epoch `epoch` of a run seeded `seed`:
    /// a function of those three numbers only.
    pub fn transform(&self, seed: u64, epoch: u64, example: usize) -> Transform {
        let key = rng::mix(rng::stream_seed(seed, Purpose::Data, epoch), AUGMENT_KEY);
        let bits = rng::mix(key, example as u64);
        // Three independent fields of one 64-bit hash; a modulus of at most a few dozen
        // leaves a bias below 1e-8.
        let span = 2 * self.crop_padding as u64 + 1;
        Transform {
            top: ((bits & 0xFFFF_FFFF) % span) as usize,
            left: (((bits >> 32) & 0x7FFF_FFFF) % span) as usize,
            flip: self.horizontal_flip && bits >> 63 == 1,
        }
    }

    /// The images `[B, C, H, W]` with each one cropped and flipped as drawn for its dataset
    /// position `examples[b]` in `epoch` ([`Augment::transform`]). The result has the input's
    /// shape; the input is left as it is.
    ///
    /// # Panics
    /// If `images` is not 4-d or `examples` does not have one position per image
    /// (programmer errors).
    pub fn apply(&self, images: &Tensor, examples: &[usize], seed: u64, epoch: u64) -> Tensor {
        let shape = images.shape();
        assert!(
            shape.len() == 4 && shape[0] == examples.len(),
            "Augment::apply: images must be [B, C, H, W] with one dataset position each, got shape {shape:?} and {} positions",
            examples.len()
        );
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let image = c * h * w;
        let mut out = pool::take_for_overwrite(images.numel());
        if image > 0 {
            for ((src, dst), &example) in
                images.data().chunks_exact(image).zip(out.chunks_exact_mut(image)).zip(examples)
            {
                let t = self.transform(seed, epoch, example);
                crop_flip(src, dst, [c, h, w], self.crop_padding, t);
            }
        }
        Tensor::from_vec(out, shape)
    }

    /// [`Augment::apply`] to a training batch, in place of its images.
    pub fn apply_batch(&self, batch: &mut Batch, seed: u64, epoch: u64) {
        batch.images = self.apply(&batch.images, &batch.indices, seed, epoch);
    }
}

/// One image `[C, H, W]` padded with `padding` zeros on each side, cropped back to `H x W` at
/// `(t.top, t.left)` of the padded image, then mirrored left-right if `t.flip`:
/// `dst[c][y][x] = padded[c][y + top][x' + left]`, with `x' = W - 1 - x` when flipped.
///
/// # Panics
/// If a slice is not `C * H * W` long, or the crop leaves the padded image.
pub fn crop_flip(src: &[f32], dst: &mut [f32], [c, h, w]: [usize; 3], padding: usize, t: Transform) {
    assert!(
        src.len() == c * h * w && dst.len() == src.len() && t.top <= 2 * padding && t.left <= 2 * padding,
        "crop_flip: image [{c}, {h}, {w}] ({} in, {} out) with padding {padding} and crop at ({}, {})",
        src.len(),
        dst.len(),
        t.top,
        t.left
    );
    for (src, dst) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
        for (y, row) in dst.chunks_exact_mut(w).enumerate() {
            // Source row `y + top - padding`, or a padding row of zeros.
            let sy = (y + t.top).checked_sub(padding).filter(|&sy| sy < h);
            let Some(sy) = sy else {
                row.fill(0.0);
                continue;
            };
            let line = &src[sy * w..(sy + 1) * w];
            for (x, v) in row.iter_mut().enumerate() {
                let xc = if t.flip { w - 1 - x } else { x };
                *v = (xc + t.left).checked_sub(padding).filter(|&sx| sx < w).map_or(0.0, |sx| line[sx]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crop and flip by the definition: pad into a new array, cut, mirror.
    fn naive(src: &[f32], [c, h, w]: [usize; 3], p: usize, t: Transform) -> Vec<f32> {
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        let mut padded = vec![0.0; c * ph * pw];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    padded[(ch * ph + y + p) * pw + x + p] = src[(ch * h + y) * w + x];
                }
            }
        }
        let mut out = vec![0.0; c * h * w];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let cropped = padded[(ch * ph + y + t.top) * pw + x + t.left];
                    let xo = if t.flip { w - 1 - x } else { x };
                    out[(ch * h + y) * w + xo] = cropped;
                }
            }
        }
        out
    }

    #[test]
    fn crop_and_flip_of_a_tiny_image_by_hand() {
        // One channel, 3x3: 1 2 3 / 4 5 6 / 7 8 9, padding 1.
        let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut dst = vec![f32::NAN; 9];
        // Crop at (0, 0) of the padded 5x5: the image moves down and right by one.
        crop_flip(&src, &mut dst, [1, 3, 3], 1, Transform { top: 0, left: 0, flip: false });
        assert_eq!(dst, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 4.0, 5.0]);
        // Crop at (2, 1): up by one, no horizontal shift, then mirrored.
        crop_flip(&src, &mut dst, [1, 3, 3], 1, Transform { top: 2, left: 1, flip: true });
        assert_eq!(dst, [6.0, 5.0, 4.0, 9.0, 8.0, 7.0, 0.0, 0.0, 0.0]);
        // Centre crop, no flip: the image itself.
        crop_flip(&src, &mut dst, [1, 3, 3], 1, Transform { top: 1, left: 1, flip: false });
        assert_eq!(dst, src);
        // Crop at (1, 2) then flip: left by one, then mirrored: rows 2 3 0 reversed.
        crop_flip(&src, &mut dst, [1, 3, 3], 1, Transform { top: 1, left: 2, flip: true });
        assert_eq!(dst, [0.0, 3.0, 2.0, 0.0, 6.0, 5.0, 0.0, 9.0, 8.0]);
    }

    #[test]
    fn crop_flip_matches_the_definition_on_every_transform() {
        let (c, h, w, p) = (2, 4, 5, 2);
        let src: Vec<f32> = (0..c * h * w).map(|v| v as f32 * 0.5 - 3.0).collect();
        let mut dst = vec![0.0; src.len()];
        for top in 0..=2 * p {
            for left in 0..=2 * p {
                for flip in [false, true] {
                    let t = Transform { top, left, flip };
                    crop_flip(&src, &mut dst, [c, h, w], p, t);
                    assert_eq!(dst, naive(&src, [c, h, w], p, t), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn transforms_depend_on_seed_epoch_and_example_only_and_cover_every_choice() {
        let a = Augment::default();
        let mut seen = std::collections::HashSet::new();
        let mut flips = 0;
        for example in 0..2000 {
            let t = a.transform(5, 2, example);
            assert_eq!(t, a.transform(5, 2, example));
            assert!(t.top <= 8 && t.left <= 8);
            seen.insert((t.top, t.left));
            flips += usize::from(t.flip);
        }
        assert_eq!(seen.len(), 81, "every offset is drawn");
        assert!((900..1100).contains(&flips), "{flips} flips in 2000");
        let differs =
            |f: &dyn Fn(usize) -> Transform| (0..100).filter(|&i| f(i) != a.transform(5, 2, i)).count();
        assert!(differs(&|i| a.transform(5, 3, i)) > 80, "another epoch draws anew");
        assert!(differs(&|i| a.transform(6, 2, i)) > 80, "another seed draws anew");
        let no_flip = Augment { horizontal_flip: false, ..a };
        assert!((0..100).all(|i| !no_flip.transform(5, 2, i).flip));
        let no_crop = Augment { crop_padding: 0, ..a };
        assert!((0..100).all(|i| (no_crop.transform(5, 2, i).top, no_crop.transform(5, 2, i).left) == (0, 0)));
    }

    #[test]
    fn apply_is_per_example_whatever_the_batch_order() {
        let n = 6;
        let images = Tensor::from_vec((0..n * 3 * 4 * 4).map(|v| (v % 97) as f32).collect(), &[n, 3, 4, 4]);
        let examples = [10, 3, 7, 0, 42, 5];
        let whole = Augment::default().apply(&images, &examples, 9, 1);
        // The same examples in reverse order, one batch each: the same images.
        let image = 3 * 4 * 4;
        for b in (0..n).rev() {
            let one = images.slice_rows(b, b + 1);
            let alone = Augment::default().apply(&one, &examples[b..b + 1], 9, 1);
            assert_eq!(alone.data(), &whole.data()[b * image..(b + 1) * image]);
        }
        assert_ne!(whole, Augment::default().apply(&images, &examples, 9, 2), "a new epoch, new crops");
        assert_eq!(
            Augment { crop_padding: 0, horizontal_flip: false }.apply(&images, &examples, 9, 1),
            images
        );
        assert_eq!(Augment::default().to_string(), "crop4+flip");
    }
}
