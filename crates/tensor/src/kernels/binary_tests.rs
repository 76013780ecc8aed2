//! Tests of `binary.rs`: the broadcasting ops against a naive reference, serial against
//! parallel bit for bit, and `sum_to_shape`.

use super::*;
use crate::kernels::parallel::{with_mode, Mode};
use crate::testing::{self, assert_bits_eq, assert_par_eq_serial_bits};

type Op = fn(&[f32], &[usize], &[f32], &[usize], &mut [f32]);
type Scalar = fn(f32, f32) -> f32;

/// Each op with its plain per-element formula.
const OPS: [(&str, Op, Scalar); 5] = [
    ("add", add, |x, y| x + y),
    ("sub", sub, |x, y| x - y),
    ("mul", mul, |x, y| x * y),
    ("div", div, |x, y| x / y),
    ("maximum", maximum, |x, y| if x.is_nan() || x > y { x } else { y }),
];

/// Standard normal values for an operand of `shape`, seeded.
fn randn(shape: &[usize], seed: u64) -> Vec<f32> {
    testing::randn(numel(shape), seed)
}

/// Values away from zero, so that `div` stays tame.
fn away_from_zero(shape: &[usize], seed: u64) -> Vec<f32> {
    randn(shape, seed).into_iter().map(|v| if v < 0.0 { v - 0.5 } else { v + 0.5 }).collect()
}

/// Row-major multi-index of `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat index into an operand of shape `shape` for the output multi-index `out_idx`
/// (operand aligned right; size-1 axes pinned to 0).
fn operand_index(out_idx: &[usize], shape: &[usize]) -> usize {
    let pad = out_idx.len() - shape.len();
    let mut flat = 0;
    for d in 0..shape.len() {
        let i = if shape[d] == 1 { 0 } else { out_idx[pad + d] };
        flat = flat * shape[d] + i;
    }
    flat
}

fn naive_binary(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], f: fn(f32, f32) -> f32) -> Vec<f32> {
    let shape = broadcast_shapes(sa, sb).unwrap();
    (0..numel(&shape))
        .map(|i| {
            let idx = unravel(i, &shape);
            f(a[operand_index(&idx, sa)], b[operand_index(&idx, sb)])
        })
        .collect()
}

/// Sums in increasing grad index per target element, in f64 (for tolerance checks) and
/// in f32 (the exact order of the kernel when there is a single reduction block).
fn naive_sum_to_shape(grad: &[f32], gs: &[usize], ts: &[usize]) -> (Vec<f64>, Vec<f32>) {
    let mut s64 = vec![0.0f64; numel(ts)];
    let mut s32 = vec![0.0f32; numel(ts)];
    for (i, &g) in grad.iter().enumerate() {
        let t = operand_index(&unravel(i, gs), ts);
        s64[t] += g as f64;
        s32[t] += g;
    }
    (s64, s32)
}

fn run(op: Op, a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Vec<f32> {
    let mut out = vec![f32::NAN; numel(&broadcast_shapes(sa, sb).unwrap())];
    op(a, sa, b, sb, &mut out);
    out
}

fn check_all_ops(sa: &[usize], sb: &[usize]) {
    let a = randn(sa, 1);
    let b = away_from_zero(sb, 2);
    for (name, op, f) in OPS {
        let want = naive_binary(&a, sa, &b, sb, f);
        for mode in [Mode::Serial, Mode::Parallel] {
            let got = with_mode(mode, || run(op, &a, sa, &b, sb));
            assert_bits_eq(&got, &want, &format!("{name} {sa:?} {sb:?} {mode:?}"));
        }
    }
}

// ----- forward vs naive on every path ------------------------------------------------

#[test]
fn row_bias_3x5_plus_5() {
    check_all_ops(&[3, 5], &[5]);
    check_all_ops(&[5], &[3, 5]);
}

#[test]
fn column_times_row_3x1_and_1x4() {
    check_all_ops(&[3, 1], &[1, 4]);
}

#[test]
fn middle_axis_2x3x4_and_3x1() {
    check_all_ops(&[2, 3, 4], &[3, 1]);
    check_all_ops(&[3, 1], &[2, 3, 4]);
}

#[test]
fn both_stretched_4x1x5_and_3x1() {
    check_all_ops(&[4, 1, 5], &[3, 1]);
}

#[test]
fn scalar_and_matrix() {
    check_all_ops(&[], &[2, 3]);
    check_all_ops(&[2, 3], &[]);
    check_all_ops(&[2, 3], &[1]);
    check_all_ops(&[1, 1], &[2, 3]);
}

#[test]
fn scalars_and_unit_shapes() {
    check_all_ops(&[], &[]);
    check_all_ops(&[1], &[1, 1, 1]);
    check_all_ops(&[1, 1, 1], &[]);
}

#[test]
fn equal_shapes_and_leading_ones() {
    check_all_ops(&[3, 4], &[3, 4]);
    check_all_ops(&[1, 3, 4], &[3, 4]);
}

#[test]
fn channel_bias_nchw_plus_c11() {
    check_all_ops(&[2, 3, 4, 5], &[3, 1, 1]);
    check_all_ops(&[1, 3, 4, 5], &[1, 3, 1, 1]);
    check_all_ops(&[3, 1, 1], &[3, 3, 2, 2]);
}

#[test]
fn block_with_interior_unit_axis_takes_general_path() {
    check_all_ops(&[2, 3, 4, 5], &[3, 1, 5]);
    check_all_ops(&[2, 3, 4], &[2, 1, 4]);
}

#[test]
fn ops_across_several_chunks() {
    // Each fast path and the general path with more than two chunks and a ragged end.
    check_all_ops(&[41, 1003], &[41, 1003]);
    check_all_ops(&[41, 1003], &[1003]);
    check_all_ops(&[41, 1003], &[]);
    check_all_ops(&[9, 31, 157], &[31, 1]);
    check_all_ops(&[201, 1, 101], &[3, 101]);
    check_all_ops(&[201, 1, 3], &[1, 101, 1]);
}

#[test]
fn empty_output_is_fine() {
    let mut out: Vec<f32> = vec![];
    add(&[], &[0, 3], &[1.0, 2.0, 3.0], &[3], &mut out);
    mul(&[], &[2, 0], &[1.0], &[], &mut out);
}

#[test]
fn maximum_propagates_nan_from_either_side() {
    let out = run(maximum, &[f32::NAN, 1.0, 2.0], &[3], &[0.0, f32::NAN, 3.0], &[3]);
    assert!(out[0].is_nan() && out[1].is_nan());
    assert_eq!(out[2], 3.0);
}

#[test]
fn div_by_zero_follows_ieee() {
    let out = run(div, &[1.0, -1.0, 0.0], &[3], &[0.0], &[]);
    assert_eq!(&out[..2], &[f32::INFINITY, f32::NEG_INFINITY]);
    assert!(out[2].is_nan());
}

#[test]
fn forward_overwrites_stale_output() {
    let mut out = vec![f32::NAN; 4];
    sub(&[5.0, 6.0], &[2, 1], &[1.0, 2.0], &[2], &mut out);
    assert_eq!(out, vec![4.0, 3.0, 5.0, 4.0]);
}

// ----- shape errors ------------------------------------------------------------------

#[test]
#[should_panic(expected = "add: cannot broadcast shapes [2, 3] and [2]")]
fn add_incompatible_shapes_panics() {
    add(&[0.0; 6], &[2, 3], &[0.0; 2], &[2], &mut [0.0; 6]);
}

#[test]
#[should_panic(expected = "div: cannot broadcast shapes [4, 1, 5] and [3, 2]")]
fn div_incompatible_shapes_panics() {
    div(&[0.0; 20], &[4, 1, 5], &[0.0; 6], &[3, 2], &mut [0.0; 60]);
}

#[test]
#[should_panic(expected = "maximum: cannot broadcast shapes [3] and [4]")]
fn maximum_incompatible_shapes_panics() {
    maximum(&[0.0; 3], &[3], &[0.0; 4], &[4], &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "mul: b has 4 elements but shape [5] needs 5")]
fn operand_length_mismatch_panics() {
    mul(&[0.0; 10], &[2, 5], &[0.0; 4], &[5], &mut [0.0; 10]);
}

#[test]
#[should_panic(expected = "sub: out has 5 elements but the broadcast of [2, 5] and [5] is [2, 5] (10)")]
fn output_length_mismatch_panics() {
    sub(&[0.0; 10], &[2, 5], &[0.0; 5], &[5], &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "sum_to_shape: shape [3] does not broadcast to [2, 4]")]
fn sum_to_shape_incompatible_panics() {
    sum_to_shape(&[0.0; 8], &[2, 4], &[3], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "sum_to_shape: acc has 2 elements but shape [4] needs 4")]
fn sum_to_shape_acc_length_panics() {
    sum_to_shape(&[0.0; 8], &[2, 4], &[4], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "broadcast_to: cannot broadcast shape [2, 3] to [3]")]
fn broadcast_to_cannot_shrink() {
    broadcast_to(&[0.0; 6], &[2, 3], &[3], &mut [0.0; 3]);
}

// ----- sum_to_shape ------------------------------------------------------------------

/// Pairs (grad shape, target shape) small enough to be one reduction block, so the kernel
/// must match the plain increasing-order f32 sum bit for bit.
const SMALL_PAIRS: [(&[usize], &[usize]); 14] = [
    (&[3, 5], &[5]),
    (&[3, 5], &[1, 5]),
    (&[3, 5], &[3, 1]),
    (&[3, 5], &[]),
    (&[3, 5], &[1]),
    (&[3, 5], &[3, 5]),
    (&[4, 3, 5], &[4, 1, 5]),
    (&[4, 3, 5], &[3, 1]),
    (&[4, 3, 5], &[1, 3, 1]),
    (&[2, 3, 4, 5], &[3, 1, 1]),
    (&[2, 3, 4, 5], &[2, 1, 4, 1]),
    (&[2, 1, 3], &[1, 1, 3]),
    (&[1, 1, 1], &[1]),
    (&[], &[]),
];

#[test]
fn sum_to_shape_matches_naive_exactly_on_small_shapes() {
    for (s, (gs, ts)) in SMALL_PAIRS.into_iter().enumerate() {
        let grad = randn(gs, s as u64);
        let acc0 = randn(ts, 100 + s as u64);
        let (_, sums) = naive_sum_to_shape(&grad, gs, ts);
        let want: Vec<f32> = acc0.iter().zip(&sums).map(|(a, s)| a + s).collect();
        let mut acc = acc0.clone();
        sum_to_shape(&grad, gs, ts, &mut acc);
        assert_bits_eq(&acc, &want, &format!("{gs:?} -> {ts:?}"));
    }
}

#[test]
fn sum_to_shape_matches_naive_on_large_shapes() {
    let pairs: [(&[usize], &[usize]); 6] = [
        (&[50, 1000], &[1000]),          // blocks of a bias reduction
        (&[3, 20000], &[20000]),         // target chunked, no blocks
        (&[3, 20000], &[3, 1]),          // long rows
        (&[100_003], &[]),               // full reduction, many blocks
        (&[8, 16, 28, 28], &[16, 1, 1]), // conv bias
        (&[7, 3, 5000], &[7, 1, 5000]),  // target above CHUNK, interior axis
    ];
    for (s, (gs, ts)) in pairs.into_iter().enumerate() {
        let grad = randn(gs, s as u64);
        let (want, _) = naive_sum_to_shape(&grad, gs, ts);
        let per = (grad.len() / numel(ts)) as f64;
        let mut acc = vec![0.0; numel(ts)];
        with_mode(Mode::Parallel, || sum_to_shape(&grad, gs, ts, &mut acc));
        for (j, (&g, &w)) in acc.iter().zip(&want).enumerate() {
            // f32 summation of `per` standard normals: error grows at most like per * eps.
            let tol = 1e-6 * per.max(1.0) * 4.0;
            assert!((g as f64 - w).abs() <= tol, "{gs:?} -> {ts:?} at {j}: {g} vs {w}");
        }
    }
}

#[test]
fn sum_to_shape_accumulates() {
    for (gs, ts) in [(&[3usize, 5][..], &[5usize][..]), (&[60, 600], &[600]), (&[3, 20000], &[20000])] {
        let grad = randn(gs, 5);
        let mut fresh = vec![0.0; numel(ts)];
        sum_to_shape(&grad, gs, ts, &mut fresh);
        let acc0 = randn(ts, 6);
        let mut acc = acc0.clone();
        sum_to_shape(&grad, gs, ts, &mut acc);
        let want: Vec<f32> = acc0.iter().zip(&fresh).map(|(a, s)| a + s).collect();
        assert_bits_eq(&acc, &want, &format!("{gs:?} -> {ts:?}"));
    }
}

#[test]
fn sum_to_shape_of_empty_grad_leaves_acc_alone() {
    let mut acc = vec![-0.0, 2.0, 3.0];
    sum_to_shape(&[], &[0, 3], &[3], &mut acc);
    assert_eq!(acc[0].to_bits(), (-0.0f32).to_bits());
    assert_eq!(&acc[1..], &[2.0, 3.0]);
}

#[test]
fn sum_to_shape_undoes_broadcast_to_up_to_replication() {
    let pairs: [(&[usize], &[usize]); 7] = [
        (&[5], &[3, 5]),
        (&[3, 1], &[3, 5]),
        (&[], &[2, 3]),
        (&[3, 1], &[4, 3, 5]),
        (&[3, 1, 1], &[2, 3, 4, 5]),
        (&[1, 7], &[40, 9, 7]),
        (&[1], &[1, 1, 1]),
    ];
    for (s, (xs, shape)) in pairs.into_iter().enumerate() {
        // Small integers keep every partial sum exact, so equality is exact.
        let x: Vec<f32> = randn(xs, s as u64).iter().map(|v| (v * 4.0).round()).collect();
        let mut big = vec![0.0; numel(shape)];
        broadcast_to(&x, xs, shape, &mut big);
        let mut back = vec![0.0; x.len()];
        sum_to_shape(&big, shape, xs, &mut back);
        let count = (numel(shape) / x.len()) as f32;
        let want: Vec<f32> = x.iter().map(|v| v * count).collect();
        assert_eq!(back, want, "{xs:?} -> {shape:?}");
    }
}

// ----- broadcast_to ------------------------------------------------------------------

#[test]
fn broadcast_to_matches_naive() {
    let pairs: [(&[usize], &[usize]); 7] = [
        (&[5], &[3, 5]),
        (&[3, 1], &[3, 5]),
        (&[], &[2, 3]),
        (&[4, 1, 5], &[4, 3, 5]),
        (&[2, 3], &[2, 3]),
        (&[1, 3, 1], &[2, 3, 4]),
        (&[7, 1], &[5, 7, 3001]),
    ];
    for (s, (xs, shape)) in pairs.into_iter().enumerate() {
        let x = randn(xs, s as u64);
        let want: Vec<f32> = (0..numel(shape)).map(|i| x[operand_index(&unravel(i, shape), xs)]).collect();
        for mode in [Mode::Serial, Mode::Parallel] {
            let mut out = vec![f32::NAN; numel(shape)];
            with_mode(mode, || broadcast_to(&x, xs, shape, &mut out));
            assert_bits_eq(&out, &want, &format!("{xs:?} -> {shape:?}"));
        }
    }
}

// ----- maximum_backward --------------------------------------------------------------

#[test]
fn maximum_backward_matches_naive_with_ties() {
    let (sa, sb) = ([3usize, 4], [4usize]);
    let mut a = randn(&sa, 1);
    let b = randn(&sb, 2);
    a[1] = b[1]; // a tie: half to each side
    a[6] = b[2];
    let dy = randn(&[3, 4], 3);
    let (mut da, mut db) = (vec![1.0; 12], vec![1.0; 4]);
    maximum_backward(&a, &sa, &b, &sb, &dy, &mut da, &mut db);
    let (mut wa, mut wb) = (vec![1.0f32; 12], vec![1.0f32; 4]);
    let mut share_b = [0.0f32; 12];
    for i in 0..12 {
        let (x, y) = (a[i], b[i % 4]);
        let (ga, gb) = if x == y {
            (dy[i] / 2.0, dy[i] / 2.0)
        } else if x > y {
            (dy[i], 0.0)
        } else {
            (0.0, dy[i])
        };
        wa[i] += ga;
        share_b[i] = gb;
    }
    for (j, w) in wb.iter_mut().enumerate() {
        *w += (0..3).map(|r| share_b[r * 4 + j]).fold(0.0, |s, v| s + v);
    }
    assert_bits_eq(&da, &wa, "da");
    assert_bits_eq(&db, &wb, "db");
}

#[test]
fn minimum_backward_mirrors_maximum_with_ties_and_nan() {
    // min(a, b) = -max(-a, -b): the same shares, ties half to each side.
    let (sa, sb) = ([3usize, 4], [4usize]);
    let mut a = randn(&sa, 4);
    let b = randn(&sb, 5);
    a[1] = b[1];
    a[6] = b[2];
    let dy = randn(&[3, 4], 6);
    let (mut da, mut db) = (vec![1.0; 12], vec![1.0; 4]);
    minimum_backward(&a, &sa, &b, &sb, &dy, &mut da, &mut db);
    let neg = |v: &[f32]| v.iter().map(|x| -x).collect::<Vec<f32>>();
    let (mut wa, mut wb) = (vec![1.0; 12], vec![1.0; 4]);
    maximum_backward(&neg(&a), &sa, &neg(&b), &sb, &dy, &mut wa, &mut wb);
    assert_bits_eq(&da, &wa, "da");
    assert_bits_eq(&db, &wb, "db");
    let mut out = vec![0.0; 12];
    minimum(&a, &sa, &b, &sb, &mut out);
    assert_bits_eq(&out, &naive_binary(&a, &sa, &b, &sb, f32::min), "minimum");
    // NaN: the value is NaN and both sides get all of dy, as for maximum.
    let (mut da, mut db) = (vec![0.0; 1], vec![0.0; 1]);
    minimum_backward(&[f32::NAN], &[1], &[1.0], &[1], &[2.0], &mut da, &mut db);
    assert_eq!((da[0], db[0]), (2.0, 2.0));
    minimum(&[f32::NAN], &[1], &[1.0], &[1], &mut da);
    assert!(da[0].is_nan());
}

#[test]
fn maximum_backward_matches_finite_differences() {
    let (sa, sb) = ([2usize, 3], [2usize, 1]);
    let a = [0.3f32, -1.2, 2.0, 0.9, -0.4, 1.7];
    let b = [0.5f32, -0.1];
    let dy = [1.0f32, -2.0, 0.5, 3.0, 1.5, -1.0];
    let loss = |a: &[f32], b: &[f32]| -> f64 {
        run(maximum, a, &sa, b, &sb).iter().zip(&dy).map(|(&y, &g)| y as f64 * g as f64).sum()
    };
    let (mut da, mut db) = (vec![0.0; 6], vec![0.0; 2]);
    maximum_backward(&a, &sa, &b, &sb, &dy, &mut da, &mut db);
    let h = 1e-2f32;
    for i in 0..6 {
        let (mut p, mut m) = (a, a);
        p[i] += h;
        m[i] -= h;
        let fd = (loss(&p, &b) - loss(&m, &b)) / (p[i] as f64 - m[i] as f64);
        assert!((da[i] as f64 - fd).abs() < 1e-4, "da[{i}]: {} vs {fd}", da[i]);
    }
    for j in 0..2 {
        let (mut p, mut m) = (b, b);
        p[j] += h;
        m[j] -= h;
        let fd = (loss(&a, &p) - loss(&a, &m)) / (p[j] as f64 - m[j] as f64);
        assert!((db[j] as f64 - fd).abs() < 1e-4, "db[{j}]: {} vs {fd}", db[j]);
    }
}

#[test]
#[should_panic(expected = "maximum_backward: dy has 3 elements, output shape [2, 2] needs 4")]
fn maximum_backward_dy_length_panics() {
    maximum_backward(&[0.0; 2], &[2, 1], &[0.0; 2], &[2], &[0.0; 3], &mut [0.0; 2], &mut [0.0; 2]);
}

// ----- parallel == serial ------------------------------------------------------------

#[test]
fn large_broadcasts_are_bit_identical_serial_and_parallel() {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[3 * CHUNK + 17], &[3 * CHUNK + 17]),
        (&[3 * CHUNK + 17], &[]),
        (&[17, 3001], &[3001]),
        (&[5, 7, 30, 61], &[7, 1, 1]),
        (&[301, 1, 211], &[1, 3, 211]),
    ];
    for (sa, sb) in cases {
        let a = randn(sa, 11);
        let b = away_from_zero(sb, 12);
        for (name, op, _) in OPS {
            assert_par_eq_serial_bits(&format!("{name} {sa:?} {sb:?}"), || run(op, &a, sa, &b, sb));
        }
    }
}

#[test]
fn sum_to_shape_and_broadcast_to_are_bit_identical_serial_and_parallel() {
    let pairs: [(&[usize], &[usize]); 5] = [
        (&[300, 1000], &[1000]),
        (&[4, 3 * CHUNK + 17], &[3 * CHUNK + 17]),
        (&[3 * CHUNK + 17], &[]),
        (&[16, 32, 14, 14], &[32, 1, 1]),
        (&[60, 7, 300], &[60, 1, 300]),
    ];
    for (gs, ts) in pairs {
        let grad = randn(gs, 21);
        let acc0 = randn(ts, 22);
        let reduce = || {
            let mut acc = acc0.clone();
            sum_to_shape(&grad, gs, ts, &mut acc);
            acc
        };
        assert_par_eq_serial_bits(&format!("sum_to_shape {gs:?} -> {ts:?}"), reduce);

        let expand = || {
            let mut out = vec![0.0; grad.len()];
            broadcast_to(&acc0, ts, gs, &mut out);
            out
        };
        assert_par_eq_serial_bits(&format!("broadcast_to {ts:?} -> {gs:?}"), expand);
    }
}
