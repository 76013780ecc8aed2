//! Tests of the prepacked operands of the native bf16 GEMM: the same bits as
//! [`sgemm_bf16`] on the f32 values, whatever the threads, and misuse refused.

use super::bf16_prepacked::bytemuck_bits;
use super::tests::{assert_thread_independent, SHAPES};
use super::*;
use crate::testing::randn;

/// `a` as [`Bf16Rows`], and `b` packed a pair of rows at a time as [`PackedBf16B`].
fn prepack(a: StridedMat, b: StridedMat) -> (Bf16Rows, PackedBf16B) {
    let mut a16 = Bf16Rows::new();
    a16.assign(a);
    let mut b16 = PackedBf16B::new();
    b16.reset(b.rows(), b.cols());
    let row = |p: usize| (0..b.cols()).map(|j| b.at(p, j)).collect::<Vec<f32>>();
    for p in (0..b.rows()).step_by(2) {
        let odd = (p + 1 < b.rows()).then(|| row(p + 1));
        b16.set_pair(p, &row(p), odd.as_deref());
    }
    (a16, b16)
}

/// Both forms of `b` (f32 and packed), every transpose of the operands, overwriting (over
/// NaNs) and accumulating: the bits of `sgemm_bf16` on the same values. The shapes have odd
/// k (a zero step), k over one K block (the last shorter), m not a multiple of 4 (padded
/// rows) and n not a multiple of 32 (padded columns); 1024 columns take the padded row stride.
#[test]
fn prepacked_equals_sgemm_bf16_bitwise() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        return;
    }
    let mut shapes = SHAPES.to_vec();
    shapes.extend([(75, 1024, 64), (64, 75, 1024), (130, 1600, 70)]);
    for (s, &(m, k, n)) in shapes.iter().enumerate() {
        let (a, b, init) = (randn(m * k, 2 * s as u64), randn(k * n, 2 * s as u64 + 1), randn(m * n, 7));
        for (ta, tb, acc) in
            [(false, false, false), (true, false, true), (false, true, true), (true, true, false)]
        {
            let (av, bv) = (StridedMat::row_major(&a, m, k, ta), StridedMat::row_major(&b, k, n, tb));
            let start = if acc { init.clone() } else { vec![f32::NAN; m * n] };
            let mut want = start.clone();
            sgemm_bf16_with(Bf16Backend::Avx512Bf16, av, bv, &mut want, acc);
            let (a16, b16) = prepack(av, bv);
            for b_op in [Bf16B::F32(bv), Bf16B::Packed(&b16)] {
                let mut got = start.clone();
                sgemm_bf16_prepacked(&a16, b_op, &mut got, acc);
                let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
                assert!(
                    same,
                    "{m}x{k}x{n} ta={ta} tb={tb} acc={acc} packed={}",
                    matches!(b_op, Bf16B::Packed(_))
                );
            }
        }
    }
}

/// Parallel = serial, bit for bit, on shapes with several jobs (and shared packings).
#[test]
fn prepacked_parallel_equals_serial_bitwise() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        return;
    }
    let shapes = [(150, 301, 200), (300, 1001, 300), (1600, 256, 64)];
    assert_thread_independent(&shapes, "prepacked f32 b", |a, b, c, acc| {
        let (a16, _) = prepack(a, b);
        sgemm_bf16_prepacked(&a16, Bf16B::F32(b), c, acc)
    });
    assert_thread_independent(&shapes, "prepacked packed b", |a, b, c, acc| {
        let (a16, b16) = prepack(a, b);
        sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), c, acc)
    });
}

/// Reused buffers: a smaller product after a bigger one (stale data past the new shape) and
/// the same shape refilled give fresh results.
#[test]
fn reused_operands_hold_only_the_new_values() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        return;
    }
    let (mut a16, mut b16) = (Bf16Rows::new(), PackedBf16B::new());
    for (s, &(m, k, n)) in [(40, 301, 70), (13, 17, 33), (13, 17, 33), (5, 3, 1)].iter().enumerate() {
        let (a, b) = (randn(m * k, 50 + s as u64), randn(k * n, 60 + s as u64));
        let (av, bv) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, false));
        a16.assign(av);
        b16.reset(k, n);
        for p in (0..k).step_by(2) {
            let odd = (p + 1 < k).then(|| &b[(p + 1) * n..(p + 2) * n]);
            b16.set_pair(p, &b[p * n..(p + 1) * n], odd);
        }
        let mut want = vec![0.0; m * n];
        sgemm_bf16_with(Bf16Backend::Avx512Bf16, av, bv, &mut want, false);
        let mut got = vec![f32::NAN; m * n];
        sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), &mut got, false);
        assert_eq!(got, want, "{m}x{k}x{n}");
        assert_eq!(a16.get(m - 1, k - 1), f32_to_bf16(a[(m - 1) * k + k - 1]));
    }
}

#[test]
#[should_panic(expected = "of the 3 row pairs of b were written")]
fn unwritten_pairs_are_refused() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        panic!("of the 3 row pairs of b were written (no AVX512_BF16 here)");
    }
    let mut a16 = Bf16Rows::new();
    a16.assign(StridedMat::row_major(&[1.0; 10], 2, 5, false));
    let mut b16 = PackedBf16B::new();
    b16.reset(5, 4);
    b16.set_pair(0, &[1.0; 4], Some(&[2.0; 4]));
    sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), &mut [0.0; 8], false);
}

/// Operands without columns or without steps: empty products, c zero (or kept).
#[test]
fn empty_operands() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        return;
    }
    let mut b16 = PackedBf16B::new();
    b16.reset(3, 0);
    b16.set_pair(0, &[], Some(&[]));
    b16.set_pair(2, &[], None);
    let mut a16 = Bf16Rows::new();
    a16.assign(StridedMat::row_major(&[1.0; 6], 2, 3, false));
    sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), &mut [], false);
    // k = 0: the empty sum is zero.
    a16.assign(StridedMat::row_major(&[], 2, 0, false));
    b16.reset(0, 3);
    let mut c = [f32::NAN; 6];
    sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), &mut c, false);
    assert_eq!(c, [0.0; 6]);
    let mut c = [1.5; 6];
    sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), &mut c, true);
    assert_eq!(c, [1.5; 6]);
}

#[test]
#[should_panic(expected = "row 5 of 5 must be given")]
fn a_missing_odd_row_is_refused() {
    let mut b16 = PackedBf16B::new();
    b16.reset(5, 4);
    b16.set_pair(4, &[1.0; 4], Some(&[2.0; 4]));
}

/// The operands hold `f32_to_bf16` of the values (the vector rounding where the CPU has it).
#[test]
fn rounding_of_operands_is_f32_to_bf16() {
    let (m, k) = (5, 33);
    let a = randn(m * k, 3);
    let mut a16 = Bf16Rows::new();
    a16.assign(StridedMat::row_major(&a, m, k, true));
    for i in 0..m {
        for p in 0..k {
            assert_eq!(a16.get(i, p), f32_to_bf16(a[p * m + i]));
        }
    }
}

/// A block of rows of `a` gives those rows of the whole product, bit for bit, from either
/// form of `b`; blocks end anywhere (the last one past a multiple of 4 reads padding).
#[test]
fn row_blocks_equal_rows_of_the_whole_product() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        return;
    }
    let (m, k, n) = (75, 300, 70);
    let (a, b) = (randn(m * k, 1), randn(k * n, 2));
    let (av, bv) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, false));
    let (a16, b16) = prepack(av, bv);
    let mut whole = vec![0.0; m * n];
    sgemm_bf16_prepacked(&a16, Bf16B::Packed(&b16), &mut whole, false);
    for (r0, r1) in [(0, 12), (12, 75), (72, 75), (24, 24), (4, 9)] {
        for b_op in [Bf16B::F32(bv), Bf16B::Packed(&b16)] {
            let mut part = vec![f32::NAN; (r1 - r0) * n];
            sgemm_bf16_prepacked_rows(&a16, r0..r1, b_op, &mut part, false);
            assert_eq!(part, whole[r0 * n..r1 * n], "rows {r0}..{r1}");
        }
    }
}

#[test]
#[should_panic(expected = "the first a multiple of 4")]
fn row_blocks_must_start_at_a_multiple_of_4() {
    if bf16_backend() != Bf16Backend::Avx512Bf16 {
        panic!("the first a multiple of 4 (no AVX512_BF16 here)");
    }
    let mut a16 = Bf16Rows::new();
    a16.assign(StridedMat::row_major(&[1.0; 10], 5, 2, false));
    sgemm_bf16_prepacked_rows(
        &a16,
        3..5,
        Bf16B::F32(StridedMat::row_major(&[1.0; 2], 2, 1, false)),
        &mut [0.0; 2],
        false,
    );
}

/// Pairs given as bf16 bits pack as the same pairs given in f32 and rounded.
#[test]
fn pairs_of_bits_equal_rounded_pairs() {
    for (k, n) in [(5, 70), (300, 33), (2, 1), (1, 40)] {
        let b = randn(k * n, k as u64);
        let bits: Vec<u16> = b.iter().map(|&v| f32_to_bf16(v)).collect();
        let (mut from_f32, mut from_bits) = (PackedBf16B::new(), PackedBf16B::new());
        from_f32.reset(k, n);
        from_bits.reset(k, n);
        for p in (0..k).step_by(2) {
            let odd = (p + 1 < k).then_some(p + 1);
            from_f32.set_pair(p, &b[p * n..(p + 1) * n], odd.map(|q| &b[q * n..(q + 1) * n]));
            from_bits.set_pair_bits(p, &bits[p * n..(p + 1) * n], odd.map(|q| &bits[q * n..(q + 1) * n]));
        }
        assert_eq!(bytemuck_bits(&mut from_f32), bytemuck_bits(&mut from_bits), "{k}x{n}");
        if bf16_backend() == Bf16Backend::Avx512Bf16 {
            let mut a16 = Bf16Rows::new();
            let a = randn(3 * k, 9);
            a16.assign(StridedMat::row_major(&a, 3, k, false));
            let mut want = vec![0.0; 3 * n];
            sgemm_bf16_with(
                Bf16Backend::Avx512Bf16,
                StridedMat::row_major(&a, 3, k, false),
                StridedMat::row_major(&b, k, n, false),
                &mut want,
                false,
            );
            let mut got = vec![f32::NAN; 3 * n];
            sgemm_bf16_prepacked(&a16, Bf16B::Packed(&from_bits), &mut got, false);
            assert_eq!(got, want, "{k}x{n}");
        }
    }
}
