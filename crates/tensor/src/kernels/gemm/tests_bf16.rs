//! Tests of the bf16 GEMM: the rounding, parity with an exact product of the rounded
//! operands, determinism, and the fallback against the native kernel.

use super::tests::{assert_thread_independent, reference, SHAPES};
use super::*;
use crate::testing::randn;

/// Every bf16 backend this CPU can run (the fallback always).
fn backends() -> Vec<Bf16Backend> {
    [Bf16Backend::Avx512Bf16, Bf16Backend::RoundedF32].into_iter().filter(|b| b.is_available()).collect()
}

/// The same view over a copy of its data rounded to bf16: the operand the GEMM multiplies.
fn rounded<'a>(x: &StridedMat, store: &'a mut Vec<f32>) -> StridedMat<'a> {
    *store = x.data.iter().map(|&v| round_to_bf16(v)).collect();
    StridedMat { data: store, ..*x }
}

/// Runs `backend` on `a @ b` (over `init` if accumulating, over NaNs if not) and checks every
/// element against the f64 product of the bf16-rounded operands, within f32 summation error.
fn check(backend: Bf16Backend, a: StridedMat, b: StridedMat, accumulate: bool, what: &str) {
    let (m, n) = (a.rows(), b.cols());
    let init = randn(m * n, 99);
    let mut c = if accumulate { init.clone() } else { vec![f32::NAN; m * n] };
    sgemm_bf16_with(backend, a, b, &mut c, accumulate);
    let (mut a_store, mut b_store) = (vec![], vec![]);
    let (a_r, b_r) = (rounded(&a, &mut a_store), rounded(&b, &mut b_store));
    let (want, tol) = reference(&a_r, &b_r, accumulate.then_some(&init[..]));
    for (idx, (&got, (&w, &t))) in c.iter().zip(want.iter().zip(&tol)).enumerate() {
        assert!(
            (got as f64 - w).abs() <= t,
            "{backend:?} {what} acc={accumulate}: c[{}, {}] = {got}, want {w} (tolerance {t})",
            idx / n,
            idx % n
        );
    }
}

#[test]
fn rounding_exact_cases() {
    // (f32 bits, bf16 bits)
    let cases = [
        (0x3f80_0000u32, 0x3f80u16), // 1: exact
        (0xbfc0_0000, 0xbfc0),       // -1.5: exact
        (0x3f80_7fff, 0x3f80),       // just below half an ulp: down
        (0x3f80_8000, 0x3f80),       // a tie, kept part even: down
        (0x3f81_8000, 0x3f82),       // a tie, kept part odd: up
        (0x3f80_8001, 0x3f81),       // just above a tie: up
        (0xbf81_8000, 0xbf82),       // ties to even for negatives too
        (0x3fff_ffff, 0x4000),       // rounding up carries into the exponent
        (0x7f7f_7fff, 0x7f7f),       // largest finite bf16
        (0x7f7f_8000, 0x7f80),       // a tie above it: overflows to infinity
        (0x7f7f_ffff, 0x7f80),       // f32::MAX: infinity
        (0xff7f_ffff, 0xff80),       // -f32::MAX: -infinity
        (0x7f80_0000, 0x7f80),       // infinities stay
        (0xff80_0000, 0xff80),
        (0x0000_0000, 0x0000), // zeros keep their sign
        (0x8000_0000, 0x8000),
        (0x0080_0000, 0x0080), // the smallest normal stays
        (0x0000_0001, 0x0000), // subnormals flush to a signed zero
        (0x007f_ffff, 0x0000),
        (0x807f_ffff, 0x8000),
        (0x7fc0_0000, 0x7fc0), // quiet NaN
        (0x7f80_0001, 0x7fc0), // signaling NaN whose payload is below bf16: quiet, still NaN
        (0xff81_2345, 0xffc1), // negative NaN: sign and upper payload kept, made quiet
    ];
    for (x, want) in cases {
        let got = f32_to_bf16(f32::from_bits(x));
        assert_eq!(got, want, "f32_to_bf16({x:#010x}) = {got:#06x}, want {want:#06x}");
    }
    // Every bf16 converts to f32 exactly and back unchanged, but subnormals (flushed to zero)
    // and NaNs (made quiet, still NaN).
    for bits in 0..=u16::MAX {
        let x = bf16_to_f32(bits);
        assert_eq!(x.to_bits(), (bits as u32) << 16);
        let back = f32_to_bf16(x);
        if x.is_nan() {
            assert!(bf16_to_f32(back).is_nan() && back == bits | 0x40, "{bits:#06x}");
        } else if bits & 0x7f80 == 0 {
            assert_eq!(back, bits & 0x8000, "{bits:#06x}");
        } else {
            assert_eq!(back, bits, "{bits:#06x}");
            assert_eq!(round_to_bf16(x).to_bits(), x.to_bits());
        }
    }
}

fn check_transposes(ta: bool, tb: bool) {
    for backend in backends() {
        for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = randn(m * k, 2 * s as u64);
            let b = randn(k * n, 2 * s as u64 + 1);
            let (av, bv) = (StridedMat::row_major(&a, m, k, ta), StridedMat::row_major(&b, k, n, tb));
            let what = format!("{m}x{k}x{n} ta={ta} tb={tb}");
            check(backend, av, bv, false, &what);
            check(backend, av, bv, true, &what);
        }
    }
}

// SHAPES has odd k (1, 7, 5, 17, 31, 257, 97), edge tiles on both sides and up to three K
// blocks (600), one of them odd (513: two blocks of 256 and 1).

#[test]
fn nn_matches_reference_of_rounded_operands() {
    check_transposes(false, false);
}

#[test]
fn nt_matches_reference_of_rounded_operands() {
    check_transposes(false, true);
}

#[test]
fn tn_matches_reference_of_rounded_operands() {
    check_transposes(true, false);
}

#[test]
fn tt_matches_reference_of_rounded_operands() {
    check_transposes(true, true);
}

#[test]
fn general_strides_match_reference_of_rounded_operands() {
    // Neither rows nor columns contiguous (the element-by-element packers), windows of wider
    // arrays, odd k.
    let (m, k, n) = (29, 41, 50);
    let big_a = randn(3 * m * 2 * k, 5);
    let a = StridedMat::new(&big_a, m, k, 3 * 2 * k, 2);
    let big_b = randn(60 * 77, 6);
    let b = StridedMat::new(&big_b[77 * 3 + 5..], k, n, 77, 1);
    let bt = StridedMat::new(&big_b[2..], k, n, 1, 77);
    let b_strided = StridedMat::new(&big_b, k, n, 2 * 50 + 3, 2);
    for backend in backends() {
        for acc in [false, true] {
            check(backend, a, b, acc, "strided a, windowed b");
            check(backend, a, bt, acc, "strided a, transposed window of b");
            check(backend, b.transposed(), b_strided, acc, "window as a, strided b");
        }
    }
}

/// Shapes big enough for several jobs, serially and in parallel, bit for bit: a 2 x 2 grid
/// with edge tiles and an odd k, four K blocks (the last shorter, a over 1 MiB), the dense
/// layer's column jobs, and row jobs that share one packing of b.
#[test]
fn parallel_equals_serial_bitwise() {
    let shapes = [(150, 301, 200), (300, 1001, 300), (128, 600, 1000), (384, 768, 128)];
    for backend in backends() {
        assert_thread_independent(&shapes, &format!("{backend:?}"), |a, b, c, acc| {
            sgemm_bf16_with(backend, a, b, c, acc)
        });
    }
}

/// The fallback sums in `vdpbf16ps`'s order, so with a packed f32 backend it gives the
/// native kernel's bits when no partial sum is subnormal (always, on data of unit size);
/// with the portable one, values within the f32 summation bound. The last shape has row jobs
/// sharing one packing of b, whose last K block (255 steps) is padded.
#[test]
fn fallback_equals_native_kernel() {
    if !Bf16Backend::Avx512Bf16.is_available() {
        return;
    }
    let bitwise = gemm_backend() != GemmBackend::Portable;
    for (s, &(m, k, n)) in
        SHAPES.iter().chain(&[(150, 301, 200), (64, 1600, 96), (384, 767, 128)]).enumerate()
    {
        let a = randn(m * k, 60 + s as u64);
        let b = randn(k * n, 70 + s as u64);
        let init = randn(m * n, 80 + s as u64);
        for (ta, tb, acc) in
            [(false, false, true), (true, false, false), (false, true, false), (true, true, true)]
        {
            let (av, bv) = (StridedMat::row_major(&a, m, k, ta), StridedMat::row_major(&b, k, n, tb));
            let run = |backend| {
                let mut c = init.clone();
                sgemm_bf16_with(backend, av, bv, &mut c, acc);
                c
            };
            let (native, fallback) = (run(Bf16Backend::Avx512Bf16), run(Bf16Backend::RoundedF32));
            let what = format!("{m}x{k}x{n} ta={ta} tb={tb} acc={acc}");
            if bitwise {
                assert!(native == fallback, "{what}");
            } else {
                let (mut a_store, mut b_store) = (vec![], vec![]);
                let (a_r, b_r) = (rounded(&av, &mut a_store), rounded(&bv, &mut b_store));
                let (_, tol) = reference(&a_r, &b_r, acc.then_some(&init[..]));
                for ((x, y), t) in native.iter().zip(&fallback).zip(&tol) {
                    assert!(((x - y) as f64).abs() <= 2.0 * t, "{what}: {x} vs {y}");
                }
            }
        }
    }
}

/// Where the two differ by design: `vdpbf16ps` flushes a subnormal sum to zero (FTZ), the f32
/// GEMM keeps it. 2^-70 * 2^-70 = 2^-140 is subnormal in f32.
#[test]
fn native_kernel_flushes_subnormal_sums() {
    if !Bf16Backend::Avx512Bf16.is_available() {
        return;
    }
    let tiny = [2f32.powi(-70)];
    let (a, b) = (StridedMat::row_major(&tiny, 1, 1, false), StridedMat::row_major(&tiny, 1, 1, false));
    let run = |backend| {
        let mut c = [f32::NAN];
        sgemm_bf16_with(backend, a, b, &mut c, false);
        c[0]
    };
    assert_eq!(run(Bf16Backend::Avx512Bf16).to_bits(), 0);
    assert_eq!(run(Bf16Backend::RoundedF32), 2f32.powi(-140));
}

#[test]
fn empty_products_and_nan_free_overwrite() {
    for backend in backends() {
        let mut c = vec![f32::NAN; 6];
        let (a, b) = (StridedMat::row_major(&[], 2, 0, false), StridedMat::row_major(&[], 0, 3, false));
        sgemm_bf16_with(backend, a, b, &mut c, false);
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![1.5; 6];
        sgemm_bf16_with(backend, a, b, &mut c, true);
        assert_eq!(c, vec![1.5; 6]);
        // Overwriting twice, then accumulating onto the result, gives exactly twice it.
        let (m, k, n) = (14, 9, 35);
        let (a, b) = (randn(m * k, 7), randn(k * n, 8));
        let (av, bv) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, true));
        let mut once = vec![f32::NAN; m * n];
        sgemm_bf16_with(backend, av, bv, &mut once, false);
        let mut twice = once.clone();
        sgemm_bf16_with(backend, av, bv, &mut twice, true);
        for (o, t) in once.iter().zip(&twice) {
            assert_eq!(2.0 * o, *t, "{backend:?}");
        }
    }
}

#[test]
#[should_panic(expected = "sgemm: a is 2x3 but b is 4x2")]
fn mismatched_inner_dimensions_panic() {
    let mut c = [0.0; 4];
    sgemm_bf16(
        StridedMat::row_major(&[0.0; 6], 2, 3, false),
        StridedMat::row_major(&[0.0; 8], 4, 2, false),
        &mut c,
        false,
    );
}
