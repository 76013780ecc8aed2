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

use adamant_tensor::kernels::matmul;
use adamant_tensor::kernels::parallel::{for_each_chunk_mut, CHUNK};
use adamant_tensor::{numel, Tensor};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};

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

// ----- ZCA whitening ------------------------------------------------------------------------

/// Options of [`Zca`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZcaOptions {
    /// Regulariser added to every eigenvalue of the covariance before the inverse square
    /// root: `W = U diag(1 / sqrt(lambda + epsilon)) U^T`. Must be positive and finite.
    ///
    /// Whitened variance along eigenvector `i` is `lambda_i / (lambda_i + epsilon)`: about 1
    /// for directions with variance well above `epsilon`, while those well below it are
    /// scaled by at most `1 / sqrt(epsilon)` instead of being blown up to unit variance (they
    /// are mostly pixel noise and, in the JPEG-derived CIFAR-10, compression artefacts).
    ///
    /// `epsilon` is in the data's squared units. The default, `1e-2`, is for pixels scaled to
    /// [0, 1]. Measured on the CIFAR-10 training set on that scale: per-pixel variance 0.061,
    /// eigenvalues from 55 down to 2e-6; the 497 of 3072 above 1e-2 hold 98.8% of the
    /// variance, while 1,800 below 1e-4 hold 0.01% of it. Published recipes range from
    /// `1e-6` (which would scale those near-empty directions by up to 580x) to `0.1`;
    /// `1e-2` whitens the directions that carry the images and damps the noise. Pick it from
    /// [`Zca::eigenvalues`] for other data or scales.
    pub epsilon: f64,
}

impl Default for ZcaOptions {
    /// `epsilon = 1e-2` (for data in [0, 1]; see [`ZcaOptions::epsilon`]).
    fn default() -> Self {
        ZcaOptions { epsilon: 1e-2 }
    }
}

/// ZCA whitening: `(x - mean) W` with `W = U diag(1 / sqrt(lambda + epsilon)) U^T`, where
/// `U diag(lambda) U^T` is the eigendecomposition of the training covariance.
///
/// Each example is flattened (`[N, C, H, W]` is treated as `[N, C*H*W]`) and the output
/// has the input's shape. Of all whitening matrices, ZCA's is the symmetric one, so
/// whitened images stay as close as possible to the originals and still look like images
/// (edges enhanced), which is what convolutional layers want.
///
/// The covariance is the biased one, `X_c^T X_c / N`, as in the usual ZCA recipes. It is
/// accumulated from blocks of rows centred in `f64` and multiplied with the framework's
/// sgemm, one `f64` sum per block; the eigendecomposition runs in `f64` on one thread, so
/// the fitted transform is bit-identical whatever the number of threads.
#[derive(Clone, Debug)]
pub struct Zca {
    mean: Vec<f64>,
    /// `mean` rounded once, for `apply`.
    mean_f32: Vec<f32>,
    /// `[D, D]`, exactly symmetric.
    w: Tensor,
    eigenvalues: Vec<f64>,
    epsilon: f64,
}

/// Rows per block when accumulating the covariance: the sgemm's inner dimension. Large
/// enough for the product to run near peak speed, small enough that the centred copy of a
/// block (`D x FIT_ROWS` f32) stays a few MB.
const FIT_ROWS: usize = 512;

/// Output rows per sgemm call when accumulating the upper triangle of the covariance: band
/// `b` covers rows `b*BAND..(b+1)*BAND` and only the columns from `b*BAND` on, so about half
/// of the lower triangle is never computed (0.58 of the full product for D = 3072).
const BAND: usize = 256;

/// Rows per block in [`Zca::apply`]: enough rows for the sgemm to split over threads.
const APPLY_ROWS: usize = 1024;

impl Zca {
    /// Fits the mean and whitening matrix on `x` (`[N, ...]`, each example flattened to `D`
    /// features).
    ///
    /// # Panics
    /// If `x` has no examples or no features, if `options.epsilon` is not positive and
    /// finite, or if the eigendecomposition does not converge (it does for every symmetric
    /// matrix with finite entries; non-finite input data would be a bug upstream).
    pub fn fit(x: &Tensor, options: ZcaOptions) -> Zca {
        let epsilon = options.epsilon;
        assert!(
            epsilon > 0.0 && epsilon.is_finite(),
            "Zca::fit: epsilon must be positive and finite, got {epsilon}"
        );
        let shape = x.shape();
        assert!(!shape.is_empty(), "Zca::fit: expects [N, ...], got a scalar");
        let n = shape[0];
        let d = numel(&shape[1..]);
        assert!(n > 0 && d > 0, "Zca::fit: needs at least one example and one feature, got shape {shape:?}");
        let data = x.data();

        let mean = column_means(data, n, d);
        let cov = covariance_upper(data, n, d, &mean);
        let (eigenvalues, u) = symmetric_eigen(&cov, d);
        let w = whitening_matrix(&u, &eigenvalues, epsilon, d);
        let mean_f32 = mean.iter().map(|&m| m as f32).collect();
        Zca { mean, mean_f32, w: Tensor::from_vec(w, &[d, d]), eigenvalues, epsilon }
    }

    /// `(x - mean) W` for each example of `x` (`[M, ...]` with `D` features per example);
    /// same shape as `x`.
    ///
    /// # Panics
    /// If the examples of `x` do not have the `D` features the transform was fitted on.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let d = self.dim();
        let shape = x.shape();
        assert!(
            !shape.is_empty() && numel(&shape[1..]) == d,
            "Zca::apply: fitted on {d} features per example, got shape {shape:?}"
        );
        let n = shape[0];
        let data = x.data();
        let mut out = vec![0.0f32; n * d];
        let mut centred = vec![0.0f32; APPLY_ROWS.min(n) * d];
        for r0 in (0..n).step_by(APPLY_ROWS) {
            let rows = APPLY_ROWS.min(n - r0);
            let block = &mut centred[..rows * d];
            for (c, row) in block.chunks_exact_mut(d).zip(data[r0 * d..(r0 + rows) * d].chunks_exact(d)) {
                for ((c, &x), &m) in c.iter_mut().zip(row).zip(&self.mean_f32) {
                    *c = x - m;
                }
            }
            matmul(block, self.w.data(), &mut out[r0 * d..(r0 + rows) * d], rows, d, d, false, false, false);
        }
        Tensor::from_vec(out, shape)
    }

    /// Number of features per example, `D`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The training mean of each feature.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The whitening matrix `W`, `[D, D]` and symmetric.
    pub fn matrix(&self) -> &Tensor {
        &self.w
    }

    /// The eigenvalues of the training covariance, in ascending order (useful to choose
    /// `epsilon`: whitened variance along eigenvector `i` is `lambda_i / (lambda_i + epsilon)`).
    /// Rounding can leave the smallest ones slightly negative; they are treated as 0.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// The `epsilon` the transform was fitted with.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }
}

/// Mean of each column of a row-major `[n, d]` matrix, in f64.
fn column_means(data: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; d];
    for row in data.chunks_exact(d) {
        for (s, &x) in sum.iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    sum.iter().map(|&s| s / n as f64).collect()
}

/// `X_c^T X_c / n` for the row-major `[n, d]` data centred at `mean`, as a row-major `[d, d]`
/// f64 matrix of which only the upper triangle (`i <= j`) is filled.
///
/// Rows are taken `FIT_ROWS` at a time, centred in f64 and stored transposed (`[d, rows]`),
/// so that any band of features is a contiguous slice; the f32 product of a band with the
/// features after it is added into the f64 total.
fn covariance_upper(data: &[f32], n: usize, d: usize, mean: &[f64]) -> Vec<f64> {
    let mut cov = vec![0.0f64; d * d];
    let mut xt = vec![0.0f32; d * FIT_ROWS.min(n)];
    let mut product = vec![0.0f32; BAND.min(d) * d];
    for r0 in (0..n).step_by(FIT_ROWS) {
        let rows = FIT_ROWS.min(n - r0);
        let xt = &mut xt[..d * rows];
        centre_transposed(&data[r0 * d..(r0 + rows) * d], rows, d, mean, xt);
        for b0 in (0..d).step_by(BAND) {
            let b1 = (b0 + BAND).min(d);
            let (m, cols) = (b1 - b0, d - b0);
            let out = &mut product[..m * cols];
            // out[i, j] = sum_r xt[b0 + i, r] * xt[b0 + j, r]: rows b0..b1 of the covariance,
            // columns b0..d.
            matmul(&xt[b0 * rows..b1 * rows], &xt[b0 * rows..], out, m, rows, cols, false, true, false);
            for (i, src) in out.chunks_exact(cols).enumerate() {
                let dst = &mut cov[(b0 + i) * d + b0..(b0 + i + 1) * d];
                for (c, &p) in dst.iter_mut().zip(src) {
                    *c += p as f64;
                }
            }
        }
    }
    let inv_n = 1.0 / n as f64;
    for c in &mut cov {
        *c *= inv_n;
    }
    cov
}

/// `xt[j * rows + r] = block[r * d + j] - mean[j]` (centred in f64, rounded once to f32),
/// in tiles so that both the reads and the strided writes stay in cache.
fn centre_transposed(block: &[f32], rows: usize, d: usize, mean: &[f64], xt: &mut [f32]) {
    const TILE: usize = 32;
    for r_start in (0..rows).step_by(TILE) {
        let r_end = (r_start + TILE).min(rows);
        for j_start in (0..d).step_by(TILE) {
            let j_end = (j_start + TILE).min(d);
            for r in r_start..r_end {
                let row = &block[r * d..(r + 1) * d];
                for j in j_start..j_end {
                    xt[j * rows + r] = (row[j] as f64 - mean[j]) as f32;
                }
            }
        }
    }
}

/// Eigenvalues (ascending) and eigenvectors (columns of a faer matrix) of the symmetric
/// `[d, d]` matrix whose upper triangle is filled in row-major `a`.
fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, faer::Mat<f64>) {
    // The upper triangle of a row-major matrix, read column-major, is the lower triangle of
    // the same symmetric matrix: exactly the part that `Side::Lower` reads. No copy needed.
    let lower = faer::MatRef::from_column_major_slice(a, d, d);
    // One thread: faer's parallel split depends on the thread count, and with it the last
    // bits of the result. On 2 cores, for d = 3072, threads saved 2 s (3.6 s against 5.6 s
    // on the CIFAR-10 covariance; 6-7 s against 7.8 s on a random one): not worth giving up
    // a transform that is bit-identical on every machine.
    let par = faer::Par::Seq;
    let params = Default::default();
    let mut s = faer::diag::Diag::<f64>::zeros(d);
    let mut u = faer::Mat::<f64>::zeros(d, d);
    let mut scratch =
        MemBuffer::new(self_adjoint_evd_scratch::<f64>(d, ComputeEigenvectors::Yes, par, params));
    self_adjoint_evd(lower, s.as_mut(), Some(u.as_mut()), par, MemStack::new(&mut scratch), params)
        .unwrap_or_else(|e| panic!("Zca::fit: eigendecomposition of the {d}x{d} covariance failed: {e:?}"));
    let eigenvalues = (0..d).map(|k| s[k]).collect();
    (eigenvalues, u)
}

/// `W = U diag(1 / sqrt(max(lambda, 0) + epsilon)) U^T` as a row-major `[d, d]` f32 matrix,
/// made exactly symmetric.
fn whitening_matrix(u: &faer::Mat<f64>, eigenvalues: &[f64], epsilon: f64, d: usize) -> Vec<f32> {
    // W[i, j] = sum_k (U[i, k] s_k) U[j, k]: one sgemm of U scaled by column with U^T.
    let mut scaled = vec![0.0f32; d * d];
    let mut plain = vec![0.0f32; d * d];
    for (k, &lambda) in eigenvalues.iter().enumerate() {
        let s = 1.0 / (lambda.max(0.0) + epsilon).sqrt();
        for i in 0..d {
            let v = u[(i, k)];
            plain[i * d + k] = v as f32;
            scaled[i * d + k] = (v * s) as f32;
        }
    }
    let mut w = vec![0.0f32; d * d];
    matmul(&scaled, &plain, &mut w, d, d, d, false, true, false);
    // The two triangles differ in the last bits (each entry rounds its own products); use
    // their average for both so that W is symmetric exactly, as the formula says.
    for i in 0..d {
        for j in i + 1..d {
            let v = 0.5 * (w[i * d + j] + w[j * d + i]);
            w[i * d + j] = v;
            w[j * d + i] = v;
        }
    }
    w
}
