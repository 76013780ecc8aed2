//! Every optimizer, in several settings, follows `torch.optim`'s trajectory on two problems
//! to within 1e-4 at every step and element:
//!
//! - Rosenbrock `f(x, y) = (1 - x)^2 + 100 (y - x^2)^2` from (-1.5, 2.0), 100 steps;
//! - a 5-7-3 tanh MLP with softmax cross-entropy on fixed data, 20 steps.
//!
//! The trajectories come from `tests/fixtures/gen_optim.py` (PyTorch, float32, single-tensor
//! code path); this test builds each optimizer with [`adamant_optim::build`] from the same
//! option names, computes the gradients with adamant's autodiff, and compares. The fixture also
//! records how far float32 and float64 runs of the same problem part (`f64_drift`, at most a few
//! 1e-6 for every setting), so 1e-4 is loose against rounding yet tight against any formula
//! difference.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::{build, OptimizerOptions};
use adamant_tensor::Tensor;
use common::{floats, options_from_json, read_fixture, rosenbrock_grads, shape, Report, Worst, TORCH_OPTIM};
use serde_json::Value;

/// The largest |ours - torch| allowed at any step and element.
const TOLERANCE: f64 = 1e-4;

fn fixture() -> &'static Value {
    static FIXTURE_JSON: OnceLock<Value> = OnceLock::new();
    FIXTURE_JSON.get_or_init(|| read_fixture("optim_torch.json"))
}

fn settings() -> &'static [Value] {
    fixture()["settings"].as_array().expect("settings array")
}

/// The setting's options, with the problem's learning rate override if it has one.
fn options(setting: &Value, problem: &Value) -> OptimizerOptions {
    let mut o = options_from_json(&setting["options"]);
    if let Some(lr) = problem.get("lr") {
        o.lr = Some(lr.as_f64().expect("lr") as f32);
    }
    o
}

fn run_rosenbrock(setting: &Value) -> Worst {
    let problem = &setting["rosenbrock"];
    let expected = problem["trajectory"].as_array().expect("trajectory");
    let start = floats(&fixture()["rosenbrock"]["start"]);
    let mut p = Param::new("p", Tensor::from_vec(start, &[2]));
    let mut opt =
        build(setting["optimizer"].as_str().unwrap(), &options(setting, problem)).expect("valid options");
    let mut worst = Worst::default();
    worst.record(p.value().data(), &floats(&expected[0]), 0, "p");
    for (step, row) in expected.iter().enumerate().skip(1) {
        let grads = rosenbrock_grads(&p);
        opt.step(&mut [&mut p], &grads);
        worst.record(p.value().data(), &floats(row), step, "p");
    }
    worst
}

/// The fixture's MLP: parameters named as torch names them (`0.weight`, ...), data, labels.
struct Mlp {
    params: Vec<Param>,
    x: Tensor,
    labels: Vec<usize>,
}

fn mlp() -> Mlp {
    let m = &fixture()["mlp"];
    let params = m["init"]
        .as_array()
        .expect("init")
        .iter()
        .map(|p| {
            Param::new(p["name"].as_str().unwrap(), Tensor::from_vec(floats(&p["data"]), &shape(&p["shape"])))
        })
        .collect();
    let x = Tensor::from_vec(floats(&m["x"]["data"]), &shape(&m["x"]["shape"]));
    let labels = m["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
    Mlp { params, x, labels }
}

/// Mean cross-entropy of `Linear -> tanh -> Linear` (torch's `F.linear` is `x W^T + b`).
fn mlp_grads(params: &[Param], x: &Tensor, labels: &[usize]) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let [w0, b0, w1, b1] = params else { panic!("the MLP has four parameters") };
    let h = (tape.constant(x.clone()).matmul_nt(tape.param(w0)) + tape.param(b0)).tanh();
    let logits = h.matmul_nt(tape.param(w1)) + tape.param(b1);
    logits.cross_entropy(labels).backward()
}

fn run_mlp(setting: &Value) -> Worst {
    let problem = &setting["mlp"];
    let Mlp { mut params, x, labels } = mlp();
    let mut opt =
        build(setting["optimizer"].as_str().unwrap(), &options(setting, problem)).expect("valid options");
    let mut worst = Worst::default();
    for (step, expected) in problem["trajectory"].as_array().expect("trajectory").iter().enumerate() {
        let grads = mlp_grads(&params, &x, &labels);
        let mut refs: Vec<&mut Param> = params.iter_mut().collect();
        opt.step(&mut refs, &grads);
        for (p, e) in params.iter().zip(expected.as_array().expect("parameters of a step")) {
            worst.record(p.value().data(), &floats(e), step + 1, p.name());
        }
    }
    worst
}

/// Replays every setting of `optimizer` on both problems and fails, listing every setting's
/// worst difference, if any exceeds the tolerance.
fn check(optimizer: &str) {
    let mut report = Report::default();
    for setting in settings().iter().filter(|s| s["optimizer"] == optimizer) {
        let label = setting["label"].as_str().unwrap();
        for (problem, worst) in [("rosenbrock", run_rosenbrock(setting)), ("mlp", run_mlp(setting))] {
            report.add(&format!("{optimizer}/{label}/{problem}"), &worst, TOLERANCE, "");
        }
    }
    report.finish(optimizer, TOLERANCE);
}

#[test]
fn fixture_covers_every_optimizer_with_three_settings() {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in settings() {
        let name = s["optimizer"].as_str().expect("optimizer name");
        assert!(TORCH_OPTIM.contains(&name), "fixture optimizer '{name}' is not one of torch.optim's");
        *counts.entry(name).or_default() += 1;
        // Every setting must be buildable: an option adamant lacks would be a coverage hole.
        for problem in ["rosenbrock", "mlp"] {
            build(name, &options(s, &s[problem])).unwrap_or_else(|e| panic!("{name}/{}: {e}", s["label"]));
        }
        assert_eq!(
            s["rosenbrock"]["trajectory"].as_array().unwrap().len(),
            101,
            "{name}: 100 steps plus the start"
        );
        assert_eq!(s["mlp"]["trajectory"].as_array().unwrap().len(), 20, "{name}: 20 MLP steps");
    }
    for name in TORCH_OPTIM {
        let n = counts.get(name).copied().unwrap_or(0);
        assert!(n >= 3, "the fixture has {n} settings of {name}, want at least 3");
    }
}

#[test]
fn sgd() {
    check("sgd");
}

#[test]
fn adam() {
    check("adam");
}

#[test]
fn adamw() {
    check("adamw");
}

#[test]
fn adamax() {
    check("adamax");
}

#[test]
fn nadam() {
    check("nadam");
}

#[test]
fn radam() {
    check("radam");
}

#[test]
fn adagrad() {
    check("adagrad");
}

#[test]
fn rmsprop() {
    check("rmsprop");
}

#[test]
fn adadelta() {
    check("adadelta");
}
