//! The normal distribution's CDF `Phi(x) = erfc(-x / sqrt 2) / 2` and density in `f32`,
//! branch-free so that GELU's slice loops vectorise (see [`vecmath`](super::vecmath)).
//!
//! GELU took a third of the character-level GPT's training step when it called an `f64`
//! `erfc` and `exp` per element (opaque libm calls, one lane at a time). Here every element
//! evaluates all three pieces of fdlibm's `erff`/`erfcf` (SunPro, 1993; the rational
//! approximations and their coefficients are theirs) and selects one, so a loop over a slice
//! runs 16 (AVX-512), 8 (AVX2) or 4 (SSE2) lanes at a time:
//!
//! ```text
//! z = |x| / sqrt 2
//! z < 0.84375          erf z  = z + z P(z^2)/Q(z^2)
//! 0.84375 <= z < 1.25  erf z  = erx + P(z - 1)/Q(z - 1)
//! 1.25 <= z            erfc z = exp(-z^2 - 0.5625 + R(1/z^2)/S(1/z^2)) / z   (two fits, split at 1/0.35)
//! Phi(x) = (1 + erf z)/2 = 1 - erfc(z)/2 for x >= 0,   erfc(z)/2 for x < 0
//! ```
//!
//! In the negative tail `Phi` is tiny and only a relatively accurate `erfc` keeps it (PyTorch's
//! `(1 + erf)/2` rounds it away). There `z^2 = x^2/2` must not be rounded: an error `d` in the
//! exponent is a relative error `d` of the result, and `ulp(x^2)` grows with `x`. As fdlibm
//! does, `x` is split into `xh` (its top 11 bits, so `xh^2/2 + 0.5625` is exact) and
//! `xl = x - xh`, and `x^2/2 = xh^2/2 + xl (x + xh)/2` goes into two exponentials. The density
//! `phi(x) = exp(-x^2/2)/sqrt(2 pi)` of GELU's gradient uses the same split.
//!
//! Where `Phi` is small its relative error is `2 z^2` times its argument's or more, so the
//! rounding of `z = |x|/sqrt 2` itself is corrected to first order ([`over_sqrt_2`]).
//!
//! Accuracy (the tests sweep every 17th float in `[-16, 16]` against glibc's `f64` `erfc` and
//! `exp`): measured worst 3.6 ulp for `Phi`, 3.1 for `phi`, 4.8 for GELU (`x Phi(x)`, near
//! `x = -13`) and 4.6 for its derivative (against its larger term); the tests allow 4, 4, 5
//! and 5. Below `x = -13`, `Phi(x)` is subnormal and keeps a subnormal's absolute precision.
//! The old `f64` code (an `erfc` within 1.2e-7 relative, rounded once to `f32`) was within
//! about 1 ulp; PyTorch's `(1 + erf)/2` loses all bits in the negative tail.

// The approximations and coefficients below are fdlibm's (s_erf.c), under this notice:
//
// ====================================================
// Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
//
// Developed at SunPro, a Sun Microsystems, Inc. business.
// Permission to use, copy, modify, and distribute this
// software is freely granted, provided that this notice
// is preserved.
// ====================================================

use super::vecmath::{exp_nonpositive, widest_simd};

/// `1/sqrt(2)` and `1/sqrt(2 pi)` in `f32`.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.3989423;

/// Beyond this `|x|`, `Phi(-|x|)` and `phi(x)` are 0 in `f32`; clamping there keeps the split
/// of `x` finite for infinite inputs.
const SATURATION: f32 = 16.0;

// fdlibm's coefficients (s_erff.c), rounded to f32. erf on [0, 0.84375]: z + z pp(z^2)/qq(z^2).
const PP: [f32; 5] = [0.12837917, -0.3250421, -0.02848175, -0.0057702702, -2.3763017e-5];
const QQ: [f32; 5] = [0.3979172, 0.06502225, 0.005081306, 1.3249474e-4, -3.9602282e-6];
// erf on [0.84375, 1.25]: erx + pa(s)/qa(s), s = z - 1.
const ERX: f32 = 0.8450629;
const PA: [f32; 7] =
    [-0.0023621186, 0.4148561, -0.37220788, 0.31834662, -0.110894695, 0.035478305, -0.0021663755];
const QA: [f32; 6] = [0.10642088, 0.54039794, 0.071828656, 0.12617122, 0.013637084, 0.0119845];
// erfc on [1.25, 1/0.35]: ra(s)/sa(s), s = 1/z^2; and on [1/0.35, inf): rb/sb, padded with a
// zero coefficient to ra/sa's degree so that one evaluation serves both (the coefficients are
// selected per lane).
const RA: [f32; 8] =
    [-0.009864944, -0.69385856, -10.558626, -62.37533, -162.39667, -184.60509, -81.28744, -9.814329];
const SA: [f32; 8] = [19.651272, 137.65776, 434.5659, 645.38727, 429.00815, 108.635, 6.5702496, -0.060424414];
const RB: [f32; 8] =
    [-0.009864943, -0.79928327, -17.757956, -160.63638, -637.56647, -1025.0951, -483.5192, 0.0];
const SB: [f32; 8] = [30.33806, 325.7925, 1536.7296, 3199.8582, 2553.0503, 474.52853, -22.440952, 0.0];

/// `c[0] + t (c[1] + t (...))`, Horner's scheme.
#[inline(always)]
fn horner<const N: usize>(t: f32, c: &[f32; N]) -> f32 {
    c.iter().rev().fold(0.0, |acc, &k| acc * t + k)
}

/// `1 + t (c[0] + t (c[1] + ...))`: the denominators, whose constant term is 1.
#[inline(always)]
fn horner1<const N: usize>(t: f32, c: &[f32; N]) -> f32 {
    1.0 + t * horner(t, c)
}

/// `|x|` clamped to [`SATURATION`] (NaN stays NaN), its top 11 bits `xh` and the rest `xl`.
#[inline(always)]
fn split(x: f32) -> (f32, f32, f32) {
    let a = x.abs();
    let a = if a > SATURATION { SATURATION } else { a };
    let xh = f32::from_bits(a.to_bits() & 0xffff_e000);
    (a, xh, a - xh)
}

/// `a / sqrt 2` as `z + dz`: `z` the rounded product, `dz` what it lost (Dekker's exact
/// product with both factors split into 12-bit halves, plus the error of `f32` `1/sqrt 2`).
///
/// Where `Phi` is small its relative error is its argument's times `2 z^2` or more (4.8 ulp at
/// `x = -1.75` from rounding `z` alone), hence the correction in [`normal_cdf_pdf`].
#[inline(always)]
fn over_sqrt_2(a: f32) -> (f32, f32) {
    const HI: f32 = FRAC_1_SQRT_2;
    // 1/sqrt(2) - HI, the rounding error of the f32 constant.
    const LO: f32 = 1.210_161_7e-8;
    let z = a * HI;
    let ah = f32::from_bits(a.to_bits() & 0xffff_f000);
    let al = a - ah;
    let ch = f32::from_bits(HI.to_bits() & 0xffff_f000);
    let cl = HI - ch;
    let err = ((ah * ch - z) + ah * cl + al * ch) + al * cl;
    (z, err + a * LO)
}

/// The normal CDF `Phi(x) = P(N(0, 1) <= x)` within 4 ulp and the density
/// `phi(x) = exp(-x^2/2) / sqrt(2 pi)` within 4 ulp (see the module documentation), computed
/// together: `phi` also corrects `Phi` for the rounding of its argument. `Phi(-inf) = 0`,
/// `Phi(inf) = 1`, `phi(+-inf) = 0`; NaN for NaN.
#[inline(always)]
pub(crate) fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let (a, xh, xl) = split(x);
    // exp(-x^2/2) from the exact xh^2/2 and the small rest.
    let pdf = FRAC_1_SQRT_2PI * (exp_nonpositive(-0.5 * xh * xh) * exp_nonpositive(-0.5 * xl * (a + xh)));
    let (z, dz) = over_sqrt_2(a);
    let zz = z * z;
    // Small z: erf z = z + z y, y = pp/qq; middle: erf z = erx + pa/qa. One division serves
    // both (each lane keeps only its own region's value).
    let small = z < 0.843_75;
    let s = z - 1.0;
    let num = if small { horner(zz, &PP) } else { horner(s, &PA) };
    let den = if small { horner1(zz, &QQ) } else { horner1(s, &QA) };
    let y = num / den;
    // fdlibm's two orderings of erfc = 1 - erf, each exact where it is used.
    let erfc_small = if z < 0.25 { 1.0 - (z + z * y) } else { 0.5 - (z - 0.5 + z * y) };
    let erf_small = z + z * y;
    let (erf_mid, erfc_mid) = (ERX + y, (1.0 - ERX) - y);
    // Tail: erfc z = exp(-x^2/2 - 0.5625 + r/s) / z, the exponent split as the module says.
    let far = z >= 1.0 / 0.35;
    let t = 1.0 / zz;
    let mut r = 0.0;
    let mut q = 0.0;
    for i in (0..8).rev() {
        r = r * t + if far { RB[i] } else { RA[i] };
        q = q * t + if far { SB[i] } else { SA[i] };
    }
    let q = 1.0 + t * q;
    let e = exp_nonpositive(-0.5 * xh * xh - 0.5625) * exp_nonpositive(-0.5 * xl * (a + xh) + r / q);
    let erfc_tail = e / z;
    // Below 1.25 the pieces are functions of the rounded z: d(erf z)/2 = dz exp(-z^2)/sqrt(pi)
    // = dz sqrt(2) phi(x) restores the exact argument to first order (dz^2 is far below an ulp).
    let corr = dz * std::f32::consts::SQRT_2 * pdf;
    let (upper, lower) = if small {
        (0.5 + (0.5 * erf_small + corr), 0.5 * erfc_small - corr)
    } else if z < 1.25 {
        (0.5 + (0.5 * erf_mid + corr), 0.5 * erfc_mid - corr)
    } else {
        (1.0 - 0.5 * erfc_tail, 0.5 * erfc_tail)
    };
    (if x < 0.0 { lower } else { upper }, pdf)
}

/// [`normal_cdf_pdf`]'s `Phi(x)`.
#[inline(always)]
pub(crate) fn normal_cdf(x: f32) -> f32 {
    normal_cdf_pdf(x).0
}

/// [`normal_cdf_pdf`]'s `phi(x)` (the kernels take both at once).
#[cfg(test)]
fn normal_pdf(x: f32) -> f32 {
    normal_cdf_pdf(x).1
}

widest_simd! {
    /// `out = x Phi(x)` (exact GELU); `x` and `out` have the same length.
    fn gelu_into(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * normal_cdf(v);
        }
    }
}

widest_simd! {
    /// `dx += dy (Phi(x) + x phi(x))` (GELU's gradient), elementwise over equal lengths.
    fn gelu_backward_into(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            let (p, d1) = normal_cdf_pdf(v);
            *d += g * (p + v * d1);
        }
    }
}

widest_simd! {
    /// `out = x Phi(x)` and `deriv = Phi(x) + x phi(x)` (GELU and its derivative, for a
    /// backward that is then one product); all three have the same length.
    fn gelu_and_derivative_into(x: &[f32], out: &mut [f32], deriv: &mut [f32]) {
        for ((o, d), &v) in out.iter_mut().zip(deriv.iter_mut()).zip(x) {
            let (p, d1) = normal_cdf_pdf(v);
            *o = v * p;
            *d = p + v * d1;
        }
    }
}

widest_simd! {
    /// `dx += dy * a`, elementwise over equal lengths.
    fn add_dy_times(a: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((d, &a), &g) in dx.iter_mut().zip(a).zip(dy) {
            *d += g * a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // glibc's double-precision functions (libm is linked into every Rust program on Linux),
    // correctly rounded to within an ulp of f64: the reference the f32 results are held to.
    extern "C" {
        fn erfc(x: f64) -> f64;
    }

    fn phi_ref(x: f32) -> f64 {
        // SAFETY: erfc is a pure function of one double.
        0.5 * unsafe { erfc(-(x as f64) * std::f64::consts::FRAC_1_SQRT_2) }
    }

    fn pdf_ref(x: f32) -> f64 {
        let x = x as f64;
        (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    }

    /// `|got - want|` in units of the `f32` spacing at `scale` (the size of the result, or of
    /// its largest term where terms cancel).
    fn ulps(got: f32, want: f64, scale: f64) -> f64 {
        let s = (scale.abs() as f32).max(f32::MIN_POSITIVE);
        let spacing = f32::from_bits(s.to_bits() + 1) as f64 - s as f64;
        (got as f64 - want).abs() / spacing
    }

    /// Every `step`-th float of `[0, hi]` with both signs, and the region boundaries.
    fn sweep(hi: f32, step: usize) -> impl Iterator<Item = f32> {
        let bounds = [0.843_75, 1.25, 1.0 / 0.35].map(|z: f32| z * std::f32::consts::SQRT_2);
        (0..=hi.to_bits()).step_by(step).map(f32::from_bits).chain(bounds).flat_map(|v| [v, -v])
    }

    /// The worst error in ulps of `f` against `want = (value, scale)` over every 17th float of
    /// `[-13, 13]`, and where it occurs. Below -13, `Phi(x) < 6e-39` is subnormal and its
    /// products (GELU) keep only a subnormal's absolute precision: there the error must be
    /// below `1e-42`, out to 16 where everything is 0.
    fn worst(f: impl Fn(f32) -> f32, want: impl Fn(f32) -> (f64, f64)) -> (f64, f32) {
        let mut worst = (0.0, 0.0);
        for x in sweep(SATURATION, 17) {
            let (got, (w, scale)) = (f(x), want(x));
            if x.abs() <= 13.0 {
                let e = ulps(got, w, scale);
                if e > worst.0 || e.is_nan() {
                    worst = (e, x);
                }
            } else {
                assert!((got as f64 - w).abs() <= 1e-42, "x = {x:e}: {got:e} vs {w:e}");
            }
        }
        worst
    }

    #[test]
    fn normal_cdf_is_within_4_ulp_of_libm_erfc() {
        let (e, x) = worst(normal_cdf, |x| (phi_ref(x), phi_ref(x)));
        assert!(e <= 4.0, "Phi: {e} ulp at x = {x:e}");
    }

    #[test]
    fn normal_pdf_is_within_4_ulp() {
        let (e, x) = worst(normal_pdf, |x| (pdf_ref(x), pdf_ref(x)));
        assert!(e <= 4.0, "phi: {e} ulp at x = {x:e}");
    }

    #[test]
    fn gelu_and_its_derivative_are_within_5_ulp() {
        let gelu = |x: f32| x as f64 * phi_ref(x);
        let (e, x) = worst(|x| x * normal_cdf(x), |x| (gelu(x), gelu(x)));
        assert!(e <= 5.0, "gelu: {e} ulp at x = {x:e}");
        // The derivative crosses 0 at x = -0.75 by cancellation: its error is measured against
        // the larger of its two terms.
        let (e, x) = worst(
            |x| normal_cdf(x) + x * normal_pdf(x),
            |x| (phi_ref(x) + x as f64 * pdf_ref(x), phi_ref(x).max((x as f64 * pdf_ref(x)).abs())),
        );
        assert!(e <= 5.0, "gelu': {e} ulp at x = {x:e}");
    }

    #[test]
    fn specials_saturate_and_nan_propagates() {
        assert_eq!((normal_cdf(f32::INFINITY), normal_cdf(f32::NEG_INFINITY)), (1.0, 0.0));
        assert_eq!(
            (normal_cdf(100.0), normal_cdf(-100.0), normal_cdf(0.0), normal_cdf(-0.0)),
            (1.0, 0.0, 0.5, 0.5)
        );
        assert_eq!((normal_pdf(f32::INFINITY), normal_pdf(-40.0)), (0.0, 0.0));
        assert!(normal_cdf(f32::NAN).is_nan() && normal_pdf(f32::NAN).is_nan());
    }

    #[test]
    fn slice_kernels_equal_the_scalar_functions_bit_for_bit() {
        // 1001 values (not a multiple of any vector width) across every region, and specials.
        let mut x: Vec<f32> =
            (0..1001).map(|i| ((i as f32) * 0.7311).sin() * 14.0 / (1 + i % 7) as f32).collect();
        x.extend([0.0, -0.0, 1e-30, -1e-30, 20.0, -20.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        let dy: Vec<f32> = x.iter().map(|v| 0.5 - v.cos()).collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        let mut out = vec![0.0; x.len()];
        gelu_into(&x, &mut out);
        assert_eq!(bits(&out), bits(&x.iter().map(|&v| v * normal_cdf(v)).collect::<Vec<_>>()));
        let mut dx = dy.clone();
        gelu_backward_into(&x, &dy, &mut dx);
        let want: Vec<f32> =
            x.iter().zip(&dy).map(|(&v, &g)| g + g * (normal_cdf(v) + v * normal_pdf(v))).collect();
        assert_eq!(bits(&dx), bits(&want));
        // The saved derivative gives the same gradient bit for bit.
        let mut deriv = vec![0.0; x.len()];
        gelu_and_derivative_into(&x, &mut out, &mut deriv);
        assert_eq!(bits(&out), bits(&x.iter().map(|&v| v * normal_cdf(v)).collect::<Vec<_>>()));
        let mut dx = dy.clone();
        add_dy_times(&deriv, &dy, &mut dx);
        assert_eq!(bits(&dx), bits(&want));
    }
}
