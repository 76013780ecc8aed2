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

use std::collections::BTreeMap;
use std::sync::OnceLock;

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::{build, OptimizerOptions, OPTIMIZER_NAMES};
use adamant_tensor::Tensor;
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/optim_torch.json");

/// The largest |ours - torch| allowed at any step and element.
const TOLERANCE: f64 = 1e-4;

fn fixture() -> &'static Value {
    static FIXTURE_JSON: OnceLock<Value> = OnceLock::new();
    FIXTURE_JSON.get_or_init(|| {
        let text = std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("reading {FIXTURE}: {e}"));
        serde_json::from_str(&text).expect("fixture is valid JSON")
    })
}

fn settings() -> &'static [Value] {
    fixture()["settings"].as_array().expect("settings array")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array of numbers").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array().expect("shape array").iter().map(|d| d.as_u64().expect("dimension") as usize).collect()
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, got {v}")) as f32
}

fn bool_of(v: &Value) -> bool {
    v.as_bool().unwrap_or_else(|| panic!("expected a boolean, got {v}"))
}

/// The fixture's options (named like `OptimizerOptions`' fields), with the problem's learning
/// rate override if it has one. An unknown key fails the test rather than being ignored, so a
/// setting can never silently run with defaults.
fn options(setting: &Value, problem: &Value) -> OptimizerOptions {
    let mut o = OptimizerOptions::default();
    for (key, v) in setting["options"].as_object().expect("options object") {
        match key.as_str() {
            "lr" => o.lr = Some(f32_of(v)),
            "betas" => {
                let b = floats(v);
                assert_eq!(b.len(), 2, "betas {v}");
                o.betas = Some((b[0], b[1]));
            }
            "eps" => o.eps = Some(f32_of(v)),
            "weight_decay" => o.weight_decay = Some(f32_of(v)),
            "amsgrad" => o.amsgrad = bool_of(v),
            "momentum" => o.momentum = Some(f32_of(v)),
            "dampening" => o.dampening = Some(f32_of(v)),
            "nesterov" => o.nesterov = bool_of(v),
            "alpha" => o.alpha = Some(f32_of(v)),
            "centered" => o.centered = bool_of(v),
            "rho" => o.rho = Some(f32_of(v)),
            "lr_decay" => o.lr_decay = Some(f32_of(v)),
            "initial_accumulator_value" => o.initial_accumulator_value = Some(f32_of(v)),
            "momentum_decay" => o.momentum_decay = Some(f32_of(v)),
            other => panic!("fixture option '{other}' is not an OptimizerOptions field"),
        }
    }
    if let Some(lr) = problem.get("lr") {
        o.lr = Some(f32_of(lr));
    }
    o
}

/// Where the largest difference of a run is.
#[derive(Clone, Debug, Default)]
struct Worst {
    diff: f64,
    /// Step after which it occurred (0 = initial value).
    step: usize,
    /// Parameter name and flat element index.
    at: String,
}

impl Worst {
    fn record(&mut self, ours: &[f32], torch: &[f32], step: usize, name: &str) {
        assert_eq!(ours.len(), torch.len(), "{name}: element count");
        for (i, (&o, &t)) in ours.iter().zip(torch).enumerate() {
            let d = (o as f64 - t as f64).abs();
            // NaN on either side must fail, so it counts as infinitely far.
            let d = if d.is_nan() { f64::INFINITY } else { d };
            if self.at.is_empty() || d > self.diff {
                *self = Worst { diff: d, step, at: format!("{name}[{i}]") };
            }
        }
    }
}

/// Rosenbrock of a `[2]` parameter through Var ops: the coordinates are picked out by
/// multiplying with the selector columns (1, 0) and (0, 1), which leaves their gradients exact.
fn rosenbrock_grads(p: &Param) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let row = tape.param(p).reshape(&[1, 2]);
    let x = row.matmul(tape.constant(Tensor::from_vec(vec![1.0, 0.0], &[2, 1])));
    let y = row.matmul(tape.constant(Tensor::from_vec(vec![0.0, 1.0], &[2, 1])));
    let loss = (1.0 - x).square() + (y - x.square()).square() * 100.0;
    loss.sum().backward()
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
    let mut report = Vec::new();
    let mut failed = false;
    let mut overall = 0.0f64;
    for setting in settings().iter().filter(|s| s["optimizer"] == optimizer) {
        let label = setting["label"].as_str().unwrap();
        for (problem, worst) in [("rosenbrock", run_rosenbrock(setting)), ("mlp", run_mlp(setting))] {
            let bad = worst.diff.is_nan() || worst.diff > TOLERANCE;
            failed |= bad;
            overall = overall.max(worst.diff);
            report.push(format!(
                "{}{optimizer}/{label}/{problem}: max |ours - torch| = {:.3e} (step {}, {})",
                if bad { "FAIL " } else { "" },
                worst.diff,
                worst.step,
                worst.at
            ));
        }
    }
    assert!(!report.is_empty(), "no fixture settings for {optimizer}");
    let report = report.join("\n");
    eprintln!("{report}\n{optimizer}: worst {overall:.3e}");
    assert!(!failed, "{optimizer} leaves torch's trajectory by more than {TOLERANCE}:\n{report}");
}

#[test]
fn fixture_covers_every_optimizer_with_three_settings() {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in settings() {
        let name = s["optimizer"].as_str().expect("optimizer name");
        assert!(OPTIMIZER_NAMES.contains(&name), "fixture optimizer '{name}' is not one adamant builds");
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
    for name in OPTIMIZER_NAMES {
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
