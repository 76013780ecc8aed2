//! The normal distribution's CDF `Phi(x) = erfc(-x / sqrt 2) / 2` and density in `f32`,
//! branch-free so that GELU's slice loops vectorise (see [`vecmath`](super::vecmath)).
//!
//! GELU took a third of the character-level GPT's training step when it called an `f64`
//! `erfc` and `exp` per element (opaque libm calls, one lane at a time). Vectorised as
//! fdlibm's three-piece `erff`/`erfcf`, every lane still paid for all three pieces (four
//! divisions, four exponentials): 3.9 ns per element. One formula now covers every `x`, with
//! one exponential (shared with the density) and one division, 1.5 ns per element (16 AVX-512
//! lanes, one thread, `gelu_and_derivative_into`):
//!
//! ```text
//! a = min(|x|, 16),   t = 1/(1 + a/4)  in [1/5, 1]
//! Phi(-a) = P(t) exp(-a^2/2),   P(t) = Phi(-a) exp(a^2/2)   (degree 11 in t - 3/8)
//! Phi(x)  = Phi(-a) for x < 0,   1 - Phi(-a) for x >= 0
//! phi(x)  = exp(-a^2/2) / sqrt(2 pi)
//! ```
//!
//! `P` is smooth and bounded (from 1/2 at `a = 0` down to `0.025` at `a = 16`, where
//! `P ~ 1/(a sqrt(2 pi))`): the Gaussian factor and the tail's `1/a` decay are taken out, so a
//! polynomial in `t` fits it within 9.3e-9 relative. `tests/fixtures/gelu_fit.py` fits it
//! (minimax, mpmath reference) and prints the coefficients below.
//!
//! In the negative tail `Phi` is tiny and only a relatively accurate `erfc` keeps it (PyTorch's
//! `(1 + erf)/2` rounds it away). There `a^2/2` must not be rounded: an error `d` in the
//! exponent is a relative error `d` of the result, and `ulp(a^2)` grows with `a`. As fdlibm
//! does, `a` is split into `xh` (its top 11 bits, so `xh^2/2` is exact) and `xl = a - xh`, and
//! `a^2/2 = xh^2/2 + xl (a + xh)/2`; the small second part joins the exponential's reduced
//! argument instead of the large first one ([`exp_nonpositive_sum`]).
//!
//! Near `a = 0`, `P(t)` moves 1.6 times as fast as `t` does, so the two roundings of `t` (the
//! sum `1 + a/4` and the quotient) would cost up to 6 ulp of `Phi`. Both are measured exactly
//! (Fast2Sum, and Dekker's product for `t (1 + a/4) - 1`) and undone to first order with the
//! closed-form derivative `P'(t) t = 4 (1/sqrt(2 pi) - a P) / t`.
//!
//! Accuracy (the tests sweep every 17th float in `[-16, 16]` against glibc's `f64` `erfc` and
//! `exp`): measured worst 3.8 ulp for `Phi` (near `x = -0.68`), 2.0 for `phi`, 4.5 for GELU
//! (`x Phi(x)`, near `x = 0.004`) and 4.3 for its derivative (against its larger term); the
//! tests allow 4, 4, 5 and 5. Every float of `[-13, 13]` (a one-off sweep, four minutes)
//! gives 4.08 ulp for `Phi` (at `x = -0.696`, where `Phi` lies just below 1/4 and an ulp is
//! smallest relative to it), 4.53 for GELU and 4.60 for its derivative (the fdlibm version
//! this replaced: 3.96, 4.97 and 4.92). Below `x = -13`, `Phi(x)` is subnormal and keeps a
//! subnormal's absolute precision. The old `f64` code (an `erfc` within 1.2e-7 relative,
//! rounded once to `f32`) was within about 1 ulp; PyTorch's `(1 + erf)/2` loses all bits in the
//! negative tail.

use super::vecmath::{exp_nonpositive_sum, widest_simd};

/// `1/sqrt(2 pi)` in `f32`.
const FRAC_1_SQRT_2PI: f32 = 0.3989423;

/// Beyond this `|x|`, `Phi(-|x|)` and `phi(x)` are 0 in `f32`; clamping there keeps the split
/// of `x` finite for infinite inputs (and bounds the fitted range of `t`).
const SATURATION: f32 = 16.0;

/// `P(t) = Phi(-a) exp(a^2/2)` for `t = 1/(1 + a/4)`, as `P0 + w (P[0] + w (P[1] + ...))` in
/// `w = t - 3/8`: the output of `tests/fixtures/gelu_fit.py` (a minimax fit of relative error
/// 9.3e-9 on `t` in `[1/5, 1]`, coefficients rounded to `f32`).
const P0: f32 = 0.05857692;
const P: [f32; 11] = [
    0.23977216,
    0.32355008,
    0.36731988,
    0.33634287,
    0.22630802,
    0.07978594,
    -0.026120057,
    -0.042722348,
    -0.059407584,
    0.09898448,
    -0.039909754,
];

/// `c[0] + t (c[1] + t (...))`, Horner's scheme.
#[inline(always)]
fn horner<const N: usize>(t: f32, c: &[f32; N]) -> f32 {
    c.iter().rev().fold(0.0, |acc, &k| acc * t + k)
}

/// `|x|` clamped to [`SATURATION`] (NaN stays NaN), its top 11 bits `xh` and the rest `xl`.
#[inline(always)]
fn split(x: f32) -> (f32, f32, f32) {
    let a = x.abs();
    let a = if a > SATURATION { SATURATION } else { a };
    let xh = f32::from_bits(a.to_bits() & 0xffff_e000);
    (a, xh, a - xh)
}

/// `v` with the low 12 bits of its significand cleared: a 12-bit half for Dekker's exact
/// product.
#[inline(always)]
fn high_half(v: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0xffff_f000)
}

/// The normal CDF `Phi(x) = P(N(0, 1) <= x)` within 4.1 ulp and the density
/// `phi(x) = exp(-x^2/2) / sqrt(2 pi)` within 4 ulp (see the module documentation), computed
/// together: both take the same `exp(-x^2/2)`. `Phi(-inf) = 0`, `Phi(inf) = 1`,
/// `phi(+-inf) = 0`; NaN for NaN.
#[inline(always)]
pub(crate) fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let (a, xh, xl) = split(x);
    // exp(-x^2/2) from the exact xh^2/2 and the small rest.
    let gauss = exp_nonpositive_sum(-0.5 * xh * xh, -0.5 * xl * (a + xh));
    let pdf = FRAC_1_SQRT_2PI * gauss;
    // t = 1/(1 + q), q = a/4 exact. Near a = 0, P(t) moves 1.6 times as fast as t: the two
    // roundings of t (the sum and the quotient, up to 1.2e-7 relative) would cost up to 6 ulp
    // of Phi. They are measured exactly and undone to first order below.
    let q = 0.25 * a;
    let d = 1.0 + q;
    let t = 1.0 / d;
    // w = t - 3/8 is exact for t in [3/16, 1] (Sterbenz, and t's multiples of 2^-24 above 3/4).
    let w = t - 0.375;
    let tail = w * horner(w, &P);
    // P(t) rounded, for the correction's derivative only (its own error is second order).
    let p = P0 + tail;
    // The sum's error (1 + q) - d, exact (Fast2Sum with the larger term first).
    let (big, small) = if q > 1.0 { (q, 1.0) } else { (1.0, q) };
    let d_err = (big - d) + small;
    // The quotient's error: t d - 1, exact from Dekker's product of 12-bit halves.
    let (th, dh) = (high_half(t), high_half(d));
    let (tl, dl) = (t - th, d - dh);
    let rho = (((th * dh - 1.0) + th * dl) + tl * dh) + tl * dl;
    // The exact t is t (1 + delta), and P'(t) t = 4 (1/sqrt(2 pi) - a P(t)) / t (from
    // d/da [Phi(-a) exp(a^2/2)] = a Phi(-a) exp(a^2/2) - 1/sqrt(2 pi)), with 1/t = d.
    let delta = -(rho + d_err * t);
    // The correction joins the tail before the last addition, so it adds no rounding.
    let p = P0 + (tail + (4.0 * d) * (FRAC_1_SQRT_2PI - a * p) * delta);
    let lower = p * gauss;
    (if x < 0.0 { lower } else { 1.0 - lower }, pdf)
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

    /// Times `gelu_and_derivative_into` over the character-level GPT's 1.57 M elements per step
    /// (median of 50 repetitions, one thread). Run it with
    /// `cargo test -p adamant-tensor --release --lib erf -- --ignored --nocapture`.
    #[test]
    #[ignore = "a timing, not a check: run it by hand in release"]
    fn time_gelu_and_derivative() {
        let n = 1_572_864;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.7311).sin() * 4.0).collect();
        let (mut out, mut deriv) = (vec![0.0; n], vec![0.0; n]);
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let start = std::time::Instant::now();
                gelu_and_derivative_into(&x, &mut out, &mut deriv);
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let checksum: f64 = out.iter().chain(&deriv).map(|&v| v as f64).sum();
        println!(
            "gelu_and_derivative_into: {:.3} ns/element (checksum {checksum:e})",
            times[25] * 1e9 / n as f64
        );
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
