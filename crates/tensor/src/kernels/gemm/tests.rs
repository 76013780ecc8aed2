use super::*;
use crate::kernels::parallel::{with_mode, Mode};
use crate::testing::randn;

/// Every backend this CPU can run (the portable one always).
fn backends() -> Vec<GemmBackend> {
    [GemmBackend::Avx512, GemmBackend::Avx2, GemmBackend::Portable]
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

/// `a @ b (+ init)` in f64 by the definition, and for each element an error bound for an
/// f32 computation: (k + 2) f32 epsilons times the sum of the magnitudes of its terms.
pub(super) fn reference(a: &StridedMat, b: &StridedMat, init: Option<&[f32]>) -> (Vec<f64>, Vec<f64>) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut want = vec![0.0; m * n];
    let mut tol = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let c0 = init.map_or(0.0, |c| c[i * n + j] as f64);
            let (mut sum, mut mag) = (c0, c0.abs());
            for p in 0..k {
                let term = a.at(i, p) as f64 * b.at(p, j) as f64;
                sum += term;
                mag += term.abs();
            }
            want[i * n + j] = sum;
            tol[i * n + j] = (k as f64 + 2.0) * f32::EPSILON as f64 * mag + 1e-30;
        }
    }
    (want, tol)
}

/// Runs `backend` on `a @ b` (over `init` if accumulating, over NaNs if not) and checks
/// every element against the f64 reference.
fn check(backend: GemmBackend, a: StridedMat, b: StridedMat, accumulate: bool, what: &str) {
    let (m, n) = (a.rows(), b.cols());
    let init = randn(m * n, 99);
    let mut c = if accumulate { init.clone() } else { vec![f32::NAN; m * n] };
    sgemm_with(backend, a, b, &mut c, accumulate);
    let (want, tol) = reference(&a, &b, accumulate.then_some(&init[..]));
    for (idx, (&got, (&w, &t))) in c.iter().zip(want.iter().zip(&tol)).enumerate() {
        assert!(
            (got as f64 - w).abs() <= t,
            "{backend:?} {what} acc={accumulate}: c[{}, {}] = {got}, want {w} (tolerance {t})",
            idx / n,
            idx % n
        );
    }
}

/// Shapes (m, k, n): ones, primes, below / at / above the 12 x 32 tile and the 256-step K
/// block (k = 600 makes three blocks), narrow and wide edges.
pub(super) const SHAPES: [(usize, usize, usize); 14] = [
    (1, 1, 1),
    (1, 7, 3),
    (3, 5, 1),
    (1, 300, 1),
    (37, 1, 45),
    (12, 16, 32),
    (13, 17, 33),
    (11, 31, 17),
    (24, 256, 64),
    (25, 257, 70),
    (41, 600, 19),
    (4, 513, 100),
    (130, 97, 65),
    (67, 260, 129),
];

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

#[test]
fn nn_matches_reference() {
    check_transposes(false, false);
}

#[test]
fn nt_matches_reference() {
    check_transposes(false, true);
}

#[test]
fn tn_matches_reference() {
    check_transposes(true, false);
}

#[test]
fn tt_matches_reference() {
    check_transposes(true, true);
}

#[test]
fn general_strides_and_submatrices_match_reference() {
    // a: every other element of every third row of a bigger array (neither rows nor
    // columns contiguous); b: a 40 x 50 window of a 60 x 77 row-major array (rows
    // contiguous, but longer than the window); then the transposed window.
    let (m, k, n) = (29, 40, 50);
    let big_a = randn(3 * m * 2 * k, 5);
    let a = StridedMat::new(&big_a, m, k, 3 * 2 * k, 2);
    let big_b = randn(60 * 77, 6);
    let b = StridedMat::new(&big_b[77 * 3 + 5..], k, n, 77, 1);
    let bt = StridedMat::new(&big_b[2..], k, n, 1, 77);
    for backend in backends() {
        for acc in [false, true] {
            check(backend, a, b, acc, "strided a, windowed b");
            check(backend, a, bt, acc, "strided a, transposed window of b");
            check(backend, b.transposed(), a.transposed(), acc, "windows as a");
        }
    }
}

#[test]
fn a_block_of_a_wider_matrix_equals_the_product_and_leaves_the_gaps() {
    // c is [m, ldc] with the [m, n] product at column 5: each backend writes the same bits as
    // into a contiguous c, serially and in parallel, and never touches the other columns.
    let (m, k, n, ldc, col) = (150, 20, 45, 61, 5);
    let (a_data, b_data) = (randn(m * k, 1), randn(k * n, 2));
    let (a, b) = (StridedMat::row_major(&a_data, m, k, false), StridedMat::row_major(&b_data, k, n, false));
    for (backend, accumulate) in backends().into_iter().flat_map(|b| [(b, false), (b, true)]) {
        let init = randn(m * ldc, 3);
        let mut want: Vec<f32> =
            (0..m).flat_map(|i| init[i * ldc + col..i * ldc + col + n].to_vec()).collect();
        sgemm_with(backend, a, b, &mut want, accumulate);
        for mode in [Mode::Serial, Mode::Parallel] {
            let mut c = init.clone();
            with_mode(mode, || {
                if backend == gemm_backend() {
                    sgemm_ld(a, b, &mut c[col..], ldc, accumulate)
                } else {
                    sgemm_block(backend, a, b, Dest { c: &mut c[col..], ldc, accumulate, bias: None })
                }
            });
            for i in 0..m {
                let row = &c[i * ldc..(i + 1) * ldc];
                assert_eq!(&row[col..col + n], &want[i * n..(i + 1) * n], "row {i}");
                assert_eq!(&row[..col], &init[i * ldc..i * ldc + col], "row {i} before the block");
                assert_eq!(
                    &row[col + n..],
                    &init[i * ldc + col + n..(i + 1) * ldc],
                    "row {i} after the block"
                );
            }
        }
    }
}

#[test]
fn overwrite_ignores_nan_and_accumulate_adds() {
    for backend in backends() {
        let (m, k, n) = (14, 9, 35);
        let a = randn(m * k, 7);
        let b = randn(k * n, 8);
        let (av, bv) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, true));
        let mut once = vec![f32::NAN; m * n];
        sgemm_with(backend, av, bv, &mut once, false);
        assert!(once.iter().all(|v| v.is_finite()), "{backend:?}");
        let mut twice = once.clone();
        sgemm_with(backend, av, bv, &mut twice, true);
        for (o, t) in once.iter().zip(&twice) {
            // x + x is exact.
            assert_eq!(2.0 * o, *t, "{backend:?}");
        }
    }
}

#[test]
fn empty_products() {
    for backend in backends() {
        let mut c = vec![f32::NAN; 6];
        sgemm_with(
            backend,
            StridedMat::row_major(&[], 2, 0, false),
            StridedMat::row_major(&[], 0, 3, false),
            &mut c,
            false,
        );
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![1.5; 6];
        sgemm_with(
            backend,
            StridedMat::row_major(&[], 2, 0, true),
            StridedMat::row_major(&[], 0, 3, true),
            &mut c,
            true,
        );
        assert_eq!(c, vec![1.5; 6]);
        let mut c: Vec<f32> = vec![];
        sgemm_with(
            backend,
            StridedMat::row_major(&[], 0, 4, false),
            StridedMat::row_major(&[0.0; 8], 4, 2, false),
            &mut c,
            false,
        );
    }
}

/// The product of shapes big enough (with Mode::Parallel) for several jobs, computed
/// serially and in parallel, must agree bit for bit.
#[test]
fn parallel_equals_serial_bitwise() {
    // 150x300x200: a 2 x 2 job grid with edge tiles; 300x1000x300: four K blocks (the last
    // shorter), and a over 1 MiB, so that it is prefetched; 128x600x1000: the dense-layer
    // shape, split into column jobs; 384x768x128: a GPT weight gradient, four row jobs. Where
    // the rows are split (all but the dense-layer shape), b is packed once for all jobs.
    let shapes = [(150, 300, 200), (300, 1000, 300), (128, 600, 1000), (384, 768, 128)];
    for &(m, k, n) in &shapes {
        let plan = Plan::new(m, k, n, 12, 32);
        assert!(plan.m_jobs * plan.n_jobs >= 2, "{m}x{k}x{n}: {plan:?}");
        assert_eq!(plan.m_jobs > 1, m != 128, "{m}x{k}x{n}: {plan:?}");
    }
    for backend in backends() {
        assert_thread_independent(&shapes, &format!("{backend:?}"), |a, b, c, acc| {
            sgemm_with(backend, a, b, c, acc)
        });
    }
}

/// For each `(m, k, n)` of `shapes` and four combinations of transposes and accumulation, runs
/// `gemm(a, b, c, accumulate)` serially, in parallel and in the automatic mode on the same
/// seeded data, and asserts the same bits (`what` names the GEMM in a failure).
pub(super) fn assert_thread_independent(
    shapes: &[(usize, usize, usize)],
    what: &str,
    gemm: impl Fn(StridedMat, StridedMat, &mut [f32], bool),
) {
    for (s, &(m, k, n)) in shapes.iter().enumerate() {
        let a = randn(m * k, 20 + s as u64);
        let b = randn(k * n, 30 + s as u64);
        let init = randn(m * n, 40 + s as u64);
        for (ta, tb, acc) in
            [(false, false, false), (true, false, true), (false, true, true), (true, true, false)]
        {
            let (av, bv) = (StridedMat::row_major(&a, m, k, ta), StridedMat::row_major(&b, k, n, tb));
            let run = |mode| {
                with_mode(mode, || {
                    let mut c = init.clone();
                    gemm(av, bv, &mut c, acc);
                    c
                })
            };
            let serial = run(Mode::Serial);
            let what = format!("{what} {m}x{k}x{n} ta={ta} tb={tb} acc={acc}");
            assert!(serial == run(Mode::Parallel), "{what}");
            assert!(serial == run(Mode::Auto), "{what}");
        }
    }
}

/// An element's bits depend only on the K blocking, not on where its tile falls: any
/// block of the product, computed on its own (so with other tile sizes, edge kernels and
/// job grids), is bit-identical to the same block of the whole.
#[test]
fn blocks_of_the_product_are_bit_identical_to_the_whole() {
    let (m, k, n) = (30, 300, 70);
    let a = randn(m * k, 80);
    let b = randn(k * n, 81);
    for backend in backends().into_iter().filter(|&b| b != GemmBackend::Portable) {
        let mut whole = vec![0.0; m * n];
        sgemm_with(
            backend,
            StridedMat::row_major(&a, m, k, false),
            StridedMat::row_major(&b, k, n, false),
            &mut whole,
            false,
        );
        for &(r0, r1, c0, c1) in
            &[(0, 8, 0, 16), (3, 30, 5, 70), (29, 30, 0, 1), (12, 24, 32, 64), (1, 14, 17, 50)]
        {
            let a_rows = StridedMat::new(&a[r0 * k..], r1 - r0, k, k, 1);
            let b_cols = StridedMat::new(&b[c0..], k, c1 - c0, n, 1);
            let mut block = vec![0.0; (r1 - r0) * (c1 - c0)];
            sgemm_with(backend, a_rows, b_cols, &mut block, false);
            for i in r0..r1 {
                for j in c0..c1 {
                    let got = block[(i - r0) * (c1 - c0) + (j - c0)];
                    assert!(
                        got.to_bits() == whole[i * n + j].to_bits(),
                        "{backend:?} ({i}, {j}) in {r0}..{r1} x {c0}..{c1}"
                    );
                }
            }
        }
    }
}

/// GEMMs called from inside rayon jobs (as the convolutions do) may run nested on one
/// thread; each must still get its own pack buffers and the same bits as alone.
#[test]
fn nested_calls_from_rayon_match_serial() {
    use rayon::prelude::*;
    let (m, k, n) = (70, 300, 90);
    let inputs: Vec<(Vec<f32>, Vec<f32>)> =
        (0..6).map(|s| (randn(m * k, 50 + s), randn(k * n, 60 + s))).collect();
    let run = |(a, b): &(Vec<f32>, Vec<f32>)| {
        let mut c = vec![0.0; m * n];
        sgemm(StridedMat::row_major(a, m, k, false), StridedMat::row_major(b, k, n, true), &mut c, false);
        c
    };
    let serial: Vec<Vec<f32>> = with_mode(Mode::Serial, || inputs.iter().map(run).collect());
    let nested: Vec<Vec<f32>> = with_mode(Mode::Parallel, || {
        inputs.par_iter().map(|x| with_mode(Mode::Parallel, || run(x))).collect()
    });
    assert!(serial == nested);
}

/// The portable fallback (matrixmultiply) and the fastest backend agree to rounding.
#[test]
fn portable_and_fastest_backend_agree() {
    let (m, k, n) = (77, 520, 130);
    let a = randn(m * k, 70);
    let b = randn(k * n, 71);
    let (av, bv) = (StridedMat::row_major(&a, m, k, false), StridedMat::row_major(&b, k, n, true));
    let mut fast = vec![0.0; m * n];
    let mut portable = vec![0.0; m * n];
    sgemm(av, bv, &mut fast, false);
    sgemm_with(GemmBackend::Portable, av, bv, &mut portable, false);
    let (_, tol) = reference(&av, &bv, None);
    for ((f, p), t) in fast.iter().zip(&portable).zip(&tol) {
        assert!(((f - p) as f64).abs() <= 2.0 * t, "{f} vs {p}");
    }
}

#[test]
fn plan_covers_the_output_and_splits_dense_layer_shapes() {
    let shapes =
        [(1, 1, 1), (128, 1000, 1000), (1000, 128, 1000), (131072, 75, 64), (64, 75, 1024), (5, 3000, 7)];
    for (&(m, k, n), (mr, nr)) in shapes.iter().flat_map(|s| [(s, (12, 32)), (s, (6, 16))]) {
        let p = Plan::new(m, k, n, mr, nr);
        assert!(p.kc <= GEMM_KC && p.kc.is_multiple_of(16) && p.kc > 0, "{p:?}");
        assert!(p.mb.is_multiple_of(mr) && p.nb.is_multiple_of(nr), "{p:?}");
        // The grid covers c exactly: every job non-empty, the last row/column reaching the edge.
        assert!((p.m_jobs - 1) * p.mb < m && m <= p.m_jobs * p.mb, "{m}x{k}x{n}: {p:?}");
        assert!((p.n_jobs - 1) * p.nb < n && n <= p.n_jobs * p.nb, "{m}x{k}x{n}: {p:?}");
    }
    // The 128-row products of the dense layers are cut into column jobs for the threads.
    let p = Plan::new(128, 1000, 1000, 12, 32);
    assert_eq!((p.m_jobs, p.n_jobs), (1, 4), "{p:?}");
}

#[test]
#[should_panic(expected = "StridedMat: a 3x4 view with strides (4, 1) reaches element 11")]
fn view_outside_data_panics() {
    StridedMat::new(&[0.0; 11], 3, 4, 4, 1);
}

#[test]
#[should_panic(expected = "sgemm: a is 2x3 but b is 4x2")]
fn mismatched_inner_dimensions_panic() {
    let mut c = [0.0; 4];
    sgemm(
        StridedMat::row_major(&[0.0; 6], 2, 3, false),
        StridedMat::row_major(&[0.0; 8], 4, 2, false),
        &mut c,
        false,
    );
}

#[test]
fn the_bias_epilogue_gives_the_bits_of_a_second_pass() {
    // Edge tiles (37 rows, 45 columns), one and two K blocks, row jobs sharing a packed b
    // (700 rows), and an empty product; every backend, serially and in parallel.
    for (m, k, n) in [(37, 20, 45), (37, 300, 45), (700, 64, 70), (5, 0, 6)] {
        let (a_data, b_data, bias) = (randn(m * k, 1), randn(k * n, 2), randn(n, 3));
        let (a, b) =
            (StridedMat::row_major(&a_data, m, k, false), StridedMat::row_major(&b_data, k, n, true));
        for backend in backends() {
            let mut want = vec![0.0; m * n];
            sgemm_with(backend, a, b, &mut want, false);
            for row in want.chunks_exact_mut(n) {
                for (v, &x) in row.iter_mut().zip(&bias) {
                    *v += x;
                }
            }
            for mode in [Mode::Serial, Mode::Parallel] {
                let mut c = vec![f32::NAN; m * n];
                with_mode(mode, || {
                    if backend == gemm_backend() {
                        sgemm_bias(a, b, &bias, &mut c)
                    } else if k == 0 || backend == GemmBackend::Portable {
                        // What sgemm_bias does on such a CPU.
                        sgemm_block(backend, a, b, Dest { c: &mut c, ldc: n, accumulate: false, bias: None });
                        for row in c.chunks_exact_mut(n) {
                            for (v, &x) in row.iter_mut().zip(&bias) {
                                *v += x;
                            }
                        }
                    } else {
                        sgemm_block(
                            backend,
                            a,
                            b,
                            Dest { c: &mut c, ldc: n, accumulate: false, bias: Some(&bias) },
                        )
                    }
                });
                assert_eq!(c, want, "{backend:?} {m}x{k}x{n} {mode:?}");
            }
        }
    }
}
