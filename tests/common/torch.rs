//! Reading the PyTorch fixtures of `tests/fixtures/` and comparing values with them: what
//! every `torch_parity_*.rs` test shares.
//!
//! A fixture file is JSON written by its generator script (`tests/fixtures/gen_*.py`); a
//! tensor in it is `{"shape": [...], "data": [...]}`, and an op case holds `inputs`, the
//! `output`, and the `grads` of `sum(output * weights)` with respect to each input (or of the
//! output itself when the case has no `weights`: the losses, which are scalars already).

use adamant::autodiff::{Mode, Param, Tape, Var};
use adamant::tensor::{Ids, Tensor};
use serde_json::Value;

/// The tolerance `(atol, rtol)` of the fixtures of issue 20 onwards: relative 1e-5 in f32,
/// with a floor for values near zero.
pub const TOL: (f32, f32) = (1e-6, 1e-5);

/// The parsed JSON of `tests/fixtures/<file>`.
pub fn fixture_json(file: &str) -> Value {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

/// The entry of the array `list` whose `"name"` is `name`.
pub fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("an array of named entries")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no fixture entry {name}"))
}

/// A JSON array of non-negative integers.
pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("an array").iter().map(|d| d.as_u64().expect("an integer") as usize).collect()
}

/// A tensor stored as `{"shape": [...], "data": [...]}`; `null` stands for NaN (JSON has no
/// NaN).
pub fn tensor(v: &Value) -> Tensor {
    let data: Vec<f32> =
        v["data"].as_array().expect("data").iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect();
    Tensor::from_vec(data, &usizes(&v["shape"]))
}

/// Integer ids stored as `{"shape": [...], "data": [...]}`.
pub fn ids(v: &Value) -> Ids {
    Ids::from_vec(usizes(&v["data"]), &usizes(&v["shape"]))
}

/// Elementwise `|ours - torch| <= atol + rtol |torch|`, and equal shapes; a NaN of PyTorch's
/// matches only a NaN.
pub fn assert_close(what: &str, ours: &Tensor, torch: &Tensor, (atol, rtol): (f32, f32)) {
    assert_eq!(ours.shape(), torch.shape(), "{what}: shape");
    for (i, (&o, &t)) in ours.data().iter().zip(torch.data()).enumerate() {
        if t.is_nan() {
            assert!(o.is_nan(), "{what}[{i}]: ours {o}, torch NaN");
            continue;
        }
        let tol = atol + rtol * t.abs();
        assert!((o - t).abs() <= tol, "{what}[{i}]: ours {o}, torch {t}, |diff| {} > {tol}", (o - t).abs());
    }
}

/// Runs `op` on the op case's inputs (read as parameters, so that each gets a gradient) and
/// compares the output and every gradient with PyTorch's within `tol`.
pub fn compare_case(case: &Value, tol: (f32, f32), op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    let name = case["name"].as_str().unwrap_or("case");
    let params: Vec<Param> = case["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .enumerate()
        .map(|(i, v)| Param::new(format!("in{i}"), tensor(v)))
        .collect();
    let tape = Tape::new(Mode::Train, 0);
    let vars: Vec<Var> = params.iter().map(|p| tape.param(p)).collect();
    let out = op(&vars, &case["meta"]);
    assert_close(&format!("{name} output"), &out.value(), &tensor(&case["output"]), tol);
    let loss = match case.get("weights") {
        Some(w) => (out * tape.constant(tensor(w))).sum(),
        None => out,
    };
    let grads = loss.backward();
    for (i, (p, g)) in params.iter().zip(case["grads"].as_array().expect("grads")).enumerate() {
        assert_close(
            &format!("{name} grad of input {i}"),
            grads.get(p).expect("a gradient"),
            &tensor(g),
            tol,
        );
    }
}
