//! ZCA whitening (cargo feature `zca`): the symmetric eigendecomposition of the training
//! covariance needs `faer`, which a program that only standardises its data does not compile.

use adamant_tensor::kernels::matmul;
use adamant_tensor::{numel, Tensor};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};

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
