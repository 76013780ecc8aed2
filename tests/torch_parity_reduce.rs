//! Forward values and gradients of issue 20's reductions along any axis (sum, mean, max, min,
//! logsumexp, var, std, L2 norm), softmax and log_softmax along any axis, cross-entropy of
//! `[..., V]` logits with `ignore_index` and `label_smoothing`, and gather equal PyTorch's on
//! fixed inputs, within |ours - torch| <= 1e-6 + 1e-5 |torch| elementwise; argmax/argmin
//! exactly (ties included: both take the first).
//!
//! The fixtures come from `tests/fixtures/gen_reduce.py` (run with torch installed); this
//! test only reads the committed JSON.

use adamant::autodiff::{CrossEntropy, Mode, Param, Reduction, Tape, Var};
use adamant::tensor::{Ids, Tensor};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reduce_torch.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let json: Value = serde_json::from_str(&text).expect("fixture is valid JSON");
    json["cases"].as_array().expect("cases array").clone()
}

fn case(name: &str) -> Value {
    fixtures().into_iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no fixture case {name}"))
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

/// A tensor of the fixture; `null` stands for NaN (JSON has no NaN).
fn tensor(v: &Value) -> Tensor {
    let data: Vec<f32> =
        v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect();
    Tensor::from_vec(data, &usizes(&v["shape"]))
}

/// Elementwise `|ours - torch| <= atol + rtol |torch|`; NaN matches only NaN.
fn assert_close(what: &str, ours: &Tensor, torch: &Tensor, (atol, rtol): (f32, f32)) {
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

/// Relative 1e-5, and 1e-6 absolute for values near 0 (gradients that cancel to ~1e-8).
const TOL: (f32, f32) = (1e-6, 1e-5);

/// Runs `op` on the case's inputs as parameters, compares the output and the gradients.
fn compare(name: &str, op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    let c = case(name);
    let params: Vec<Param> = c["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| Param::new(format!("in{i}"), tensor(v)))
        .collect();
    let tape = Tape::new(Mode::Train, 0);
    let vars: Vec<Var> = params.iter().map(|p| tape.param(p)).collect();
    let out = op(&vars, &c["meta"]);
    assert_close(&format!("{name} output"), &out.value(), &tensor(&c["output"]), TOL);
    let loss =
        if c.get("weights").is_some() { (out * tape.constant(tensor(&c["weights"]))).sum() } else { out };
    let grads = loss.backward();
    for (i, (p, g)) in params.iter().zip(c["grads"].as_array().unwrap()).enumerate() {
        assert_close(&format!("{name} grad of input {i}"), grads.get(p).unwrap(), &tensor(g), TOL);
    }
}

fn axis(m: &Value) -> i32 {
    m["axis"].as_i64().unwrap() as i32
}

fn flag(m: &Value, key: &str) -> bool {
    m[key].as_bool().unwrap()
}

/// The suffixes of the reduction cases: axis 0, -2 and -1, keepdim dropped or kept.
fn suffixes() -> Vec<String> {
    let mut all = vec![];
    for axis in ["0", "-2", "-1"] {
        for keep in ["drop", "keep"] {
            all.push(format!("{axis}_{keep}"));
        }
    }
    all
}

#[test]
fn sum_mean_logsumexp_and_norm_dim_match_torch() {
    for k in suffixes() {
        compare(&format!("sum_dim_{k}"), |v, m| v[0].sum_dim(axis(m), flag(m, "keepdim")));
        compare(&format!("mean_dim_{k}"), |v, m| v[0].mean_dim(axis(m), flag(m, "keepdim")));
        compare(&format!("logsumexp_{k}"), |v, m| v[0].logsumexp(axis(m), flag(m, "keepdim")));
        compare(&format!("norm_dim_{k}"), |v, m| v[0].norm_dim(axis(m), flag(m, "keepdim")));
    }
}

#[test]
fn var_and_std_match_torch() {
    for k in suffixes() {
        for unbiased in ["false", "true"] {
            let name = format!("var_{k}_{}", if unbiased == "true" { "True" } else { "False" });
            compare(&name, |v, m| v[0].var(axis(m), flag(m, "unbiased"), flag(m, "keepdim")));
            compare(&name.replacen("var", "std", 1), |v, m| {
                v[0].std(axis(m), flag(m, "unbiased"), flag(m, "keepdim"))
            });
        }
    }
    // A constant lane: std 0 and, as torch, a zero gradient (not NaN).
    compare("std_constant_lane", |v, m| v[0].std(axis(m), flag(m, "unbiased"), flag(m, "keepdim")));
}

#[test]
fn max_and_min_dim_send_the_gradient_to_the_first_extreme_as_torch() {
    for k in suffixes() {
        compare(&format!("max_dim_{k}"), |v, m| v[0].max_dim(axis(m), flag(m, "keepdim")));
        compare(&format!("min_dim_{k}"), |v, m| v[0].min_dim(axis(m), flag(m, "keepdim")));
    }
}

#[test]
fn argmax_and_argmin_match_torch_exactly() {
    let cases: Vec<Value> = fixtures().into_iter().filter(|c| c.get("ids").is_some()).collect();
    assert_eq!(cases.len(), 12);
    for c in cases {
        let tape = Tape::new(Mode::Eval, 0);
        let x = tape.constant(tensor(&c["inputs"][0]));
        let (a, keep) = (axis(&c["meta"]), flag(&c["meta"], "keepdim"));
        let name = c["name"].as_str().unwrap();
        let ours = if name.starts_with("argmax") { x.argmax(a, keep) } else { x.argmin(a, keep) };
        let torch = Ids::from_vec(usizes(&c["ids"]["data"]), &usizes(&c["ids"]["shape"]));
        assert_eq!(ours, torch, "{name}");
    }
}

#[test]
fn norm_matches_torch_with_zero_gradient_at_zero() {
    compare("norm_all", |v, _| v[0].norm());
    compare("norm_all_zero", |v, _| v[0].norm());
    compare("norm_dim_zero_lane", |v, m| v[0].norm_dim(axis(m), flag(m, "keepdim")));
}

#[test]
fn softmax_and_log_softmax_match_torch_on_every_axis() {
    for a in ["0", "1", "-2", "-1"] {
        compare(&format!("softmax_{a}"), |v, m| v[0].softmax(axis(m)));
        compare(&format!("log_softmax_{a}"), |v, m| v[0].log_softmax(axis(m)));
    }
}

/// The options of a cross-entropy case, from torch's keyword arguments.
fn options(m: &Value) -> CrossEntropy {
    CrossEntropy {
        ignore_index: m.get("ignore_index").map(|i| i.as_u64().unwrap() as usize),
        label_smoothing: m.get("label_smoothing").map_or(0.0, |e| e.as_f64().unwrap() as f32),
        reduction: match m.get("reduction").and_then(|r| r.as_str()) {
            Some("sum") => Reduction::Sum,
            _ => Reduction::Mean,
        },
    }
}

#[test]
fn cross_entropy_of_rank_3_logits_matches_torch_with_every_option() {
    for name in ["plain", "smooth", "ignore", "ignore_smooth", "ignore_smooth_sum", "sum"] {
        compare(&format!("cross_entropy_3d_{name}"), |v, m| {
            let targets = Ids::from_vec(usizes(&m["targets"]), &usizes(&m["targets_shape"]));
            v[0].cross_entropy_with(&targets, options(m))
        });
    }
    // Without options, cross_entropy is the same loss (Ids or a slice of the leading numel).
    compare("cross_entropy_3d_plain", |v, m| v[0].cross_entropy(&usizes(&m["targets"])));
    compare("cross_entropy_1d", |v, m| v[0].cross_entropy(&Ids::from_vec(usizes(&m["targets"]), &[])));
}

#[test]
fn cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient_as_torch() {
    compare("cross_entropy_all_ignored", |v, m| v[0].cross_entropy_with(&usizes(&m["targets"]), options(m)));
    let c = case("cross_entropy_all_ignored");
    assert!(tensor(&c["output"]).data()[0].is_nan(), "the fixture itself pins torch's NaN");
}

#[test]
fn gather_matches_torch_on_every_axis() {
    for a in ["0", "1", "-1"] {
        compare(&format!("gather_{a}"), |v, m| {
            v[0].gather(axis(m), &Ids::from_vec(usizes(&m["index"]), &usizes(&m["index_shape"])))
        });
    }
}
