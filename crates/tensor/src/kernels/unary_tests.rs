//! Tests of the unary kernels (`unary.rs`), kept in their own file beside it.

use super::*;
// The kernels of `activation.rs` share this module's test helpers.
use crate::kernels::activation::*;
use crate::kernels::parallel::{with_mode, Mode};
use crate::testing::{assert_bits_eq, assert_close, assert_par_eq_serial_bits, normal};

type Forward = fn(&[f32], &mut [f32]);
type Backward = fn(&[f32], &[f32], &mut [f32]);

/// Lengths that exercise one element, a short odd slice, and several chunks with a ragged
/// last one (the naive comparison catches chunk-offset mistakes there).
const LENS: [usize; 3] = [1, 7, 2 * CHUNK + 5];

fn positive(n: usize, seed: u64) -> Vec<f32> {
    normal(n, 0.0, 1.0, seed).into_iter().map(|v| v.abs() + 0.1).collect()
}

fn fwd(f: impl Fn(&[f32], &mut [f32]), x: &[f32]) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.len()];
    f(x, &mut out);
    out
}

/// Forward kernel vs a naive per-element loop, exact to the bit, on every length in LENS.
fn check_forward_exact(k: Forward, naive: fn(f32) -> f32, domain_positive: bool) {
    for (s, &n) in LENS.iter().enumerate() {
        let x = if domain_positive { positive(n, s as u64) } else { normal(n, 0.0, 2.0, s as u64) };
        let want: Vec<f32> = x.iter().map(|&v| naive(v)).collect();
        let got = with_mode(Mode::Parallel, || fwd(k, &x));
        assert_bits_eq(&got, &want, "forward vs naive");
    }
}

/// Backward kernel vs a naive loop `dx[i] += g(a[i], dy[i])`, with a non-zero starting
/// `dx` so that overwriting instead of accumulating fails.
fn check_backward_exact(k: Backward, naive: fn(f32, f32) -> f32, domain_positive: bool) {
    for (s, &n) in LENS.iter().enumerate() {
        let a = if domain_positive { positive(n, 10 + s as u64) } else { normal(n, 0.0, 2.0, 10 + s as u64) };
        let dy = normal(n, 0.0, 1.0, 20 + s as u64);
        let dx0 = normal(n, 0.0, 1.0, 30 + s as u64);
        let mut want = dx0.clone();
        for i in 0..n {
            want[i] += naive(a[i], dy[i]);
        }
        let mut got = dx0.clone();
        with_mode(Mode::Parallel, || k(&a, &dy, &mut got));
        assert_bits_eq(&got, &want, "backward vs naive");
    }
}

/// Checks that `backward` equals dy times the central difference of `forward`, computed in
/// f64 from f32 evaluations at `x +- h` with `h = min(|x|, 1) / 128`. The closure gets `(x, y = forward(x), dy, dx)`.
fn check_finite_differences(
    forward: impl Fn(&[f32], &mut [f32]),
    backward: impl Fn(&[f32], &[f32], &[f32], &mut [f32]),
    points: &[f32],
) {
    let n = points.len();
    let y = fwd(&forward, points);
    let dy: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 0.75 } else { -1.25 }).collect();
    let mut dx = vec![0.5f32; n];
    backward(points, &y, &dy, &mut dx);
    // A step relative to |x| near 0 keeps the truncation error of steep functions (x^-1.5
    // at 0.2) small; the f64 quotient divides by the step actually taken after rounding.
    let step = |v: f32| (v.abs() / 128.0).min(1.0 / 128.0);
    let xp: Vec<f32> = points.iter().map(|&v| v + step(v)).collect();
    let xm: Vec<f32> = points.iter().map(|&v| v - step(v)).collect();
    let (fp, fm) = (fwd(&forward, &xp), fwd(&forward, &xm));
    for i in 0..n {
        let slope = (fp[i] as f64 - fm[i] as f64) / (xp[i] as f64 - xm[i] as f64);
        let want = 0.5 + dy[i] as f64 * slope;
        let err = (dx[i] as f64 - want).abs();
        assert!(
            err <= 1e-3 * (1.0 + want.abs()),
            "at x = {}: backward gives {}, finite differences {want}",
            points[i],
            dx[i]
        );
    }
}

const ANYWHERE: [f32; 8] = [-3.1, -1.7, -0.4, -0.05, 0.05, 0.3, 1.1, 2.6];
const POSITIVE: [f32; 5] = [0.2, 0.7, 1.3, 2.9, 7.5];

// ----- forward vs naive --------------------------------------------------------------

#[test]
fn neg_matches_naive() {
    check_forward_exact(neg, |v| -v, false);
}

#[test]
fn exp_matches_naive() {
    check_forward_exact(exp, f32::exp, false);
}

#[test]
fn log_matches_naive() {
    check_forward_exact(log, f32::ln, true);
}

#[test]
fn sqrt_matches_naive() {
    check_forward_exact(sqrt, f32::sqrt, true);
}

#[test]
fn square_matches_naive() {
    check_forward_exact(square, |v| v * v, false);
}

#[test]
fn relu_matches_naive() {
    check_forward_exact(relu, |v| if v > 0.0 { v } else { 0.0 }, false);
}

#[test]
fn tanh_matches_naive() {
    check_forward_exact(tanh, f32::tanh, false);
}

#[test]
fn sigmoid_matches_textbook_formula_in_f64() {
    for (s, &n) in LENS.iter().enumerate() {
        let x = normal(n, 0.0, 4.0, s as u64);
        let want: Vec<f64> = x.iter().map(|&v| 1.0 / (1.0 + (-(v as f64)).exp())).collect();
        let got = with_mode(Mode::Parallel, || fwd(sigmoid, &x));
        assert_close(&got, &want, 1e-6, "sigmoid");
    }
}

#[test]
fn softplus_matches_textbook_formula_in_f64() {
    for (s, &n) in LENS.iter().enumerate() {
        let x = normal(n, 0.0, 4.0, s as u64);
        let want: Vec<f64> = x.iter().map(|&v| (v as f64).exp().ln_1p()).collect();
        let got = with_mode(Mode::Parallel, || fwd(softplus, &x));
        assert_close(&got, &want, 1e-6, "softplus");
    }
}

#[test]
fn scalar_ops_match_naive() {
    for (s, &n) in LENS.iter().enumerate() {
        let x = normal(n, 0.0, 2.0, s as u64);
        let xp = positive(n, s as u64);
        with_mode(Mode::Parallel, || {
            let mut out = vec![0.0; n];
            add_scalar(&x, -0.37, &mut out);
            assert_bits_eq(&out, &x.iter().map(|v| v + -0.37).collect::<Vec<_>>(), "add_scalar");
            mul_scalar(&x, 3.3, &mut out);
            assert_bits_eq(&out, &x.iter().map(|v| v * 3.3).collect::<Vec<_>>(), "mul_scalar");
            powf(&xp, 1.7, &mut out);
            assert_bits_eq(&out, &xp.iter().map(|v| v.powf(1.7)).collect::<Vec<_>>(), "powf");
        });
    }
}

#[test]
fn forward_overwrites_stale_output() {
    let x = [1.0, -2.0, 3.0];
    let mut out = [f32::NAN; 3];
    relu(&x, &mut out);
    assert_eq!(out, [1.0, 0.0, 3.0]);
    mul_scalar(&x, 2.0, &mut out);
    assert_eq!(out, [2.0, -4.0, 6.0]);
}

#[test]
fn relu_propagates_nan_and_zeroes_negatives() {
    let out = fwd(relu, &[f32::NAN, -0.5, 0.0, 2.0, f32::NEG_INFINITY]);
    assert!(out[0].is_nan());
    assert_eq!(&out[1..], &[0.0, 0.0, 2.0, 0.0]);
}

#[test]
fn log_and_sqrt_edge_values_follow_ieee() {
    let l = fwd(log, &[0.0, 1.0, -1.0]);
    assert_eq!(l[0], f32::NEG_INFINITY);
    assert_eq!(l[1], 0.0);
    assert!(l[2].is_nan());
    let s = fwd(sqrt, &[0.0, 4.0, -1.0]);
    assert_eq!(&s[..2], &[0.0, 2.0]);
    assert!(s[2].is_nan());
}

// ----- numerical stability -----------------------------------------------------------

const EXTREMES: [f32; 8] = [-1e4, -1000.0, -100.0, -88.0, 88.0, 100.0, 1000.0, 1e4];

#[test]
fn sigmoid_saturates_without_nan() {
    let y = fwd(sigmoid, &EXTREMES);
    assert!(y.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{y:?}");
    assert_eq!(y[0], 0.0);
    assert_eq!(y[7], 1.0);
    assert_eq!(fwd(sigmoid, &[0.0])[0], 0.5);
    // The negative tail keeps its relative precision: sigmoid(-80) ~ e^-80 ~ 1.8e-35.
    let t = fwd(sigmoid, &[-80.0])[0] as f64;
    assert!((t / (-80.0f64).exp() - 1.0).abs() < 1e-5, "{t}");
}

#[test]
fn softplus_is_finite_and_exact_at_the_extremes() {
    let y = fwd(softplus, &EXTREMES);
    assert!(y.iter().all(|v| v.is_finite() && *v >= 0.0), "{y:?}");
    assert_eq!(y[7], 1e4);
    assert_eq!(y[6], 1000.0);
    assert_eq!(y[0], 0.0);
    // ln(1 + e^-20) ~ 2.06e-9: the tail stays accurate instead of rounding to 0.
    let t = fwd(softplus, &[-20.0])[0] as f64;
    assert!((t / (-20.0f64).exp() - 1.0).abs() < 1e-5, "{t}");
    assert_eq!(fwd(softplus, &[0.0])[0], std::f32::consts::LN_2);
}

#[test]
fn tanh_saturates_without_nan() {
    let y = fwd(tanh, &EXTREMES);
    assert_eq!(y, vec![-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]);
}

#[test]
fn stable_backward_kernels_are_finite_at_the_extremes() {
    let n = EXTREMES.len();
    let dy = vec![1.0; n];
    let mut dx = vec![0.0; n];
    softplus_backward(&EXTREMES, &dy, &mut dx);
    assert_eq!(dx[0], 0.0);
    assert_eq!(dx[n - 1], 1.0);
    assert!(dx.iter().all(|v| v.is_finite()));

    let y = fwd(sigmoid, &EXTREMES);
    let mut dx = vec![0.0; n];
    sigmoid_backward(&y, &dy, &mut dx);
    assert!(dx.iter().all(|v| v.is_finite() && *v >= 0.0), "{dx:?}");
    assert_eq!((dx[0], dx[n - 1]), (0.0, 0.0));

    let y = fwd(tanh, &EXTREMES);
    let mut dx = vec![0.0; n];
    tanh_backward(&y, &dy, &mut dx);
    assert!(dx.iter().all(|v| *v == 0.0), "{dx:?}");
}

// ----- backward vs naive -------------------------------------------------------------

#[test]
fn neg_backward_matches_naive() {
    check_backward_exact(|_, dy, dx| neg_backward(dy, dx), |_, g| -g, false);
}

#[test]
fn exp_backward_matches_naive() {
    check_backward_exact(exp_backward, |y, g| g * y, false);
}

#[test]
fn log_backward_matches_naive() {
    check_backward_exact(log_backward, |x, g| g / x, true);
}

#[test]
fn sqrt_backward_matches_naive() {
    check_backward_exact(sqrt_backward, |y, g| g * 0.5 / y, true);
}

#[test]
fn square_backward_matches_naive() {
    check_backward_exact(square_backward, |x, g| 2.0 * x * g, false);
}

#[test]
fn relu_backward_matches_naive() {
    check_backward_exact(relu_backward, |x, g| if x > 0.0 { g } else { 0.0 }, false);
}

#[test]
fn sigmoid_backward_matches_naive() {
    check_backward_exact(sigmoid_backward, |y, g| g * y * (1.0 - y), false);
}

#[test]
fn tanh_backward_matches_naive() {
    check_backward_exact(tanh_backward, |y, g| g * (1.0 - y * y), false);
}

#[test]
fn softplus_backward_matches_textbook_formula_in_f64() {
    for (s, &n) in LENS.iter().enumerate() {
        let x = normal(n, 0.0, 4.0, s as u64);
        let dy = normal(n, 0.0, 1.0, 40 + s as u64);
        let want: Vec<f64> =
            x.iter().zip(&dy).map(|(&x, &g)| 0.5 + g as f64 / (1.0 + (-(x as f64)).exp())).collect();
        let mut got = vec![0.5; n];
        with_mode(Mode::Parallel, || softplus_backward(&x, &dy, &mut got));
        assert_close(&got, &want, 1e-6, "softplus_backward");
    }
}

#[test]
fn powf_backward_matches_naive() {
    check_backward_exact(|x, dy, dx| powf_backward(x, 2.5, dy, dx), |x, g| g * 2.5 * x.powf(1.5), true);
}

#[test]
fn relu_backward_is_zero_at_zero() {
    let mut dx = vec![1.0; 3];
    relu_backward(&[0.0, -0.0, 1e-30], &[5.0, 5.0, 5.0], &mut dx);
    assert_eq!(dx, vec![1.0, 1.0, 6.0]);
}

#[test]
fn powf_backward_with_zero_exponent_adds_nothing() {
    let mut dx = vec![0.5; 2];
    powf_backward(&[0.0, 3.0], 0.0, &[1.0, 1.0], &mut dx);
    assert_eq!(dx, vec![0.5, 0.5]);
}

// ----- backward vs finite differences ------------------------------------------------

#[test]
fn exp_backward_matches_finite_differences() {
    check_finite_differences(exp, |_, y, dy, dx| exp_backward(y, dy, dx), &ANYWHERE);
}

#[test]
fn neg_backward_matches_finite_differences() {
    check_finite_differences(neg, |_, _, dy, dx| neg_backward(dy, dx), &ANYWHERE);
}

#[test]
fn log_backward_matches_finite_differences() {
    check_finite_differences(log, |x, _, dy, dx| log_backward(x, dy, dx), &POSITIVE);
}

#[test]
fn sqrt_backward_matches_finite_differences() {
    check_finite_differences(sqrt, |_, y, dy, dx| sqrt_backward(y, dy, dx), &POSITIVE);
}

#[test]
fn square_backward_matches_finite_differences() {
    check_finite_differences(square, |x, _, dy, dx| square_backward(x, dy, dx), &ANYWHERE);
}

#[test]
fn relu_backward_matches_finite_differences() {
    // Points are at least 0.05 from the kink, well outside the step h <= |x| / 128.
    check_finite_differences(relu, |x, _, dy, dx| relu_backward(x, dy, dx), &ANYWHERE);
}

#[test]
fn sigmoid_backward_matches_finite_differences() {
    check_finite_differences(sigmoid, |_, y, dy, dx| sigmoid_backward(y, dy, dx), &ANYWHERE);
    check_finite_differences(sigmoid, |_, y, dy, dx| sigmoid_backward(y, dy, dx), &[-12.0, 9.0]);
}

#[test]
fn tanh_backward_matches_finite_differences() {
    check_finite_differences(tanh, |_, y, dy, dx| tanh_backward(y, dy, dx), &ANYWHERE);
}

#[test]
fn softplus_backward_matches_finite_differences() {
    check_finite_differences(softplus, |x, _, dy, dx| softplus_backward(x, dy, dx), &ANYWHERE);
    check_finite_differences(softplus, |x, _, dy, dx| softplus_backward(x, dy, dx), &[-15.0, 15.0]);
}

#[test]
fn powf_backward_matches_finite_differences() {
    for p in [-1.5f32, 0.5, 2.0, 3.25] {
        check_finite_differences(
            |x, out| powf(x, p, out),
            |x, _, dy, dx| powf_backward(x, p, dy, dx),
            &POSITIVE,
        );
    }
}

#[test]
fn scalar_op_gradients_match_finite_differences() {
    // add_scalar's gradient is add_assign, mul_scalar's is axpy with the scalar.
    check_finite_differences(|x, o| add_scalar(x, 4.5, o), |_, _, dy, dx| add_assign(dy, dx), &ANYWHERE);
    check_finite_differences(|x, o| mul_scalar(x, -2.5, o), |_, _, dy, dx| axpy(-2.5, dy, dx), &ANYWHERE);
}

#[test]
fn issue_20_backwards_match_finite_differences() {
    let fd = |f: Forward, b: Backward, points: &[f32]| {
        check_finite_differences(f, |x, _, dy, dx| b(x, dy, dx), points);
    };
    fd(gelu, gelu_backward, &ANYWHERE);
    fd(gelu, gelu_backward, &[-6.0, -4.5, 5.0]);
    fd(gelu_tanh, gelu_tanh_backward, &ANYWHERE);
    fd(silu, silu_backward, &ANYWHERE);
    fd(silu, silu_backward, &[-30.0, 25.0]);
    fd(abs, abs_backward, &ANYWHERE);
    fd(sin, sin_backward, &ANYWHERE);
    fd(cos, cos_backward, &ANYWHERE);
    check_finite_differences(rsqrt, |_, y, dy, dx| rsqrt_backward(y, dy, dx), &POSITIVE);
    check_finite_differences(recip, |_, y, dy, dx| recip_backward(y, dy, dx), &POSITIVE);
    check_finite_differences(
        |x, o| clamp(x, -1.0, 1.5, o),
        |x, _, dy, dx| clamp_backward(x, -1.0, 1.5, dy, dx),
        &ANYWHERE,
    );
    check_finite_differences(
        |x, o| leaky_relu(x, 0.2, o),
        |x, _, dy, dx| leaky_relu_backward(x, 0.2, dy, dx),
        &ANYWHERE,
    );
    check_finite_differences(|x, o| elu(x, 0.7, o), |x, _, dy, dx| elu_backward(x, 0.7, dy, dx), &ANYWHERE);
}

#[test]
fn gelu_keeps_its_negative_tail() {
    // Its accuracy against libm's erfc is tested in kernels::erf.
    // Far in the negative tail GELU is tiny but not 0 (f32's 1 + erf would round it to 0).
    let y = fwd(gelu, &[-5.720_259_7]);
    assert!((y[0] as f64 + 3.042_073_5e-8).abs() < 1e-13, "{y:?}");
}

#[test]
fn issue_20_kernels_are_bit_identical_serial_and_parallel() {
    let n = 3 * CHUNK + 17;
    let x = normal(n, 0.0, 3.0, 7);
    let xp = positive(n, 8);
    let dy = normal(n, 0.0, 1.0, 9);
    let dx0 = normal(n, 0.0, 1.0, 10);
    let forwards: [(&str, Forward, &[f32]); 8] = [
        ("gelu", gelu, &x),
        ("gelu_tanh", gelu_tanh, &x),
        ("silu", silu, &x),
        ("abs", abs, &x),
        ("sin", sin, &x),
        ("cos", cos, &x),
        ("rsqrt", rsqrt, &xp),
        ("recip", recip, &x),
    ];
    for (name, k, input) in forwards {
        assert_par_eq_serial_bits(name, || fwd(k, input));
    }
    let backwards: [(&str, Backward, &[f32]); 11] = [
        ("gelu_backward", gelu_backward, &x),
        ("gelu_tanh_backward", gelu_tanh_backward, &x),
        ("silu_backward", silu_backward, &x),
        ("abs_backward", abs_backward, &x),
        ("sin_backward", sin_backward, &x),
        ("cos_backward", cos_backward, &x),
        ("rsqrt_backward", rsqrt_backward, &xp),
        ("recip_backward", recip_backward, &x),
        ("clamp_backward", |x, dy, dx| clamp_backward(x, -1.0, 1.0, dy, dx), &x),
        ("leaky_relu_backward", |x, dy, dx| leaky_relu_backward(x, 0.1, dy, dx), &x),
        ("elu_backward", |x, dy, dx| elu_backward(x, 0.7, dy, dx), &x),
    ];
    for (name, k, a) in backwards {
        assert_par_eq_serial_bits(name, || {
            let mut dx = dx0.clone();
            k(a, &dy, &mut dx);
            dx
        });
    }
    assert_par_eq_serial_bits("clamp", || fwd(|x, o| clamp(x, -1.0, 1.0, o), &x));
    assert_par_eq_serial_bits("leaky_relu", || fwd(|x, o| leaky_relu(x, 0.1, o), &x));
    assert_par_eq_serial_bits("elu", || fwd(|x, o| elu(x, 0.7, o), &x));
}

#[test]
fn clamp_keeps_nan_and_saturates() {
    let y = fwd(|x, o| clamp(x, -1.0, 2.0, o), &[f32::NAN, -5.0, 5.0, 0.5]);
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[-1.0, 2.0, 0.5]);
}

#[test]
fn select_and_its_backward_match_naive_across_chunks() {
    let n = 2 * CHUNK + 5;
    let (a, b, dy) = (normal(n, 0.0, 1.0, 1), normal(n, 0.0, 1.0, 2), normal(n, 0.0, 1.0, 3));
    let mask: Vec<bool> = normal(n, 0.0, 1.0, 4).iter().map(|v| *v > 0.0).collect();
    let got = with_mode(Mode::Parallel, || fwd(|_, o| select(&mask, &a, &b, o), &a));
    let want: Vec<f32> = (0..n).map(|i| if mask[i] { a[i] } else { b[i] }).collect();
    assert_bits_eq(&got, &want, "select");
    for when in [true, false] {
        let mut dx = vec![0.5; n];
        with_mode(Mode::Parallel, || select_backward(&mask, when, &dy, &mut dx));
        let want: Vec<f32> = (0..n).map(|i| if mask[i] == when { 0.5 + dy[i] } else { 0.5 }).collect();
        assert_bits_eq(&dx, &want, "select_backward");
    }
}

#[test]
#[should_panic(expected = "select: mask has 2 elements, a 3, b 3, out 3")]
fn select_length_mismatch_panics() {
    select(&[true; 2], &[0.0; 3], &[0.0; 3], &mut [0.0; 3]);
}

// ----- in place ----------------------------------------------------------------------

#[test]
fn in_place_helpers_match_naive() {
    for (s, &n) in LENS.iter().enumerate() {
        let x = normal(n, 0.0, 1.0, s as u64);
        let y0 = normal(n, 0.0, 1.0, 100 + s as u64);
        with_mode(Mode::Parallel, || {
            let mut y = y0.clone();
            axpy(-0.3, &x, &mut y);
            let want: Vec<f32> = y0.iter().zip(&x).map(|(y, x)| y + -0.3 * x).collect();
            assert_bits_eq(&y, &want, "axpy");

            let mut y = y0.clone();
            add_assign(&x, &mut y);
            let want: Vec<f32> = y0.iter().zip(&x).map(|(y, x)| y + x).collect();
            assert_bits_eq(&y, &want, "add_assign");

            let mut y = y0.clone();
            scale_in_place(&mut y, 0.9);
            let want: Vec<f32> = y0.iter().map(|y| y * 0.9).collect();
            assert_bits_eq(&y, &want, "scale_in_place");
        });
    }
}

#[test]
fn empty_slices_are_fine() {
    let mut out: Vec<f32> = vec![];
    sigmoid(&[], &mut out);
    axpy(2.0, &[], &mut out);
    relu_backward(&[], &[], &mut out);
    assert!(out.is_empty());
}

// ----- shape errors ------------------------------------------------------------------

#[test]
#[should_panic(expected = "relu: input has 3 elements, output 2")]
fn forward_length_mismatch_panics() {
    relu(&[1.0, 2.0, 3.0], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "sigmoid_backward: y has 2 elements, dy 3, dx 2")]
fn backward_length_mismatch_panics() {
    sigmoid_backward(&[0.5; 2], &[1.0; 3], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "axpy: x has 1 elements, y 2")]
fn axpy_length_mismatch_panics() {
    axpy(1.0, &[1.0], &mut [0.0; 2]);
}

// ----- parallel == serial ------------------------------------------------------------

#[test]
fn every_kernel_is_bit_identical_serial_and_parallel() {
    let n = 3 * CHUNK + 17;
    let x = normal(n, 0.0, 3.0, 7);
    let xp = positive(n, 8);
    let dy = normal(n, 0.0, 1.0, 9);
    let dx0 = normal(n, 0.0, 1.0, 10);
    let forwards: [(&str, Forward, &[f32]); 9] = [
        ("neg", neg, &x),
        ("exp", exp, &x),
        ("log", log, &xp),
        ("sqrt", sqrt, &xp),
        ("square", square, &x),
        ("relu", relu, &x),
        ("sigmoid", sigmoid, &x),
        ("tanh", tanh, &x),
        ("softplus", softplus, &x),
    ];
    for (name, k, input) in forwards {
        assert_par_eq_serial_bits(name, || fwd(k, input));
    }
    assert_par_eq_serial_bits("add_scalar", || fwd(|x, o| add_scalar(x, 0.1, o), &x));
    assert_par_eq_serial_bits("mul_scalar", || fwd(|x, o| mul_scalar(x, 0.1, o), &x));
    assert_par_eq_serial_bits("powf", || fwd(|x, o| powf(x, 0.3, o), &xp));

    let backwards: [(&str, Backward, &[f32]); 10] = [
        ("neg_backward", |_, dy, dx| neg_backward(dy, dx), &x),
        ("exp_backward", exp_backward, &x),
        ("log_backward", log_backward, &xp),
        ("sqrt_backward", sqrt_backward, &xp),
        ("square_backward", square_backward, &x),
        ("relu_backward", relu_backward, &x),
        ("sigmoid_backward", sigmoid_backward, &x),
        ("tanh_backward", tanh_backward, &x),
        ("softplus_backward", softplus_backward, &x),
        ("powf_backward", |x, dy, dx| powf_backward(x, 1.3, dy, dx), &xp),
    ];
    for (name, k, a) in backwards {
        assert_par_eq_serial_bits(name, || {
            let mut dx = dx0.clone();
            k(a, &dy, &mut dx);
            dx
        });
    }
    assert_par_eq_serial_bits("axpy", || {
        let mut y = dx0.clone();
        axpy(0.7, &x, &mut y);
        y
    });
    assert_par_eq_serial_bits("add_assign", || {
        let mut y = dx0.clone();
        add_assign(&x, &mut y);
        y
    });
    assert_par_eq_serial_bits("scale_in_place", || {
        let mut y = dx0.clone();
        scale_in_place(&mut y, 0.7);
        y
    });
}
