//! Preprocessing fitted on the training set and applied to any set: standardisation
//! ([`Normalizer`]) and ZCA whitening ([`Zca`]).
//!
//! Both are fitted once, on the training images only, and then applied unchanged to the
//! training, validation and test images, so that no statistic of the test set leaks into
//! training:
//!
//! ```
//! use adamant_data::preprocess::{Normalizer, NormalizerOptions};
//! use adamant_tensor::{rng, Tensor};
//!
//! let train = Tensor::rand_uniform(&[100, 3, 4, 4], 0.0, 1.0, &mut rng::seeded(1));
//! let test = Tensor::rand_uniform(&[20, 3, 4, 4], 0.0, 1.0, &mut rng::seeded(2));
//! let norm = Normalizer::fit_per_channel(&train, NormalizerOptions::default());
//! let (train, test) = (norm.apply(&train), norm.apply(&test));
//! assert_eq!(test.shape(), &[20, 3, 4, 4]);
//! ```
//!
//! Statistics are accumulated in `f64` (a sum of 50 million `f32` pixels in `f32` would lose
//! most of its digits); the transforms themselves run in `f32` like the rest of the framework.
//!
//! # Cost of ZCA on CIFAR-10
//!
//! Fitting [`Zca`] on the 50,000 x 3,072 CIFAR-10 training set is one covariance product
//! (about 5e11 multiply-adds, on the framework's sgemm, only the upper triangle) and one
//! symmetric eigendecomposition of a 3,072 x 3,072 matrix (`faer`, in `f64`); applying it is
//! one `[N, 3072] x [3072, 3072]` product, about as expensive as the covariance. Measured on
//! the real CIFAR-10 training set on a 2-core VM: fit 12.7 s (covariance 6.3 s,
//! eigendecomposition 5.6 s, whitening matrix 0.7 s), apply 7.3 s. The
//! `zca_timing_on_cifar10_shapes` test times it on random data of that shape
//! (`cargo test --release -p adamant-data -- --ignored --nocapture zca_timing`).

use adamant_tensor::kernels::parallel::{for_each_chunk_mut, CHUNK};
use adamant_tensor::{numel, Tensor};

// ----- Normalizer ---------------------------------------------------------------------------

/// Options of [`Normalizer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormalizerOptions {
    /// Floor on the standard deviation a value is divided by (in the data's units).
    ///
    /// A feature that is constant on the training set (the always-black border pixels of
    /// MNIST, fitted per feature) has standard deviation 0; without a floor it would be
    /// divided by zero. The default, `1e-3`, is below a quarter of one 8-bit grey level
    /// (1/255 = 0.0039) for pixels scaled to [0, 1], so it never touches a channel that
    /// varies, and limits the blow-up of a constant one to 1000x. Must be positive and finite.
    pub min_std: f64,
}

impl Default for NormalizerOptions {
    /// `min_std = 1e-3`.
    fn default() -> Self {
        NormalizerOptions { min_std: 1e-3 }
    }
}

/// Standardisation `(x - mean) / std`, with statistics fitted on the training set.
///
/// Two granularities:
/// - [`fit_per_channel`](Normalizer::fit_per_channel): one mean and std per index of axis 1,
///   pooled over the examples and every later axis: per colour channel for `[N, C, H, W]`
///   images (the usual CIFAR-10 preprocessing), per feature for `[N, D]`.
/// - [`fit_global`](Normalizer::fit_global): one mean and std over every element. This is the
///   one to use for `[N, 784]` MNIST: per feature would divide the nearly constant border
///   pixels by nearly zero and turn rare strokes there into huge values.
///
/// The standard deviation is the population one (divide by the count, like `np.std` and
/// `torch.std(unbiased=False)`), floored at [`NormalizerOptions::min_std`].
#[derive(Clone, Debug, PartialEq)]
pub struct Normalizer {
    /// `Some(C)` when fitted per channel on `[N, C, ...]`; `None` when global.
    channels: Option<usize>,
    mean: Vec<f64>,
    /// Already floored at `min_std`.
    std: Vec<f64>,
}

impl Normalizer {
    /// Fits one mean and standard deviation per index of axis 1 of `x` (`[N, C, ...]`).
    ///
    /// # Panics
    /// If `x` has fewer than 2 axes or no elements, or `options.min_std` is not positive and
    /// finite.
    pub fn fit_per_channel(x: &Tensor, options: NormalizerOptions) -> Normalizer {
        check_min_std(options.min_std, "fit_per_channel");
        let shape = x.shape();
        assert!(
            shape.len() >= 2,
            "Normalizer::fit_per_channel: expects [N, C, ...] (at least 2 axes), got shape {shape:?}"
        );
        assert!(
            x.numel() > 0,
            "Normalizer::fit_per_channel: cannot fit on an empty tensor of shape {shape:?}"
        );
        let channels = shape[1];
        let (mean, std) = channel_stats(x.data(), channels, numel(&shape[2..]), options.min_std);
        Normalizer { channels: Some(channels), mean, std }
    }

    /// Fits one mean and standard deviation over every element of `x`.
    ///
    /// # Panics
    /// If `x` has no elements, or `options.min_std` is not positive and finite.
    pub fn fit_global(x: &Tensor, options: NormalizerOptions) -> Normalizer {
        check_min_std(options.min_std, "fit_global");
        assert!(
            x.numel() > 0,
            "Normalizer::fit_global: cannot fit on an empty tensor of shape {:?}",
            x.shape()
        );
        let (mean, std) = channel_stats(x.data(), 1, x.numel(), options.min_std);
        Normalizer { channels: None, mean, std }
    }

    /// `(x - mean) / std` with the fitted statistics; same shape as `x`.
    ///
    /// # Panics
    /// If fitted per channel and `x` is not `[N, C, ...]` with the fitted number of channels.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let shape = x.shape();
        let (channels, inner) = match self.channels {
            None => (1, x.numel()),
            Some(c) => {
                assert!(
                    shape.len() >= 2 && shape[1] == c,
                    "Normalizer::apply: fitted per channel on {c} channels (axis 1), got shape {shape:?}"
                );
                (c, numel(&shape[2..]))
            }
        };
        let mut out = x.data().to_vec();
        if out.is_empty() {
            return Tensor::from_vec(out, shape);
        }
        let shift: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
        let scale: Vec<f32> = self.std.iter().map(|&s| (1.0 / s) as f32).collect();
        // Element `i` belongs to channel `(i / inner) % channels`; each chunk finds its first
        // channel once and then walks runs of `inner` elements, with no division per element.
        for_each_chunk_mut(&mut out, |chunk_index, chunk| {
            let start = chunk_index * CHUNK;
            let mut c = (start / inner) % channels;
            let mut k = 0;
            let mut run = inner - start % inner;
            while k < chunk.len() {
                let len = run.min(chunk.len() - k);
                let (m, s) = (shift[c], scale[c]);
                for v in &mut chunk[k..k + len] {
                    *v = (*v - m) * s;
                }
                k += len;
                run = inner;
                c = if c + 1 == channels { 0 } else { c + 1 };
            }
        });
        Tensor::from_vec(out, shape)
    }

    /// The fitted means: one per channel, or a single one when global.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The fitted standard deviations (after the `min_std` floor): one per channel, or a
    /// single one when global.
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// The number of channels when fitted per channel; `None` when global.
    pub fn channels(&self) -> Option<usize> {
        self.channels
    }
}

fn check_min_std(min_std: f64, op: &str) {
    assert!(
        min_std > 0.0 && min_std.is_finite(),
        "Normalizer::{op}: min_std must be positive and finite, got {min_std}"
    );
}

/// Mean and floored population std of each channel of data laid out as
/// `[outer, channels, inner]`, in `f64` with the corrected two-pass formula.
fn channel_stats(data: &[f32], channels: usize, inner: usize, min_std: f64) -> (Vec<f64>, Vec<f64>) {
    let count = (data.len() / channels) as f64;
    let sums = channel_sums(data, channels, inner, &vec![0.0; channels]);
    let mean: Vec<f64> = sums.iter().map(|&(s, _)| s / count).collect();
    // Second pass around the mean: sum (x - m)^2, corrected by the (tiny) rounding residue
    // sum (x - m), which keeps the variance accurate even when the mean dwarfs the spread.
    let centred = channel_sums(data, channels, inner, &mean);
    let std = centred
        .iter()
        .map(|&(s1, s2)| ((s2 - s1 * s1 / count) / count).max(0.0).sqrt().max(min_std))
        .collect();
    (mean, std)
}

/// Per channel of `[outer, channels, inner]` data: (sum of `x - shift`, sum of `(x - shift)^2`).
fn channel_sums(data: &[f32], channels: usize, inner: usize, shift: &[f64]) -> Vec<(f64, f64)> {
    let mut sums = vec![(0.0, 0.0); channels];
    if inner == 1 {
        // [N, D]: accumulate whole rows, one f64 lane per feature (vectorises over features).
        let mut s1 = vec![0.0f64; channels];
        let mut s2 = vec![0.0f64; channels];
        for row in data.chunks_exact(channels) {
            for (((a, b), &x), &m) in s1.iter_mut().zip(s2.iter_mut()).zip(row).zip(shift) {
                let d = x as f64 - m;
                *a += d;
                *b += d * d;
            }
        }
        for (out, (a, b)) in sums.iter_mut().zip(s1.into_iter().zip(s2)) {
            *out = (a, b);
        }
    } else {
        for (i, plane) in data.chunks_exact(inner).enumerate() {
            let c = i % channels;
            let (a, b) = plane_sums(plane, shift[c]);
            sums[c].0 += a;
            sums[c].1 += b;
        }
    }
    sums
}

/// (sum of `x - shift`, sum of `(x - shift)^2`) over a contiguous slice, with eight
/// independent accumulators so the loop vectorises instead of waiting on one add chain.
fn plane_sums(xs: &[f32], shift: f64) -> (f64, f64) {
    const LANES: usize = 8;
    let mut s1 = [0.0f64; LANES];
    let mut s2 = [0.0f64; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for l in 0..LANES {
            let d = chunk[l] as f64 - shift;
            s1[l] += d;
            s2[l] += d * d;
        }
    }
    let (mut a, mut b) = (s1.iter().sum::<f64>(), s2.iter().sum::<f64>());
    for &x in chunks.remainder() {
        let d = x as f64 - shift;
        a += d;
        b += d * d;
    }
    (a, b)
}

#[cfg(feature = "zca")]
mod zca;
#[cfg(feature = "zca")]
pub use zca::{Zca, ZcaOptions};
