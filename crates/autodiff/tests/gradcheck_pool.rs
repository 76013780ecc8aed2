//! Average pooling (fixed and adaptive windows) and 1-d convolution checked against central
//! finite differences on random shapes, each through a weighted sum of its output.

mod common;

use adamant_tensor::rng::mix;
use common::{check, param, weigh};

/// A size in `lo..=hi` drawn from `(case, what)`: random shapes, the same every run.
fn pick(case: u64, what: u64, lo: usize, hi: usize) -> usize {
    lo + (mix(case, what) % (hi - lo + 1) as u64) as usize
}

#[test]
fn avg_pool2d_on_random_shapes() {
    for case in 0..8 {
        let kernel = pick(case, 0, 1, 4);
        let (stride, padding) = (pick(case, 1, 1, 3), pick(case, 2, 0, kernel / 2));
        let (h, w) = (pick(case, 3, kernel, kernel + 4), pick(case, 4, kernel, kernel + 4));
        let shape = [pick(case, 5, 1, 2), pick(case, 6, 1, 3), h, w];
        let mut x = param("x", &shape, case);
        check(&mut [&mut x], |t, p| weigh(t.param(&*p[0]).avg_pool2d(kernel, stride, padding)));
    }
}

#[test]
fn adaptive_avg_pool2d_on_random_shapes_including_upsampling() {
    for case in 0..8 {
        let shape = [pick(case, 0, 1, 2), pick(case, 1, 1, 3), pick(case, 2, 1, 7), pick(case, 3, 1, 7)];
        let (oh, ow) = (pick(case, 4, 1, 5), pick(case, 5, 1, 5));
        let mut x = param("x", &shape, 100 + case);
        check(&mut [&mut x], |t, p| weigh(t.param(&*p[0]).adaptive_avg_pool2d(oh, ow)));
    }
}

#[test]
fn conv1d_on_random_shapes_with_and_without_bias() {
    for case in 0..6 {
        let (n, c, oc, k) =
            (pick(case, 0, 1, 2), pick(case, 1, 1, 3), pick(case, 2, 1, 3), pick(case, 3, 1, 4));
        let (stride, padding) = (pick(case, 4, 1, 3), pick(case, 5, 0, 2));
        let len = pick(case, 6, k.saturating_sub(2 * padding).max(1), k + 5);
        let mut x = param("x", &[n, c, len], 200 + case);
        let mut w = param("w", &[oc, c, k], 300 + case);
        let mut b = param("b", &[oc], 400 + case);
        if case % 2 == 0 {
            check(&mut [&mut x, &mut w, &mut b], |t, p| {
                weigh(t.param(&*p[0]).conv1d(t.param(&*p[1]), Some(t.param(&*p[2])), stride, padding))
            });
        } else {
            check(&mut [&mut x, &mut w], |t, p| {
                weigh(t.param(&*p[0]).conv1d(t.param(&*p[1]), None, stride, padding))
            });
        }
    }
}
