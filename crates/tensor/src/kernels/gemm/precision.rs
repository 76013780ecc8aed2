//! The precision of a product's operands, and the GEMM entry points that take it.
//!
//! Mixed precision as PyTorch's CPU autocast does it: a product's operands are rounded to
//! bf16 and their products summed in f32 ([`sgemm_bf16`]), while everything else (the
//! weights, the optimizer state, reductions, softmax, losses, normalisations) stays f32. The
//! matrix product, the dense layer and the convolution take a [`Precision`] and reach the
//! GEMM through [`sgemm_in`] / [`sgemm_bias_in`].

use super::{sgemm, sgemm_bf16, sgemm_bf16_bias, sgemm_bf16_ld, sgemm_bias, sgemm_ld, StridedMat};
use std::fmt;
use std::str::FromStr;

/// The arithmetic of a matrix product: f32, or bf16 operands with f32 sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 operands, f32 sums ([`sgemm`]).
    #[default]
    F32,
    /// Operands rounded to bf16 (nearest even), products summed in f32 ([`sgemm_bf16`]):
    /// `vdpbf16ps` where the CPU has AVX512_BF16, else the f32 GEMM on rounded operands
    /// ([`Bf16Backend::RoundedF32`](super::Bf16Backend::RoundedF32): the same products,
    /// slower).
    Bf16,
}

impl Precision {
    /// The name used on command lines and in logs: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    /// `f32` or `bf16` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision '{s}' (expected f32 or bf16)")),
        }
    }
}

/// `c = a @ b` (or `c += a @ b` when `accumulate`) in `precision`: [`sgemm`] or
/// [`sgemm_bf16`].
pub fn sgemm_in(precision: Precision, a: StridedMat, b: StridedMat, c: &mut [f32], accumulate: bool) {
    match precision {
        Precision::F32 => sgemm(a, b, c, accumulate),
        Precision::Bf16 => sgemm_bf16(a, b, c, accumulate),
    }
}

/// [`sgemm_in`] into a block of rows `ldc` floats apart: [`sgemm_ld`] or [`sgemm_bf16_ld`].
pub fn sgemm_ld_in(
    precision: Precision,
    a: StridedMat,
    b: StridedMat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    match precision {
        Precision::F32 => sgemm_ld(a, b, c, ldc, accumulate),
        Precision::Bf16 => sgemm_bf16_ld(a, b, c, ldc, accumulate),
    }
}

/// `c = a @ b + bias` (bias added to every row) in `precision`: [`sgemm_bias`] or
/// [`sgemm_bf16_bias`]. The bias itself is never rounded.
pub fn sgemm_bias_in(precision: Precision, a: StridedMat, b: StridedMat, bias: &[f32], c: &mut [f32]) {
    match precision {
        Precision::F32 => sgemm_bias(a, b, bias, c),
        Precision::Bf16 => sgemm_bf16_bias(a, b, bias, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::round_to_bf16;
    use crate::testing::randn;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("BF16".parse::<Precision>(), Ok(Precision::Bf16));
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.contains("'fp16'") && err.contains("f32 or bf16"), "{err}");
        assert_eq!(Precision::default(), Precision::F32);
    }

    /// The bias entry points equal the product followed by the addition, bit for bit, in
    /// both precisions, and bf16 differs from f32 exactly by the operands' rounding.
    #[test]
    fn bias_entry_points_equal_product_then_addition() {
        let (m, k, n) = (37, 70, 45);
        let (a, b, bias) = (randn(m * k, 1), randn(n * k, 2), randn(n, 3));
        for p in [Precision::F32, Precision::Bf16] {
            let (am, bm) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, true));
            let mut fused = vec![f32::NAN; m * n];
            sgemm_bias_in(p, am, bm, &bias, &mut fused);
            let mut two_pass = vec![f32::NAN; m * n];
            sgemm_in(p, am, bm, &mut two_pass, false);
            for row in two_pass.chunks_exact_mut(n) {
                row.iter_mut().zip(&bias).for_each(|(v, &x)| *v += x);
            }
            assert_eq!(fused, two_pass, "{p}");
        }
        // Into a block of wider rows: the same values, the floats between the rows untouched.
        for p in [Precision::F32, Precision::Bf16] {
            let (am, bm) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, true));
            let mut whole = vec![0.0; m * n];
            sgemm_in(p, am, bm, &mut whole, false);
            let ldc = n + 5;
            let mut wide = vec![-7.0; m * ldc];
            sgemm_ld_in(p, am, bm, &mut wide, ldc, false);
            for (row, wide_row) in whole.chunks_exact(n).zip(wide.chunks_exact(ldc)) {
                assert_eq!(row, &wide_row[..n], "{p}");
                assert!(wide_row[n..].iter().all(|&x| x == -7.0), "{p}");
            }
        }
        // bf16 = the f32 GEMM of rounded operands, up to f32 summation order.
        let (ar, br): (Vec<f32>, Vec<f32>) =
            (a.iter().map(|&x| round_to_bf16(x)).collect(), b.iter().map(|&x| round_to_bf16(x)).collect());
        let mut want = vec![0.0; m * n];
        sgemm(
            StridedMat::row_major(&ar, m, k, false),
            StridedMat::row_major(&br, k, n, true),
            &mut want,
            false,
        );
        let mut got = vec![0.0; m * n];
        sgemm_in(
            Precision::Bf16,
            StridedMat::row_major(&a, m, k, false),
            StridedMat::row_major(&b, k, n, true),
            &mut got,
            false,
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()) * k as f32, "{g} vs {w}");
        }
    }
}
