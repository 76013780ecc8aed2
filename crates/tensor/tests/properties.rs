//! Property tests of the tensor kernels' algebra on random shapes and values: the GEMM
//! against a plain f64 triple loop for every shape, layout and backend (edge tiles of the
//! 12x32 and 6x16 micro-kernels included), thread-count independence, and identities of the
//! elementwise and row kernels. proptest shrinks a failure to its smallest shape.

use adamant_tensor::kernels::parallel::{with_mode, Mode};
use adamant_tensor::kernels::{self as k, GemmBackend, StridedMat};
use proptest::prelude::*;

/// `len` values in [-2, 2) from a proptest-drawn seed (cheaper than a strategy per element).
fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = adamant_tensor::rng::splitmix64(state);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// `data` as a `rows x cols` matrix, stored row-major, or transposed (column-major) if `trans`.
fn view(data: &[f32], rows: usize, cols: usize, trans: bool) -> StridedMat<'_> {
    if trans {
        StridedMat::new(data, rows, cols, 1, rows.max(1))
    } else {
        StridedMat::new(data, rows, cols, cols.max(1), 1)
    }
}

/// `c0 (+)= a b` in f64, reading `a` and `b` stored as [`view`] stores them.
fn reference(
    a: &[f32],
    b: &[f32],
    c0: &[f32],
    dims: (usize, usize, usize),
    ta: bool,
    tb: bool,
    acc: bool,
) -> Vec<f64> {
    let (m, kk, n) = dims;
    let a_at = |i: usize, p: usize| (if ta { a[p * m + i] } else { a[i * kk + p] }) as f64;
    let b_at = |p: usize, j: usize| (if tb { b[j * kk + p] } else { b[p * n + j] }) as f64;
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..kk).map(|p| a_at(i, p) * b_at(p, j)).sum();
            c[i * n + j] = dot + if acc { c0[i * n + j] as f64 } else { 0.0 };
        }
    }
    c
}

fn backends() -> Vec<GemmBackend> {
    [GemmBackend::Avx512, GemmBackend::Avx2, GemmBackend::Portable]
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

type BinaryKernel = fn(&[f32], &[usize], &[f32], &[usize], &mut [f32]);

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn sgemm_matches_an_f64_triple_loop_on_every_backend(
        m in 0usize..70, kk in 0usize..300, n in 0usize..70,
        ta: bool, tb: bool, acc: bool, seed: u64,
    ) {
        let (a, b, c0) = (values(seed, m * kk), values(seed ^ 1, kk * n), values(seed ^ 2, m * n));
        let want = reference(&a, &b, &c0, (m, kk, n), ta, tb, acc);
        // f32 rounding of a k-term sum of products of magnitude <= 4.
        let tol = 4e-6 * (kk as f64 + 1.0) + 1e-6;
        for backend in backends() {
            let mut c = c0.clone();
            k::sgemm_with(backend, view(&a, m, kk, ta), view(&b, kk, n, tb), &mut c, acc);
            for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                prop_assert!((got as f64 - w).abs() <= tol,
                    "{backend:?} m={m} k={kk} n={n} ta={ta} tb={tb} acc={acc}: c[{idx}] = {got}, want {w}");
            }
        }
    }

    #[test]
    fn sgemm_does_not_depend_on_the_thread_count(
        m in 1usize..200, kk in 1usize..300, n in 1usize..200, seed: u64,
    ) {
        let (a, b) = (values(seed, m * kk), values(seed ^ 3, kk * n));
        let run = |mode| with_mode(mode, || {
            let mut c = vec![0.0; m * n];
            k::sgemm(view(&a, m, kk, false), view(&b, kk, n, true), &mut c, false);
            c
        });
        let (serial, parallel) = (run(Mode::Serial), run(Mode::Parallel));
        prop_assert!(serial.iter().zip(&parallel).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn add_and_mul_commute_exactly_under_broadcasting(rows in 1usize..20, cols in 1usize..20, seed: u64) {
        let (x, row) = (values(seed, rows * cols), values(seed ^ 4, cols));
        let (full, bcast) = ([rows, cols], [1, cols]);
        for op in [k::add as BinaryKernel, k::mul] {
            let (mut xy, mut yx) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
            op(&x, &full, &row, &bcast, &mut xy);
            op(&row, &bcast, &x, &full, &mut yx);
            prop_assert_eq!(&xy, &yx);
        }
    }

    #[test]
    fn softmax_rows_are_distributions_and_shift_invariant(
        rows in 1usize..8, cols in 1usize..40, shift in -50f32..50.0, seed: u64,
    ) {
        let x = values(seed, rows * cols);
        let shifted: Vec<f32> = x.iter().map(|v| v + shift).collect();
        let (mut p, mut q) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
        k::softmax_rows(&x, rows, cols, &mut p);
        k::softmax_rows(&shifted, rows, cols, &mut q);
        for r in 0..rows {
            let row = &p[r * cols..(r + 1) * cols];
            prop_assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
            prop_assert!((row.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-5);
        }
        prop_assert!(p.iter().zip(&q).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn log_softmax_is_x_minus_logsumexp(rows in 1usize..8, cols in 1usize..40, seed: u64) {
        let x = values(seed, rows * cols);
        let (mut ls, mut lse) = (vec![0.0; rows * cols], vec![0.0; rows]);
        k::log_softmax_rows(&x, rows, cols, &mut ls);
        k::logsumexp_rows(&x, rows, cols, &mut lse);
        for r in 0..rows {
            for c in 0..cols {
                prop_assert!((ls[r * cols + c] - (x[r * cols + c] - lse[r])).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn relu_is_idempotent_and_softplus_lies_between_relu_and_relu_plus_ln2(len in 0usize..500, seed: u64) {
        let x: Vec<f32> = values(seed, len).iter().map(|v| v * 20.0).collect();
        let (mut r, mut rr, mut sp) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        k::relu(&x, &mut r);
        k::relu(&r, &mut rr);
        k::softplus(&x, &mut sp);
        prop_assert_eq!(&r, &rr);
        for ((&s, &re), &xi) in sp.iter().zip(&r).zip(&x) {
            prop_assert!(s >= re - 1e-6 && s <= re + std::f32::consts::LN_2 + 1e-6, "x={xi} softplus={s}");
        }
    }

    #[test]
    fn sum_axis_adds_up_to_sum_all(a in 1usize..6, b in 1usize..6, c in 1usize..6, axis in 0usize..3, seed: u64) {
        let shape = [a, b, c];
        let x = values(seed, a * b * c);
        let mut out = vec![0.0; a * b * c / shape[axis]];
        k::sum_axis(&x, &shape, axis, &mut out);
        prop_assert!((k::sum_all(&out) - k::sum_all(&x)).abs() < 1e-4);
    }
}
