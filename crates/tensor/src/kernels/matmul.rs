//! Dense matrix multiplication: one entry point, [`matmul`], over the packed GEMM of the
//! [`gemm` module](mod@crate::kernels::gemm).
//!
//! Transposed operands are described to the GEMM by their strides, so `trans_a`/`trans_b`
//! cost no copy: the GEMM's packing reads them strided. This is the workhorse of every
//! dense layer and (through im2col) every convolution.
//!
//! # Why our own GEMM
//!
//! Until 2026-11 this called `matrixmultiply::sgemm` on fixed 64-row blocks of `out` over
//! rayon. Every block repacked all of `b`, so the dense-layer products (128 rows) ran at
//! 61-68 GFLOP/s on one core and 93-127 on two, against 163-176 / 295-324 for PyTorch/MKL on
//! the same 2-core AVX-512 machine. The GEMM in [`gemm`](mod@crate::kernels::gemm) packs
//! BLIS-style around an AVX-512 (or AVX2) micro-kernel and splits `out` into jobs (column
//! blocks for 128-row products) that each pack only their part; matrixmultiply remains the
//! fallback on other CPUs. On that machine (2026-11, `examples/bench_kernels.rs`, which times
//! both side by side) 128x1000x1000 NT went to 128-140 GFLOP/s on one core (matrixmultiply
//! 93-100 in the same runs) and 252-267 on two (188-198), the im2col products by 35-50 %.
//!
//! # Threads and determinism
//!
//! The GEMM splits only `out` between threads, never the sum over `k`: every element is
//! reduced over the same K blocks in the same order whichever thread computes it, so results
//! are identical whatever the number of rayon threads (tested with `with_mode`). The
//! matrixmultiply fallback splits `out` into fixed 64-row blocks, with the same guarantee.
//! matrixmultiply is built without its own `threading` feature: its threads fought rayon's
//! for the cores (CNN conv1 forward+backward 19-20 ms with rayon alone, 29-37 ms with both).

use super::gemm::{sgemm_in, Precision, StridedMat};
use super::parallel;

/// `out[m,n] = op(a) @ op(b)` (plus the old `out` when `accumulate`), where `a` is stored
/// `[m,k]` row-major (`[k,m]` if `trans_a`) and `b` is stored `[k,n]` (`[n,k]` if `trans_b`).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    matmul_in(Precision::F32, a, b, out, m, k, n, trans_a, trans_b, accumulate);
}

/// [`matmul`] in `precision`: with [`Precision::Bf16`] the operands are rounded to bf16 and
/// the products summed in f32 ([`sgemm_bf16`](super::sgemm_bf16)).
#[allow(clippy::too_many_arguments)]
pub fn matmul_in(
    precision: Precision,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    let a_dims = if trans_a { (k, m) } else { (m, k) };
    let b_dims = if trans_b { (n, k) } else { (k, n) };
    assert_eq!(
        a.len(),
        m * k,
        "matmul: a has {} elements, expected [{}, {}] (m={m}, k={k}, n={n}, trans_a={trans_a})",
        a.len(),
        a_dims.0,
        a_dims.1
    );
    assert_eq!(
        b.len(),
        k * n,
        "matmul: b has {} elements, expected [{}, {}] (m={m}, k={k}, n={n}, trans_b={trans_b})",
        b.len(),
        b_dims.0,
        b_dims.1
    );
    assert_eq!(
        out.len(),
        m * n,
        "matmul: out has {} elements, expected [{m}, {n}] (m={m}, k={k}, n={n})",
        out.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum is zero: op(a) @ op(b) is the zero matrix.
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }

    // beta = 0 (not accumulating) makes the GEMM ignore the old contents of `out` entirely
    // (NaNs included).
    let a = StridedMat::row_major(a, m, k, trans_a);
    let b = StridedMat::row_major(b, k, n, trans_b);
    sgemm_in(precision, a, b, out, accumulate);
}

/// The batch index of an operand with batch shape `own` (aligned at the right with the
/// broadcast batch shape, size-1 axes stretched) for the flat batch index `flat` of `full`.
fn broadcast_index(mut flat: usize, full: &[usize], own: &[usize]) -> usize {
    let skip = full.len() - own.len();
    let (mut index, mut stride) = (0, 1);
    for d in (0..full.len()).rev() {
        let i = flat % full[d];
        flat /= full[d];
        if d >= skip {
            let size = own[d - skip];
            if size != 1 {
                index += i * stride;
            }
            stride *= size;
        }
    }
    index
}

/// Batched [`matmul`] with broadcasting batch axes (PyTorch's `@` on `[..., m, k]` and
/// `[..., k, n]`): `a` holds `numel(a_batch)` matrices stored as [`matmul`] takes them, `b`
/// `numel(b_batch)`, `out` `numel(out_batch)` `[m, n]` matrices. The three batch shapes
/// broadcast to one batch shape; for each of its indices, in row-major order, the matching
/// matrices are multiplied with [`matmul`] into their slice of `out`, so no buffer is
/// allocated per batch.
///
/// `out_batch` may itself be broadcast (smaller than the others): this is the backward of an
/// operand shared by several batches, whose one gradient receives the sum of the products,
/// which needs `accumulate` (the GEMM's flag), and adds them in batch order.
///
/// # Panics
/// If the batch shapes do not broadcast, a buffer has the wrong size, or `out` is broadcast
/// without `accumulate`.
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul(
    a: &[f32],
    a_batch: &[usize],
    b: &[f32],
    b_batch: &[usize],
    out: &mut [f32],
    out_batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    batched_matmul_in(
        Precision::F32,
        a,
        a_batch,
        b,
        b_batch,
        out,
        out_batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        accumulate,
    );
}

/// [`batched_matmul`] in `precision` (see [`matmul_in`]).
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul_in(
    precision: Precision,
    a: &[f32],
    a_batch: &[usize],
    b: &[f32],
    b_batch: &[usize],
    out: &mut [f32],
    out_batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    let full = crate::broadcast_shapes(a_batch, b_batch)
        .and_then(|ab| crate::broadcast_shapes(&ab, out_batch))
        .unwrap_or_else(|| {
            panic!("batched_matmul: batch shapes {a_batch:?}, {b_batch:?} and {out_batch:?} do not broadcast")
        });
    let (na, nb, no) = (crate::numel(a_batch), crate::numel(b_batch), crate::numel(out_batch));
    assert_eq!(
        a.len(),
        na * m * k,
        "batched_matmul: a has {} elements, batch {a_batch:?} of {m}x{k} needs {}",
        a.len(),
        na * m * k
    );
    assert_eq!(
        b.len(),
        nb * k * n,
        "batched_matmul: b has {} elements, batch {b_batch:?} of {k}x{n} needs {}",
        b.len(),
        nb * k * n
    );
    assert_eq!(
        out.len(),
        no * m * n,
        "batched_matmul: out has {} elements, batch {out_batch:?} of {m}x{n} needs {}",
        out.len(),
        no * m * n
    );
    let count = crate::numel(&full);
    assert!(
        accumulate || no == count,
        "batched_matmul: out's batch {out_batch:?} is broadcast to {full:?}: only accumulating can sum into it"
    );
    let (ma, mb, mo) = (m * k, k * n, m * n);
    let product = |i: usize, o: &mut [f32]| {
        let (ia, ib) = (broadcast_index(i, &full, a_batch), broadcast_index(i, &full, b_batch));
        matmul_in(
            precision,
            &a[ia * ma..(ia + 1) * ma],
            &b[ib * mb..(ib + 1) * mb],
            o,
            m,
            k,
            n,
            trans_a,
            trans_b,
            accumulate,
        );
    };
    if no == count {
        // Every batch owns its slice of `out`: batches may run on different threads (many
        // small products, as attention's per-head ones, fill the cores that one small GEMM
        // cannot), and each product is the same whichever thread computes it.
        parallel::for_each_block_mut(out, mo, count * ma * n, product);
    } else {
        // Several batches add into one slice: in batch order, on this thread.
        for i in 0..count {
            let io = broadcast_index(i, &full, out_batch);
            product(i, &mut out[io * mo..(io + 1) * mo]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::randn;

    /// op(a) @ op(b) (+ init) in f64, by the definition.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        a: &[f32],
        b: &[f32],
        init: &[f32],
        m: usize,
        k: usize,
        n: usize,
        ta: bool,
        tb: bool,
        acc: bool,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = if acc { init[i * n + j] as f64 } else { 0.0 };
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    fn check(m: usize, k: usize, n: usize, ta: bool, tb: bool, acc: bool) {
        let a = randn(m * k, 1);
        let b = randn(k * n, 2);
        let init = randn(m * n, 3);
        let mut out = init.clone();
        matmul(&a, &b, &mut out, m, k, n, ta, tb, acc);
        let want = naive(&a, &b, &init, m, k, n, ta, tb, acc);
        for (idx, (&got, &w)) in out.iter().zip(&want).enumerate() {
            let tol = 1e-5 * (k as f32 + 1.0) * (1.0 + w.abs());
            assert!(
                (got - w).abs() <= tol,
                "m={m} k={k} n={n} ta={ta} tb={tb} acc={acc}: out[{idx}] = {got}, want {w}"
            );
        }
    }

    const SHAPES: [(usize, usize, usize); 7] =
        [(1, 1, 1), (1, 7, 3), (3, 5, 1), (17, 33, 9), (64, 1, 65), (70, 300, 40), (129, 9, 2)];

    fn check_all_shapes(ta: bool, tb: bool, acc: bool) {
        for &(m, k, n) in &SHAPES {
            check(m, k, n, ta, tb, acc);
        }
    }

    #[test]
    fn nn_overwrite() {
        check_all_shapes(false, false, false);
    }

    #[test]
    fn nn_accumulate() {
        check_all_shapes(false, false, true);
    }

    #[test]
    fn nt_overwrite() {
        check_all_shapes(false, true, false);
    }

    #[test]
    fn nt_accumulate() {
        check_all_shapes(false, true, true);
    }

    #[test]
    fn tn_overwrite() {
        check_all_shapes(true, false, false);
    }

    #[test]
    fn tn_accumulate() {
        check_all_shapes(true, false, true);
    }

    #[test]
    fn tt_overwrite() {
        check_all_shapes(true, true, false);
    }

    #[test]
    fn tt_accumulate() {
        check_all_shapes(true, true, true);
    }

    #[test]
    fn small_integer_product_is_exact() {
        // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut out = [0.0; 4];
        matmul(&a, &b, &mut out, 2, 3, 2, false, false, false);
        assert_eq!(out, [58.0, 64.0, 139.0, 154.0]);
        // a^T stored [3,2] gives the same op(a).
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let bt = [7.0, 9.0, 11.0, 8.0, 10.0, 12.0];
        let mut out2 = [1.0; 4];
        matmul(&at, &bt, &mut out2, 2, 3, 2, true, true, true);
        assert_eq!(out2, [59.0, 65.0, 140.0, 155.0]);
    }

    #[test]
    fn overwrite_ignores_nan_in_out() {
        let a = randn(6 * 4, 5);
        let b = randn(4 * 3, 6);
        let mut out = vec![f32::NAN; 6 * 3];
        matmul(&a, &b, &mut out, 6, 4, 3, false, false, false);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn k_zero_overwrite_zeroes_out() {
        let mut out = vec![f32::NAN; 3 * 4];
        matmul(&[], &[], &mut out, 3, 0, 4, false, true, false);
        assert_eq!(out, vec![0.0; 12]);
    }

    #[test]
    fn k_zero_accumulate_leaves_out() {
        let mut out = vec![2.5; 3 * 4];
        matmul(&[], &[], &mut out, 3, 0, 4, true, false, true);
        assert_eq!(out, vec![2.5; 12]);
    }

    #[test]
    fn m_or_n_zero_is_a_no_op() {
        let mut out: Vec<f32> = vec![];
        matmul(&[], &[1.0, 2.0, 3.0], &mut out, 0, 3, 1, false, false, false);
        matmul(&[1.0, 2.0], &[], &mut out, 2, 1, 0, false, false, true);
        assert!(out.is_empty());
    }

    #[test]
    fn accumulate_twice_doubles() {
        let (m, k, n) = (9, 13, 5);
        let a = randn(m * k, 7);
        let b = randn(k * n, 8);
        let mut once = vec![0.0; m * n];
        matmul(&a, &b, &mut once, m, k, n, false, false, false);
        let mut twice = vec![0.0; m * n];
        matmul(&a, &b, &mut twice, m, k, n, false, false, true);
        matmul(&a, &b, &mut twice, m, k, n, false, false, true);
        for (o, t) in once.iter().zip(&twice) {
            // x + x is exact in floating point.
            assert_eq!(2.0 * o, *t);
        }
    }

    #[test]
    fn repeated_calls_are_bit_identical() {
        let (m, k, n) = (130, 257, 70);
        let a = randn(m * k, 9);
        let b = randn(k * n, 10);
        let mut first = vec![0.0; m * n];
        matmul(&a, &b, &mut first, m, k, n, false, true, false);
        for _ in 0..3 {
            let mut again = vec![0.0; m * n];
            matmul(&a, &b, &mut again, m, k, n, false, true, false);
            assert_eq!(first, again);
        }
    }

    #[test]
    fn parallel_equals_serial_bitwise() {
        use crate::kernels::parallel::{with_mode, Mode};
        // Big enough (with Mode::Parallel) to be cut into several jobs, with edge tiles.
        let (m, k, n) = (150, 70, 90);
        let a = randn(m * k, 11);
        let b = randn(k * n, 12);
        let init = randn(m * n, 13);
        for (ta, tb, acc) in
            [(false, false, false), (true, false, true), (false, true, true), (true, true, false)]
        {
            let run = |mode| {
                with_mode(mode, || {
                    let mut out = init.clone();
                    matmul(&a, &b, &mut out, m, k, n, ta, tb, acc);
                    out
                })
            };
            let serial = run(Mode::Serial);
            assert_eq!(serial, run(Mode::Parallel), "ta={ta} tb={tb} acc={acc}");
            assert_eq!(serial, run(Mode::Auto), "ta={ta} tb={tb} acc={acc}");
        }
    }

    /// Batched products against [`naive`] on each matrix, the batch index mapped by hand.
    #[test]
    fn batched_matmul_broadcasts_batches_like_torch() {
        let (m, k, n) = (3, 4, 2);
        // [4, 1] x [3] -> [4, 3]; [2] x [] -> [2].
        for (a_batch, b_batch, full, a_of, b_of) in [
            (
                &[4usize, 1][..],
                &[3usize][..],
                &[4usize, 3][..],
                (|i: usize| i / 3) as fn(usize) -> usize,
                (|i: usize| i % 3) as fn(usize) -> usize,
            ),
            (&[2][..], &[][..], &[2][..], |i| i, |_| 0),
            (&[][..], &[2, 2][..], &[2, 2][..], |_| 0, |i| i),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let na: usize = a_batch.iter().product();
                let nb: usize = b_batch.iter().product();
                let count: usize = full.iter().product();
                let a = randn(na * m * k, 20);
                let b = randn(nb * k * n, 21);
                let mut out = vec![f32::NAN; count * m * n];
                batched_matmul(&a, a_batch, &b, b_batch, &mut out, full, m, k, n, ta, tb, false);
                let mut sum_a = vec![0.0; na * m * n];
                for i in 0..count {
                    let (ia, ib) = (a_of(i), b_of(i));
                    let want = naive(
                        &a[ia * m * k..][..m * k],
                        &b[ib * k * n..][..k * n],
                        &[],
                        m,
                        k,
                        n,
                        ta,
                        tb,
                        false,
                    );
                    for (x, y) in out[i * m * n..(i + 1) * m * n].iter().zip(&want) {
                        assert!(
                            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                            "batch {i} of {full:?} ta={ta} tb={tb}"
                        );
                    }
                    for (s, w) in sum_a[ia * m * n..(ia + 1) * m * n].iter_mut().zip(&want) {
                        *s += w;
                    }
                }
                // Into a broadcast out (a's batch): the products of every batch summed in order.
                let mut acc = vec![0.0; na * m * n];
                batched_matmul(&a, a_batch, &b, b_batch, &mut acc, a_batch, m, k, n, ta, tb, true);
                for (x, y) in acc.iter().zip(&sum_a) {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn batched_parallel_equals_serial_bitwise() {
        use crate::kernels::parallel::{with_mode, Mode};
        let (m, k, n) = (5, 7, 3);
        let a = randn(6 * m * k, 22);
        let b = randn(k * n, 23);
        let run = |mode| {
            with_mode(mode, || {
                let mut out = vec![0.0; 6 * m * n];
                batched_matmul(&a, &[2, 3], &b, &[1], &mut out, &[2, 3], m, k, n, false, false, false);
                out
            })
        };
        let serial = run(Mode::Serial);
        assert_eq!(serial, run(Mode::Parallel));
        assert_eq!(serial, run(Mode::Auto));
    }

    #[test]
    #[should_panic(expected = "batched_matmul: out's batch [1] is broadcast to [3]")]
    fn batched_matmul_into_a_broadcast_out_must_accumulate() {
        batched_matmul(&[0.0; 12], &[3], &[0.0; 4], &[1], &mut [0.0; 4], &[1], 2, 2, 2, false, false, false);
    }

    #[test]
    #[should_panic(expected = "batched_matmul: batch shapes [2], [3] and [] do not broadcast")]
    fn batched_matmul_rejects_incompatible_batches() {
        batched_matmul(&[0.0; 2], &[2], &[0.0; 3], &[3], &mut [0.0; 6], &[], 1, 1, 1, false, false, false);
    }

    #[test]
    #[should_panic(expected = "matmul: a has 5 elements")]
    fn wrong_a_len_panics() {
        let mut out = vec![0.0; 4];
        matmul(&[0.0; 5], &[0.0; 6], &mut out, 2, 3, 2, false, false, false);
    }

    #[test]
    #[should_panic(expected = "matmul: b has 7 elements, expected [2, 3]")]
    fn wrong_b_len_panics_naming_transposed_dims() {
        let mut out = vec![0.0; 4];
        matmul(&[0.0; 6], &[0.0; 7], &mut out, 2, 3, 2, false, true, false);
    }

    #[test]
    #[should_panic(expected = "matmul: out has 3 elements, expected [2, 2]")]
    fn wrong_out_len_panics() {
        let mut out = vec![0.0; 3];
        matmul(&[0.0; 6], &[0.0; 6], &mut out, 2, 3, 2, false, false, false);
    }
}
