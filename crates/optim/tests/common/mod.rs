//! What the trajectory tests share: reading a fixture, the fixture's options as
//! [`OptimizerOptions`], the gradient of Rosenbrock's function, and the bookkeeping of the
//! largest difference from a reference trajectory.

#![allow(dead_code)] // each test file uses its own part

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::options::{OptionKind, OptionValue, OPTIONS};
use adamant_optim::OptimizerOptions;
use adamant_tensor::Tensor;
use serde_json::Value;

/// The optimizers of `torch.optim` that `optim_torch.json` pins (float32 torch against
/// float32 adamant); the successors (Lion, LAMB, ...) are pinned by
/// `optim_successors.json` to float64 runs of their reference implementations.
pub const TORCH_OPTIM: [&str; 9] =
    ["sgd", "adam", "adamw", "adamax", "nadam", "radam", "adagrad", "rmsprop", "adadelta"];

/// The parsed JSON of `tests/fixtures/<name>` at the repository root.
pub fn read_fixture(name: &str) -> Value {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON array of numbers as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array of numbers").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

/// A JSON array of dimensions.
pub fn shape(v: &Value) -> Vec<usize> {
    v.as_array().expect("shape array").iter().map(|d| d.as_u64().expect("dimension") as usize).collect()
}

/// A fixture's options object, keyed by the names of the options table, as
/// [`OptimizerOptions`]. Each value is read according to its option's kind; an unknown key
/// fails the test rather than being ignored, so a setting can never silently run with defaults.
pub fn options_from_json(options: &Value) -> OptimizerOptions {
    let mut o = OptimizerOptions::default();
    for (key, v) in options.as_object().expect("options object") {
        let spec = OPTIONS
            .iter()
            .find(|s| s.name == key)
            .unwrap_or_else(|| panic!("fixture option '{key}' is not in the options table"));
        let number =
            |v: &Value| v.as_f64().unwrap_or_else(|| panic!("{key}: expected a number, got {v}")) as f32;
        let value = match spec.kind {
            OptionKind::Number => OptionValue::Number(number(v)),
            OptionKind::Pair => {
                let pair = floats(v);
                assert_eq!(pair.len(), 2, "{key}: expected two numbers, got {v}");
                OptionValue::Pair(pair[0], pair[1])
            }
            OptionKind::Switch => match v.as_bool() {
                Some(true) => OptionValue::Switch,
                Some(false) => continue,
                None => panic!("{key}: expected a boolean, got {v}"),
            },
            OptionKind::Count => OptionValue::Count(
                v.as_u64().unwrap_or_else(|| panic!("{key}: expected a count, got {v}")) as u32,
            ),
            OptionKind::Choice => {
                let word = v.as_str().unwrap_or_else(|| panic!("{key}: expected a word, got {v}"));
                let choice = spec.choices.iter().find(|c| **c == word);
                OptionValue::Choice(
                    choice.unwrap_or_else(|| panic!("{key}: '{word}' is not one of its choices")),
                )
            }
        };
        o.set(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    o
}

/// The largest difference of a run from its reference, and where it is.
#[derive(Clone, Debug, Default)]
pub struct Worst {
    /// The largest difference seen (absolute, or relative to the reference's magnitude when
    /// recorded with [`Worst::record_scaled`]).
    pub diff: f64,
    /// Step after which it occurred (0 = initial value).
    pub step: usize,
    /// Parameter name and flat element index.
    pub at: String,
}

impl Worst {
    /// Records `|ours - reference|` for every element.
    pub fn record(&mut self, ours: &[f32], reference: &[f32], step: usize, name: &str) {
        assert_eq!(ours.len(), reference.len(), "{name}: element count");
        for (i, (&o, &t)) in ours.iter().zip(reference).enumerate() {
            self.note((o as f64 - t as f64).abs(), step, || format!("{name}[{i}]"));
        }
    }

    /// Records `|ours - reference| / max(1, |reference|)` for every element: absolute near
    /// zero, relative for large values.
    pub fn record_scaled(&mut self, ours: &[f32], reference: &[f64], step: usize, name: &str) {
        assert_eq!(ours.len(), reference.len(), "{name}: element count");
        for (i, (&o, &r)) in ours.iter().zip(reference).enumerate() {
            let d = (o as f64 - r).abs() / r.abs().max(1.0);
            self.note(d, step, || format!("{name}[{i}]"));
        }
    }

    fn note(&mut self, d: f64, step: usize, at: impl FnOnce() -> String) {
        // NaN on either side must fail, so it counts as infinitely far.
        let d = if d.is_nan() { f64::INFINITY } else { d };
        if self.at.is_empty() || d > self.diff {
            *self = Worst { diff: d, step, at: at() };
        }
    }
}

/// The comparisons of one optimizer's settings with their references: one line per setting
/// and problem, the failing ones marked, printed whatever the outcome.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<String>,
    failed: bool,
}

impl Report {
    /// Adds the comparison `what` (`adam/default/rosenbrock`) whose largest difference is
    /// `worst`, with `note` appended to its line.
    pub fn add(&mut self, what: &str, worst: &Worst, tolerance: f64, note: &str) {
        let bad = worst.diff > tolerance;
        self.failed |= bad;
        self.lines.push(format!(
            "{}{what}: max difference {:.3e} (step {}, {}){note}",
            if bad { "FAIL " } else { "" },
            worst.diff,
            worst.step,
            worst.at
        ));
    }

    /// Prints the lines and fails if there are none or any exceeds the tolerance.
    pub fn finish(self, optimizer: &str, tolerance: f64) {
        assert!(!self.lines.is_empty(), "no fixture settings for {optimizer}");
        let report = self.lines.join("\n");
        eprintln!("{report}");
        assert!(
            !self.failed,
            "{optimizer} leaves the reference trajectory by more than {tolerance}:\n{report}"
        );
    }
}

/// Rosenbrock's `f(x, y) = (1 - x)^2 + 100 (y - x^2)^2` of a `[2]` parameter through Var ops:
/// the coordinates are picked out by multiplying with the selector columns (1, 0) and (0, 1),
/// which leaves their gradients exact.
pub fn rosenbrock_grads(p: &Param) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let row = tape.param(p).reshape(&[1, 2]);
    let x = row.matmul(tape.constant(Tensor::from_vec(vec![1.0, 0.0], &[2, 1])));
    let y = row.matmul(tape.constant(Tensor::from_vec(vec![0.0, 1.0], &[2, 1])));
    let loss = (1.0 - x).square() + (y - x.square()).square() * 100.0;
    loss.sum().backward()
}
