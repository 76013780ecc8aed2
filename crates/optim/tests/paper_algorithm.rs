//! `Adam` is Kingma & Ba's Algorithm 1: against a direct float64 transcription of the
//! algorithm on a 2-d quadratic for 50 steps, with and without the bias-correction lines,
//! the float32 optimizer stays within 1e-5 relative at every step.
//!
//! Algorithm 1 (g_t the gradient at theta_{t-1}):
//!
//! ```text
//! m_t     <- beta1 m_{t-1} + (1 - beta1) g_t
//! v_t     <- beta2 v_{t-1} + (1 - beta2) g_t^2
//! m_hat_t <- m_t / (1 - beta1^t)                       (bias correction)
//! v_hat_t <- v_t / (1 - beta2^t)                       (bias correction)
//! theta_t <- theta_{t-1} - alpha m_hat_t / (sqrt(v_hat_t) + epsilon)
//! ```
//!
//! Without bias correction the last line reads `alpha m_t / (sqrt(v_t) + epsilon)`.

use adamant_autodiff::{Mode, Param, Tape};
use adamant_optim::{build, Adam, AdamConfig, Optimizer, OptimizerOptions};
use adamant_tensor::Tensor;

const STEPS: usize = 50;
const TOLERANCE: f64 = 1e-5;

/// f(theta) = sum_i a_i (theta_i - c_i)^2 / 2, with curvatures a decade apart.
const A: [f64; 2] = [1.0, 10.0];
const C: [f64; 2] = [1.5, -2.0];
/// Far enough from 0 that neither coordinate crosses it (a relative error needs |theta| > 0).
const START: [f64; 2] = [3.0, -0.5];

fn gradient_f64(theta: &[f64; 2]) -> [f64; 2] {
    [A[0] * (theta[0] - C[0]), A[1] * (theta[1] - C[1])]
}

/// Algorithm 1 in float64, exactly as printed; row 0 is the start.
fn paper_adam(alpha: f64, beta1: f64, beta2: f64, eps: f64, bias_correction: bool) -> Vec<[f64; 2]> {
    let mut theta = START;
    let (mut m, mut v) = ([0.0; 2], [0.0; 2]);
    let mut rows = vec![theta];
    for t in 1..=STEPS {
        let g = gradient_f64(&theta);
        for i in 0..2 {
            m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
            let (m_hat, v_hat) = if bias_correction {
                (m[i] / (1.0 - beta1.powi(t as i32)), v[i] / (1.0 - beta2.powi(t as i32)))
            } else {
                (m[i], v[i])
            };
            theta[i] -= alpha * m_hat / (v_hat.sqrt() + eps);
        }
        rows.push(theta);
    }
    rows
}

/// The optimizer's float32 trajectory, gradients from adamant's autodiff.
fn ours(opt: &mut dyn Optimizer) -> Vec<[f64; 2]> {
    let start: Vec<f32> = START.iter().map(|&x| x as f32).collect();
    let mut p = Param::new("theta", Tensor::from_vec(start, &[2]));
    let half_a = Tensor::from_vec(A.iter().map(|&a| (a / 2.0) as f32).collect(), &[2]);
    let c = Tensor::from_vec(C.iter().map(|&c| c as f32).collect(), &[2]);
    let row = |p: &Param| [p.value().data()[0] as f64, p.value().data()[1] as f64];
    let mut rows = vec![row(&p)];
    for _ in 0..STEPS {
        let tape = Tape::new(Mode::Train, 0);
        let loss =
            ((tape.param(&p) - tape.constant(c.clone())).square() * tape.constant(half_a.clone())).sum();
        let grads = loss.backward();
        drop(tape);
        opt.step(&mut [&mut p], &grads);
        rows.push(row(&p));
    }
    rows
}

/// The largest |ours - paper| / |paper| over all steps and coordinates.
fn max_relative(ours: &[[f64; 2]], paper: &[[f64; 2]]) -> f64 {
    let mut worst = 0.0f64;
    for (o, p) in ours.iter().zip(paper) {
        for i in 0..2 {
            assert!(
                p[i].abs() > 0.1,
                "the reference came near 0 ({}), making the relative error meaningless",
                p[i]
            );
            worst = worst.max(((o[i] - p[i]) / p[i]).abs());
        }
    }
    worst
}

fn max_abs_diff(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    a.iter().zip(b).flat_map(|(u, v)| (0..2).map(move |i| (u[i] - v[i]).abs())).fold(0.0, f64::max)
}

/// Compares `Adam` with `config` to the paper's algorithm (failing beyond the tolerance);
/// returns ours and the paper's trajectories.
fn compare(config: AdamConfig) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
    let paper = paper_adam(
        config.lr as f64,
        config.betas.0 as f64,
        config.betas.1 as f64,
        config.eps as f64,
        config.bias_correction,
    );
    let ours = ours(&mut Adam::new(config));
    let rel = max_relative(&ours, &paper);
    eprintln!("{config:?}: max relative difference {rel:.3e}");
    assert!(rel <= TOLERANCE, "{config:?}: max relative difference {rel:.3e} > {TOLERANCE}");
    (ours, paper)
}

fn config(eps: f32, bias_correction: bool) -> AdamConfig {
    AdamConfig { lr: 0.05, eps, bias_correction, ..AdamConfig::default() }
}

#[test]
fn adam_is_algorithm_1_with_bias_correction() {
    // A large epsilon as well as the default: where epsilon enters (outside the corrected
    // square root) only shows when it is not negligible next to sqrt(v_hat).
    for eps in [1e-8, 0.1] {
        let (ours, _) = compare(config(eps, true));
        assert!(max_abs_diff(&ours[..1], &ours[STEPS..]) > 0.5, "eps {eps}: the run must actually move");
    }
}

#[test]
fn adam_without_bias_correction_is_algorithm_1_without_it() {
    for eps in [1e-8, 0.1] {
        let (ours_plain, _) = compare(config(eps, false));
        // The flag must matter: early steps differ by a factor ~ sqrt(1 - beta2) / (1 - beta1).
        let corrected = paper_adam(0.05, 0.9, 0.999, eps as f64, true);
        let d = max_abs_diff(&ours_plain, &corrected);
        assert!(d > 1e-2, "eps {eps}: bias correction on and off give nearly the same run ({d:.3e})");
    }
}

#[test]
fn no_bias_correction_option_builds_the_same_optimizer() {
    // `--no-bias-correction` through `build` gives the same bits as the config field.
    let options = OptimizerOptions { lr: Some(0.05), no_bias_correction: true, ..Default::default() };
    let built = ours(build("adam", &options).unwrap().as_mut());
    let direct = ours(&mut Adam::new(config(1e-8, false)));
    let same = built
        .iter()
        .zip(&direct)
        .all(|(a, b)| a[0].to_bits() == b[0].to_bits() && a[1].to_bits() == b[1].to_bits());
    assert!(same, "build(\"adam\", no_bias_correction) differs from AdamConfig {{ bias_correction: false }}");
}

#[test]
fn default_adam_config_is_the_papers_recommendation() {
    // alpha = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 (paper, Algorithm 1), with the
    // bias correction on; the comparison then runs with exactly these values.
    let d = AdamConfig::default();
    assert_eq!(
        (d.lr, d.betas, d.eps, d.weight_decay, d.amsgrad, d.bias_correction),
        (1e-3, (0.9, 0.999), 1e-8, 0.0, false, true)
    );
    compare(d);
}
