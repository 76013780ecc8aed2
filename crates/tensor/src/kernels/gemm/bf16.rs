//! The bf16 GEMM: `c (+)= bf16(a) @ bf16(b)`, operands given in f32 and rounded to bf16
//! while they are packed, products summed in f32 (mixed precision, as PyTorch's CPU autocast
//! computes its GEMMs).
//!
//! bf16 keeps the f32 exponent and 8 bits of significand (7 stored). The product of two
//! bf16 values has at most 16 significant bits, so it is exact in f32: the only roundings of
//! the GEMM are those of the operands (once each) and those of the f32 sums.
//!
//! # Backends
//!
//! * [`Bf16Backend::Avx512Bf16`]: the packed driver of [`gemm`](super) with the 12 x 32
//!   `vdpbf16ps` micro-kernel (`avx512bf16.rs`), which takes k two steps at a time; the
//!   driver's jobs, shared packing of `b`, edge tiles and determinism are those of
//!   [`sgemm`](super::sgemm).
//! * [`Bf16Backend::RoundedF32`], on every CPU: rounds both operands to bf16 into f32
//!   copies, then runs the f32 GEMM ([`sgemm`](super::sgemm)) on them.
//!
//! # How the two compare
//!
//! `vdpbf16ps` adds a pair of products to an f32 accumulator as two roundings in a fixed
//! order, the odd step first: `acc = (acc + a[2q+1] b[2q+1]) + a[2q] b[2q]` (Intel's
//! pseudocode; measured the same, bit for bit, on Zen 4 over a million random cases). The
//! fallback feeds the f32 GEMM the steps in that order (each pair swapped), and the f32
//! kernels add one exact product per step with the same K blocks, so on the packed f32
//! backends (AVX-512F, AVX2) the bits equal the native kernel's except where:
//!
//! * a partial sum falls below the smallest normal f32 (2^-126): `vdpbf16ps` runs with
//!   "DAZ in, FTZ out" whatever MXCSR says, so such sums become zero, where the f32 GEMM keeps
//!   them as subnormals (operands never are: the rounding flushes subnormal inputs, as
//!   `vcvtne2ps2bf16` does);
//! * the f32 backend is the portable one (matrixmultiply), which sums in its own order: the
//!   results then agree to f32 summation error.

use super::{gemm_backend, product_is_empty, sgemm_block, Dest, StridedMat};
use std::sync::OnceLock;

/// `x` rounded to the nearest bf16 (ties to even), as `vcvtne2ps2bf16` rounds: the upper 16
/// bits of the f32 it rounds to. Subnormal inputs (and zeros) become zeros of the same sign,
/// NaNs stay NaNs (made quiet, their upper payload bits kept), infinities stay infinite, and
/// values above the largest bf16 round to infinity.
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        // Truncated, with the quiet bit (bit 6 of the bf16) set.
        ((bits >> 16) | 0x40) as u16
    } else if bits & 0x7f80_0000 == 0 {
        // Zero exponent: zero or subnormal, flushed to a signed zero.
        ((bits >> 16) & 0x8000) as u16
    } else {
        // Adding just under half a bf16 ulp (exactly half when the kept part is odd) carries
        // into the upper half exactly when rounding to nearest-even rounds up; an overflow
        // of the exponent gives infinity.
        let bias = 0x7fff + ((bits >> 16) & 1);
        ((bits + bias) >> 16) as u16
    }
}

/// The f32 value of the bf16 whose bits are `bits` (exact: the bits become the upper half).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// `x` rounded to bf16 and back: `bf16_to_f32(f32_to_bf16(x))`.
pub fn round_to_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

/// Which implementation [`sgemm_bf16_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Backend {
    /// The packed GEMM with the 12 x 32 `vdpbf16ps` micro-kernel (x86-64 with AVX512_BF16).
    Avx512Bf16,
    /// Both operands rounded to bf16 into f32 copies, then the f32 GEMM (any CPU); see the
    /// module documentation for how its bits compare with the native kernel's.
    RoundedF32,
}

impl Bf16Backend {
    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Bf16Backend::RoundedF32 => true,
            #[cfg(target_arch = "x86_64")]
            Bf16Backend::Avx512Bf16 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Bf16Backend::Avx512Bf16 => false,
        }
    }
}

/// The bf16 backend of this CPU: the native kernel where it has AVX512_BF16, else the f32
/// fallback (detected on the first call, then cached).
pub fn bf16_backend() -> Bf16Backend {
    static DETECTED: OnceLock<Bf16Backend> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        if Bf16Backend::Avx512Bf16.is_available() {
            Bf16Backend::Avx512Bf16
        } else {
            Bf16Backend::RoundedF32
        }
    })
}

/// `c = bf16(a) @ bf16(b)` (or `c += ...` when `accumulate`), `c` row-major
/// `[a.rows(), b.cols()]`: both operands rounded to bf16 ([`f32_to_bf16`]), their products
/// summed in f32, with the backend of this CPU ([`bf16_backend`]). As [`sgemm`](super::sgemm),
/// the bits do not depend on the number of threads, and without `accumulate` the old
/// contents of `c` are never read.
pub fn sgemm_bf16(a: StridedMat, b: StridedMat, c: &mut [f32], accumulate: bool) {
    sgemm_bf16_with(bf16_backend(), a, b, c, accumulate);
}

/// [`sgemm_bf16`] with a chosen backend (for tests and benchmarks); panics if the CPU lacks
/// it.
pub fn sgemm_bf16_with(backend: Bf16Backend, a: StridedMat, b: StridedMat, c: &mut [f32], accumulate: bool) {
    let (m, n) = (a.rows, b.cols);
    assert_eq!(c.len(), m * n, "sgemm_bf16: c has {} elements, expected [{m}, {n}]", c.len());
    assert!(backend.is_available(), "sgemm_bf16: this CPU cannot run the {backend:?} backend");
    let mut dest = Dest { c, ldc: n, accumulate, bias: None };
    if product_is_empty(&a, &b, &mut dest) {
        return;
    }
    match backend {
        #[cfg(target_arch = "x86_64")]
        Bf16Backend::Avx512Bf16 => super::gemm_packed::<super::avx512bf16::Avx512Bf16>(a, b, dest),
        #[cfg(not(target_arch = "x86_64"))]
        Bf16Backend::Avx512Bf16 => unreachable!("sgemm_bf16: no AVX512_BF16 off x86-64"),
        Bf16Backend::RoundedF32 => rounded_f32(a, b, dest),
    }
}

/// [`sgemm_bf16`] into an `[m, n]` block of a larger row-major matrix whose rows are
/// `ldc >= n` floats apart (the bf16 form of [`sgemm_ld`](super::sgemm_ld)); the floats
/// between the block's rows are neither read nor written.
pub fn sgemm_bf16_ld(a: StridedMat, b: StridedMat, c: &mut [f32], ldc: usize, accumulate: bool) {
    let (m, n) = (a.rows, b.cols);
    super::check_ld("sgemm_bf16_ld", m, n, c.len(), ldc);
    let mut dest = Dest { c, ldc, accumulate, bias: None };
    if product_is_empty(&a, &b, &mut dest) {
        return;
    }
    match bf16_backend() {
        #[cfg(target_arch = "x86_64")]
        Bf16Backend::Avx512Bf16 => super::gemm_packed::<super::avx512bf16::Avx512Bf16>(a, b, dest),
        #[cfg(not(target_arch = "x86_64"))]
        Bf16Backend::Avx512Bf16 => unreachable!("sgemm_bf16: no AVX512_BF16 off x86-64"),
        Bf16Backend::RoundedF32 => rounded_f32(a, b, dest),
    }
}

/// `c = bf16(a) @ bf16(b) + bias`, `bias` (never rounded) added to every row: the bf16
/// version of [`sgemm_bias`](super::sgemm_bias). The native kernel adds the bias to each tile
/// as it completes it; the fallback (and an empty sum) adds it in a second pass. Both give
/// the bits of [`sgemm_bf16`] followed by the addition.
pub fn sgemm_bf16_bias(a: StridedMat, b: StridedMat, bias: &[f32], c: &mut [f32]) {
    let (m, n) = (a.rows, b.cols);
    assert_eq!(c.len(), m * n, "sgemm_bf16_bias: c has {} elements, expected [{m}, {n}]", c.len());
    assert_eq!(bias.len(), n, "sgemm_bf16_bias: bias has {} elements, expected {n}", bias.len());
    match bf16_backend() {
        #[cfg(target_arch = "x86_64")]
        Bf16Backend::Avx512Bf16 if a.cols > 0 && m > 0 && n > 0 => {
            assert_eq!(b.rows, a.cols, "sgemm_bf16_bias: a is {m}x{} but b is {}x{n}", a.cols, b.rows);
            let dest = Dest { c, ldc: n, accumulate: false, bias: Some(bias) };
            super::gemm_packed::<super::avx512bf16::Avx512Bf16>(a, b, dest);
        }
        backend => {
            sgemm_bf16_with(backend, a, b, &mut *c, false);
            for row in c.chunks_exact_mut(n.max(1)) {
                row.iter_mut().zip(bias).for_each(|(v, &x)| *v += x);
            }
        }
    }
}

/// The fallback: copies of `a` (row-major `[m, k]`) and `b` (stored transposed, `[n, k]`,
/// so that both copies run along k) rounded to bf16, with k in `vdpbf16ps`'s order (steps
/// `2q + 1, 2q` of each pair swapped, an odd last step left in place), then the f32 GEMM.
fn rounded_f32(a: StridedMat, b: StridedMat, dest: Dest) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let order = |p: usize| if p ^ 1 < k { p ^ 1 } else { p };
    let a_r: Vec<f32> = (0..m).flat_map(|i| (0..k).map(move |p| round_to_bf16(a.at(i, order(p))))).collect();
    let b_r: Vec<f32> = (0..n).flat_map(|j| (0..k).map(move |p| round_to_bf16(b.at(order(p), j)))).collect();
    let (a_r, b_r) = (StridedMat::row_major(&a_r, m, k, false), StridedMat::row_major(&b_r, k, n, true));
    sgemm_block(gemm_backend(), a_r, b_r, dest);
}
