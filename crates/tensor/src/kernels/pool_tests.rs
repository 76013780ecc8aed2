//! Tests of `pool.rs`: max and average pooling, forward and backward, against naive loops.

use super::*;
use crate::kernels::parallel::{with_mode, Mode};
use crate::testing::randn;

/// Literal definition: pad each plane with -inf, take the window maximum, and report the
/// first real (non-padding) cell in row-major order holding that maximum.
#[allow(clippy::too_many_arguments)]
fn naive_forward(
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let mut out = vec![];
    let mut am = vec![];
    for plane in 0..n * c {
        let mut padded = vec![f32::NEG_INFINITY; ph * pw];
        for y in 0..h {
            for xx in 0..w {
                padded[(y + p) * pw + xx + p] = x[plane * h * w + y * w + xx];
            }
        }
        for oy in 0..oh {
            for ox in 0..ow {
                let cells: Vec<(usize, usize)> =
                    (0..k).flat_map(|i| (0..k).map(move |j| (oy * s + i, ox * s + j))).collect();
                let m = cells.iter().map(|&(y, xx)| padded[y * pw + xx]).fold(f32::NEG_INFINITY, f32::max);
                let &(y, xx) = cells
                    .iter()
                    .find(|&&(y, xx)| {
                        y >= p && xx >= p && y < h + p && xx < w + p && padded[y * pw + xx] == m
                    })
                    .unwrap();
                out.push(m);
                am.push(((y - p) * w + (xx - p)) as u32);
            }
        }
    }
    (out, am)
}

fn naive_backward(dy: &[f32], am: &[u32], planes: usize, plane_in: usize) -> Vec<f32> {
    let mut dx = vec![0.0; planes * plane_in];
    let per = dy.len() / planes.max(1);
    for (o, (&g, &i)) in dy.iter().zip(am).enumerate() {
        dx[(o / per) * plane_in + i as usize] += g;
    }
    dx
}

#[allow(clippy::too_many_arguments)]
fn run_forward(
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
) -> (Vec<f32>, Vec<u32>) {
    let len = n * c * pool_out_size(h, k, s, p) * pool_out_size(w, k, s, p);
    let mut out = vec![f32::NAN; len];
    let mut am = vec![u32::MAX; len];
    max_pool2d_forward(x, n, c, h, w, k, s, p, &mut out, &mut am);
    (out, am)
}

/// (batch, channels, height, width, kernel, stride, padding)
/// Output rows of 3, 16, 19 and 35 columns cover part of a vector step, whole ones and
/// several steps plus a remainder.
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 11] = [
    (1, 1, 7, 5, 3, 2, 1),
    (3, 2, 7, 5, 3, 2, 1),
    (2, 3, 32, 32, 3, 2, 1),
    (1, 1, 1, 1, 3, 2, 1),
    (3, 2, 8, 6, 2, 2, 0),
    (1, 3, 7, 9, 2, 2, 0),
    (2, 1, 6, 7, 3, 1, 1),
    (1, 2, 5, 5, 5, 1, 2),
    (3, 1, 9, 4, 4, 3, 2),
    (1, 2, 21, 37, 3, 2, 1),
    (2, 1, 5, 37, 3, 1, 1),
];

#[test]
fn out_size_formula() {
    assert_eq!(pool_out_size(32, 3, 2, 1), 16);
    assert_eq!(pool_out_size(7, 3, 2, 1), 4);
    assert_eq!(pool_out_size(5, 3, 2, 1), 3);
    assert_eq!(pool_out_size(1, 3, 2, 1), 1);
    assert_eq!(pool_out_size(7, 2, 2, 0), 3);
    assert_eq!(pool_out_size(28, 2, 2, 0), 14);
}

#[test]
#[should_panic(expected = "pool_out_size: kernel 4 is larger than the padded size 3")]
fn out_size_kernel_too_large_panics() {
    pool_out_size(3, 4, 1, 0);
}

#[test]
fn forward_matches_naive() {
    for (s, &(n, c, h, w, k, st, p)) in CASES.iter().enumerate() {
        let x = randn(n * c * h * w, s as u64);
        let got = run_forward(&x, n, c, h, w, k, st, p);
        let want = naive_forward(&x, n, c, h, w, k, st, p);
        assert_eq!(got, want, "case {:?}", CASES[s]);
    }
}

#[test]
fn all_negative_inputs_see_padding_as_minus_infinity() {
    for &(n, c, h, w, k, st, p) in CASES.iter().filter(|cs| cs.6 > 0) {
        let x: Vec<f32> = randn(n * c * h * w, 3).iter().map(|v| -1.0 - v.abs()).collect();
        let (out, am) = run_forward(&x, n, c, h, w, k, st, p);
        assert!(out.iter().all(|&v| v < -0.99), "padding leaked a value >= -1");
        assert_eq!((out, am), naive_forward(&x, n, c, h, w, k, st, p));
    }
}

#[test]
fn corner_window_with_padding_known_values() {
    // 3x3 of -(1..9), k=3 s=2 p=1: out 2x2; top-left window covers x[0..2, 0..2].
    let x: Vec<f32> = (1..=9).map(|v| -(v as f32)).collect();
    let (out, am) = run_forward(&x, 1, 1, 3, 3, 3, 2, 1);
    assert_eq!(out, [-1.0, -2.0, -4.0, -5.0]);
    assert_eq!(am, [0, 1, 3, 4]);
}

#[test]
fn ties_pick_the_first_maximum() {
    // Constant planes: every window's argmax is its first real cell.
    let (n, c, h, w, k, s, p) = (2, 2, 7, 5, 3, 2, 1);
    let x = vec![1.5; n * c * h * w];
    let (out, am) = run_forward(&x, n, c, h, w, k, s, p);
    assert!(out.iter().all(|&v| v == 1.5));
    assert_eq!(am, naive_forward(&x, n, c, h, w, k, s, p).1);
    // Windows start at rows 0,1,3,5 and columns 0,1,3 (clamped at the top/left padding).
    assert_eq!(&am[..6], &[0, 1, 3, 5, 6, 8]);
    // Two equal maxima in one 2x2 window: row-major first wins.
    let x = [0.0, 3.0, 3.0, 1.0];
    let (out, am) = run_forward(&x, 1, 1, 2, 2, 2, 2, 0);
    assert_eq!((out, am), (vec![3.0], vec![1]));
    let x = [3.0, 0.0, 1.0, 3.0];
    assert_eq!(run_forward(&x, 1, 1, 2, 2, 2, 2, 0).1, vec![0]);
}

#[test]
fn integer_valued_inputs_with_many_ties_match_naive() {
    for (s, &(n, c, h, w, k, st, p)) in CASES.iter().enumerate() {
        let x: Vec<f32> = randn(n * c * h * w, 40 + s as u64).iter().map(|v| (v * 1.5).round()).collect();
        assert_eq!(run_forward(&x, n, c, h, w, k, st, p), naive_forward(&x, n, c, h, w, k, st, p));
    }
}

#[test]
fn nan_propagates_like_pytorch() {
    let x = [1.0, f32::NAN, 5.0, 2.0];
    let (out, am) = run_forward(&x, 1, 1, 2, 2, 2, 2, 0);
    assert!(out[0].is_nan());
    assert_eq!(am, [1]);
}

#[test]
fn one_by_one_plane_with_padding() {
    let (out, am) = run_forward(&[-7.0, 4.0], 2, 1, 1, 1, 3, 2, 1);
    assert_eq!((out, am), (vec![-7.0, 4.0], vec![0, 0]));
}

#[test]
#[should_panic(expected = "max_pool2d_forward: padding 2 must be at most half the kernel size 3")]
fn padding_over_half_kernel_panics() {
    run_forward(&[0.0; 25], 1, 1, 5, 5, 3, 1, 2);
}

#[test]
#[should_panic(expected = "max_pool2d_forward: out has 3 elements, expected [1, 1, 2, 2]")]
fn forward_wrong_out_len_panics() {
    let (mut out, mut am) = (vec![0.0; 3], vec![0; 3]);
    max_pool2d_forward(&[0.0; 16], 1, 1, 4, 4, 2, 2, 0, &mut out, &mut am);
}

#[test]
fn backward_matches_naive_and_accumulates() {
    for (s, &(n, c, h, w, k, st, p)) in CASES.iter().enumerate() {
        let x = randn(n * c * h * w, 60 + s as u64);
        let (out, am) = run_forward(&x, n, c, h, w, k, st, p);
        let dy = randn(out.len(), 80 + s as u64);
        let start = randn(x.len(), 100 + s as u64);
        let mut dx = start.clone();
        let (oh, ow) = (pool_out_size(h, k, st, p), pool_out_size(w, k, st, p));
        max_pool2d_backward(&dy, &am, n, c, h, w, oh, ow, &mut dx);
        let naive = naive_backward(&dy, &am, n * c, h * w);
        for (i, (&got, (&s0, &d))) in dx.iter().zip(start.iter().zip(&naive)).enumerate() {
            assert!((got - (s0 + d)).abs() <= 1e-6 * (1.0 + got.abs()), "case {:?} dx[{i}]", CASES[s]);
        }
    }
}

#[test]
fn backward_into_overwrites_with_the_bits_of_zeros_plus_accumulation() {
    for (s, &(n, c, h, w, k, st, p)) in CASES.iter().enumerate() {
        let x = randn(n * c * h * w, 160 + s as u64);
        let (out, am) = run_forward(&x, n, c, h, w, k, st, p);
        let mut dy = randn(out.len(), 180 + s as u64);
        dy[0] = -0.0; // 0.0 + -0.0 is 0.0 on both routes
        let (oh, ow) = (pool_out_size(h, k, st, p), pool_out_size(w, k, st, p));
        let mut want = vec![0.0; x.len()];
        max_pool2d_backward(&dy, &am, n, c, h, w, oh, ow, &mut want);
        let mut got = vec![f32::NAN; x.len()];
        max_pool2d_backward_into(&dy, &am, n, c, h, w, oh, ow, &mut got, false);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "case {:?}", CASES[s]);
    }
}

#[test]
fn backward_overlapping_windows_accumulate() {
    // 1x3 row [0, 9, 0], kernel 3 stride 1 pad 1: all three windows pick the middle.
    let (out, am) = run_forward(&[0.0, 9.0, 0.0], 1, 1, 1, 3, 3, 1, 1);
    assert_eq!((out, am.clone()), (vec![9.0; 3], vec![1; 3]));
    let mut dx = vec![0.0; 3];
    max_pool2d_backward(&[1.0, 2.0, 4.0], &am, 1, 1, 1, 3, 1, 3, &mut dx);
    assert_eq!(dx, [0.0, 7.0, 0.0]);
}

#[test]
#[should_panic(expected = "max_pool2d_backward: argmax 9 is outside the 3x3 plane")]
fn backward_bad_argmax_panics() {
    let mut dx = vec![0.0; 9];
    max_pool2d_backward(&[1.0], &[9], 1, 1, 3, 3, 1, 1, &mut dx);
}

#[test]
#[should_panic(expected = "max_pool2d_backward: dx_acc has 8 elements, expected [1, 1, 3, 3]")]
fn backward_wrong_dx_len_panics() {
    let mut dx = vec![0.0; 8];
    max_pool2d_backward(&[1.0], &[0], 1, 1, 3, 3, 1, 1, &mut dx);
}

#[test]
fn parallel_equals_serial_bitwise() {
    let (n, c, h, w, k, s, p) = (3, 5, 13, 11, 3, 2, 1);
    let x = randn(n * c * h * w, 7);
    let (oh, ow) = (pool_out_size(h, k, s, p), pool_out_size(w, k, s, p));
    let dy = randn(n * c * oh * ow, 8);
    let run = |mode| {
        with_mode(mode, || {
            let (out, am) = run_forward(&x, n, c, h, w, k, s, p);
            let mut dx = vec![0.5; x.len()];
            max_pool2d_backward(&dy, &am, n, c, h, w, oh, ow, &mut dx);
            (out, am, dx)
        })
    };
    assert_eq!(run(Mode::Serial), run(Mode::Parallel));
}

/// Average pooling by the definition: pad with zeros, sum each window, divide by `k*k`;
/// its backward spreads `dy / k^2` back over the padded window and drops the padding.
fn naive_avg(x: &[f32], p: usize, h: usize, w: usize, k: usize, s: usize, pad: usize) -> Vec<f32> {
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let (oh, ow) = ((ph - k) / s + 1, (pw - k) / s + 1);
    let mut out = vec![0.0; p * oh * ow];
    for pl in 0..p {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0;
                for ky in 0..k {
                    for kx in 0..k {
                        let (y, xx) = (oy * s + ky, ox * s + kx);
                        if y >= pad && y < h + pad && xx >= pad && xx < w + pad {
                            sum += x[(pl * h + y - pad) * w + xx - pad];
                        }
                    }
                }
                out[(pl * oh + oy) * ow + ox] = sum / (k * k) as f32;
            }
        }
    }
    out
}

/// The adjoint by the definition: `<avg(x), dy> = <x, dx>` for every `x`, so `dx` is the
/// gradient of that inner product, computed one basis vector at a time.
fn adjoint(forward: impl Fn(&[f32]) -> Vec<f32>, n_in: usize, dy: &[f32]) -> Vec<f32> {
    (0..n_in)
        .map(|i| {
            let mut e = vec![0.0; n_in];
            e[i] = 1.0;
            forward(&e).iter().zip(dy).map(|(a, b)| a * b).sum()
        })
        .collect()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "at {i}: {x} vs {y}");
    }
}

#[test]
fn avg_pool_matches_naive_forward_and_backward() {
    for (p, h, w, k, s, pad) in
        [(2, 5, 6, 2, 2, 0), (3, 7, 5, 3, 2, 1), (1, 4, 4, 3, 1, 1), (2, 6, 7, 4, 3, 2)]
    {
        let x = randn(p * h * w, 3);
        let (oh, ow) = (pool_out_size(h, k, s, pad), pool_out_size(w, k, s, pad));
        let mut out = vec![f32::NAN; p * oh * ow];
        avg_pool2d_forward(&x, p, h, w, k, s, pad, &mut out);
        close(&out, &naive_avg(&x, p, h, w, k, s, pad));
        let dy = randn(out.len(), 4);
        let mut dx = vec![0.25; x.len()];
        avg_pool2d_backward(&dy, p, h, w, k, s, pad, &mut dx);
        let want: Vec<f32> =
            adjoint(|e| naive_avg(e, p, h, w, k, s, pad), x.len(), &dy).iter().map(|g| g + 0.25).collect();
        close(&dx, &want);
    }
}

#[test]
fn avg_pool_counts_padding_in_the_divisor() {
    // 2x2 of ones, kernel 3, padding 1, stride 1: each window holds 4 real ones of 9 cells.
    let mut out = vec![0.0; 4];
    avg_pool2d_forward(&[1.0; 4], 1, 2, 2, 3, 1, 1, &mut out);
    assert_eq!(out, [4.0 / 9.0; 4]);
}

/// Adaptive pooling by the definition, with PyTorch's start/end formulas written out.
fn naive_adaptive(x: &[f32], p: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0; p * oh * ow];
    for pl in 0..p {
        for i in 0..oh {
            let (y0, y1) = ((i * h) as f64 / oh as f64, ((i + 1) * h) as f64 / oh as f64);
            let (y0, y1) = (y0.floor() as usize, y1.ceil() as usize);
            for j in 0..ow {
                let (x0, x1) = ((j * w) as f64 / ow as f64, ((j + 1) * w) as f64 / ow as f64);
                let (x0, x1) = (x0.floor() as usize, x1.ceil() as usize);
                let mut sum = 0.0;
                for y in y0..y1 {
                    for xx in x0..x1 {
                        sum += x[(pl * h + y) * w + xx];
                    }
                }
                out[(pl * oh + i) * ow + j] = sum / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
    }
    out
}

#[test]
fn adaptive_avg_pool_matches_naive_forward_and_backward() {
    for (p, h, w, oh, ow) in
        [(2, 6, 6, 3, 2), (3, 5, 7, 3, 4), (1, 4, 3, 4, 3), (2, 3, 5, 1, 1), (1, 2, 2, 5, 3)]
    {
        let x = randn(p * h * w, 5);
        let mut out = vec![f32::NAN; p * oh * ow];
        adaptive_avg_pool2d_forward(&x, p, h, w, oh, ow, &mut out);
        close(&out, &naive_adaptive(&x, p, h, w, oh, ow));
        let dy = randn(out.len(), 6);
        let mut dx = vec![-1.0; x.len()];
        adaptive_avg_pool2d_backward(&dy, p, h, w, oh, ow, &mut dx);
        let want: Vec<f32> =
            adjoint(|e| naive_adaptive(e, p, h, w, oh, ow), x.len(), &dy).iter().map(|g| g - 1.0).collect();
        close(&dx, &want);
    }
}

#[test]
#[should_panic(expected = "avg_pool2d_forward: padding 2 must be at most half the kernel size 3")]
fn avg_pool_padding_over_half_kernel_panics() {
    avg_pool2d_forward(&[0.0; 9], 1, 3, 3, 3, 1, 2, &mut [0.0; 25]);
}

#[test]
fn avg_pools_parallel_equal_serial_bitwise() {
    let (p, h, w) = (40, 17, 15);
    let x = randn(p * h * w, 9);
    let run = |mode| {
        with_mode(mode, || {
            let (oh, ow) = (pool_out_size(h, 3, 2, 1), pool_out_size(w, 3, 2, 1));
            let mut out = vec![0.0; p * oh * ow];
            avg_pool2d_forward(&x, p, h, w, 3, 2, 1, &mut out);
            let mut dx = vec![0.0; x.len()];
            avg_pool2d_backward(&out, p, h, w, 3, 2, 1, &mut dx);
            let mut ad = vec![0.0; p * 4 * 3];
            adaptive_avg_pool2d_forward(&x, p, h, w, 4, 3, &mut ad);
            adaptive_avg_pool2d_backward(&ad, p, h, w, 4, 3, &mut dx);
            (out, dx, ad)
        })
    };
    assert_eq!(run(Mode::Serial), run(Mode::Parallel));
}
