//! Adam's successors follow float64 runs of their reference implementations to within 1e-4
//! (relative to the value's magnitude where it exceeds 1), at every step and element, on a
//! vector and on a matrix parameter:
//!
//! - Rosenbrock `f(x, y) = (1 - x)^2 + 100 (y - x^2)^2` from (-1.5, 2.0), a `[2]` parameter;
//! - `0.5 sum((A W - B)^2)` for a `[4, 3]` matrix `W` (`A`, `B` fixed; issue #21 defines them);
//! - `0.5 sum(C (W - T)^2)` for a `[2, 3, 4]` tensor, for the optimizers that treat rank 3 and
//!   more specially (Adafactor factors the last two axes), and the same on its first `[3, 4]`
//!   slice, a wide matrix (Muon transposes tall ones).
//!
//! The trajectories come from `tests/fixtures/gen_optim_successors.py` (float64, each optimizer's
//! reference package or `torch.optim` class, named in the script). This test builds each
//! optimizer with [`adamant_optim::build`] from the same option names, computes the gradients
//! with adamant's autodiff in float32, and compares. The fixture also records how far a float32
//! run of the reference itself strays from its float64 run (`f32_drift`); the test refuses a
//! setting where that comes within a tenth of the tolerance, so 1e-4 stays loose against
//! rounding and tight against any formula difference.

mod common;

use std::sync::OnceLock;

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::{build, OptimizerOptions, OPTIMIZER_NAMES};
use adamant_tensor::Tensor;
use common::{floats, options_from_json, read_fixture, rosenbrock_grads, Report, Worst, TORCH_OPTIM};
use serde_json::Value;

/// The largest `|ours - reference| / max(1, |reference|)` allowed at any step and element.
const TOLERANCE: f64 = 1e-4;

/// The problems a setting may run on, as the fixture names them.
const PROBLEMS: [&str; 4] = ["rosenbrock", "matrix", "tensor3", "wide"];

fn fixture() -> &'static Value {
    static FIXTURE_JSON: OnceLock<Value> = OnceLock::new();
    FIXTURE_JSON.get_or_init(|| read_fixture("optim_successors.json"))
}

fn settings() -> &'static [Value] {
    fixture()["settings"].as_array().expect("settings array")
}

/// A `[rows, cols]` matrix with entries `f(row, col)`, computed in f64 and rounded once, as
/// the generator's float64 tensors are.
fn matrix(rows: usize, cols: usize, f: impl Fn(f64, f64) -> f64) -> Tensor {
    let data = (0..rows * cols).map(|k| f((k / cols) as f64, (k % cols) as f64) as f32).collect();
    Tensor::from_vec(data, &[rows, cols])
}

/// The matrix problem's `W` (the parameter), `A` and `B`, as issue #21 defines them.
fn matrix_problem() -> (Tensor, Tensor, Tensor) {
    let w = matrix(4, 3, |i, j| 0.1 * (3.0 * i + j) - 0.5);
    let a = matrix(5, 4, |r, c| (4.0 * r + c + 1.0).sin());
    let b = matrix(5, 3, |r, c| (3.0 * r + c + 1.0).cos());
    (w, a, b)
}

/// The rank-3 problem's `W` (the parameter), `C` and `T`, as the generator's
/// `tensor3_problem` defines them.
fn tensor3_problem() -> (Tensor, Tensor, Tensor) {
    let make = |f: &dyn Fn(f64, f64, f64) -> f64| {
        let data = (0..24).map(|k| f((k / 12) as f64, (k / 4 % 3) as f64, (k % 4) as f64) as f32).collect();
        Tensor::from_vec(data, &[2, 3, 4])
    };
    let w = make(&|b, i, j| 0.1 * (12.0 * b + 4.0 * i + j) - 1.0);
    let c = make(&|b, i, j| 1.0 + (b + 2.0 * i + j) % 3.0);
    let t = make(&|b, i, j| (12.0 * b + 4.0 * i + j + 1.0).sin());
    (w, c, t)
}

/// The gradient of `0.5 sum(C (W - T)^2)` with respect to `w`.
fn weighted_grads(w: &Param, c: &Tensor, t: &Tensor) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let diff = tape.param(w) - tape.constant(t.clone());
    ((diff.square() * tape.constant(c.clone())).sum() * 0.5).backward()
}

/// The gradient of `0.5 sum((A W - B)^2)` with respect to `w`.
fn matrix_grads(w: &Param, a: &Tensor, b: &Tensor) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let residual = tape.constant(a.clone()).matmul(tape.param(w)) - tape.constant(b.clone());
    (residual.square().sum() * 0.5).backward()
}

/// The setting's options, with the problem's learning rate override if it has one.
fn options(setting: &Value, problem: &Value) -> OptimizerOptions {
    let mut o = options_from_json(&setting["options"]);
    if let Some(lr) = problem.get("lr") {
        o.lr = Some(lr.as_f64().expect("lr") as f32);
    }
    o
}

fn reference_rows(problem: &Value) -> Vec<Vec<f64>> {
    let rows = problem["trajectory"].as_array().expect("trajectory");
    rows.iter()
        .map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("number")).collect())
        .collect()
}

/// Replays `setting` on `problem_name` and returns the worst scaled difference.
fn replay(setting: &Value, problem_name: &str) -> Worst {
    let problem = &setting[problem_name];
    let expected = reference_rows(problem);
    assert_eq!(expected.len(), fixture()["steps"].as_u64().unwrap() as usize + 1, "steps plus the start");
    let (mut p, constants) = match problem_name {
        "rosenbrock" => {
            (Param::new("p", Tensor::from_vec(floats(&fixture()["rosenbrock"]["start"]), &[2])), None)
        }
        "matrix" => {
            let (w, a, b) = matrix_problem();
            (Param::new("w", w), Some((a, b)))
        }
        "tensor3" => {
            let (w, c, t) = tensor3_problem();
            (Param::new("w", w), Some((c, t)))
        }
        "wide" => {
            let first = |t: Tensor| Tensor::from_slice(&t.data()[..12], &[3, 4]);
            let (w, c, t) = tensor3_problem();
            (Param::new("w", first(w)), Some((first(c), first(t))))
        }
        other => panic!("unknown problem '{other}'"),
    };
    let mut opt =
        build(setting["optimizer"].as_str().unwrap(), &options(setting, problem)).expect("valid options");
    let mut worst = Worst::default();
    worst.record_scaled(p.value().data(), &expected[0], 0, p.name());
    for (step, row) in expected.iter().enumerate().skip(1) {
        let grads = match (problem_name, &constants) {
            ("tensor3" | "wide", Some((c, t))) => weighted_grads(&p, c, t),
            (_, Some((a, b))) => matrix_grads(&p, a, b),
            _ => rosenbrock_grads(&p),
        };
        opt.step(&mut [&mut p], &grads);
        worst.record_scaled(p.value().data(), row, step, p.name());
    }
    worst
}

/// Replays every setting of `optimizer` on its problems and fails, listing every setting's
/// worst difference, if any exceeds the tolerance.
fn check(optimizer: &str) {
    let mut report = Report::default();
    for setting in settings().iter().filter(|s| s["optimizer"] == optimizer) {
        let label = setting["label"].as_str().unwrap();
        for problem in PROBLEMS.into_iter().filter(|p| setting.get(*p).is_some()) {
            let drift = setting[problem]["f32_drift"].as_f64().expect("f32_drift");
            assert!(drift < TOLERANCE / 10.0, "{optimizer}/{label}/{problem}: f32 drift {drift:.1e}");
            let note = format!("; the reference's own f32 drift {drift:.1e}");
            report.add(
                &format!("{optimizer}/{label}/{problem}"),
                &replay(setting, problem),
                TOLERANCE,
                &note,
            );
        }
    }
    report.finish(optimizer, TOLERANCE);
}

#[test]
fn every_optimizer_is_pinned_by_one_of_the_two_fixtures() {
    for name in OPTIMIZER_NAMES {
        let here = settings().iter().filter(|s| s["optimizer"] == name).count();
        assert!(
            TORCH_OPTIM.contains(&name) || here >= 2,
            "{name} is neither in optim_torch.json nor in optim_successors.json with two settings"
        );
        for s in settings().iter().filter(|s| s["optimizer"] == name) {
            let steps = fixture()["steps"].as_u64().unwrap();
            assert!(steps >= 25, "at least 25 steps, the fixture has {steps}");
            let problems: Vec<&str> =
                ["rosenbrock", "matrix"].into_iter().filter(|p| s.get(*p).is_some()).collect();
            assert!(
                problems.contains(&"matrix"),
                "{name}/{}: every optimizer runs on the matrix",
                s["label"]
            );
        }
    }
}

/// Adam against torch.optim.Adam in float64: the harness itself (problems, gradients,
/// tolerance) on an optimizer that is already pinned elsewhere.
#[test]
fn adam_harness_check() {
    check("adam");
}

/// Lion against lion-pytorch 0.2.5.
#[test]
fn lion() {
    check("lion");
}

/// LAMB against the paper's bias-corrected Algorithm 2 (written in the generator), and without
/// bias correction against torch_optimizer.Lamb(debias=False).
#[test]
fn lamb() {
    check("lamb");
}

/// AdaBelief against adabelief-pytorch 0.2.1 (no rectification, no AMSGrad).
#[test]
fn adabelief() {
    check("adabelief");
}

/// Adafactor against torch.optim.Adafactor in float64: factored statistics on the matrix and
/// (per matrix of the last two axes) on the rank-3 tensor, the full second moment on the
/// vector; defaults, weight decay with update clipping, and floors eps1/eps2 that bind.
#[test]
fn adafactor() {
    check("adafactor");
}

/// Muon against torch.optim.Muon in float64 (its Newton-Schulz iteration without the cast to
/// bfloat16), through `muon` by name (on a lone matrix, all Muon): Nesterov with decoupled
/// decay, plain momentum with Moonshot's learning-rate scaling, and three iterations with
/// Bernstein's scaling and an eps that binds; on a tall and a wide matrix.
#[test]
fn muon() {
    check("muon");
}
