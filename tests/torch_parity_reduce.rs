//! Forward values and gradients of issue 20's reductions along any axis (sum, mean, max, min,
//! logsumexp, var, std, L2 norm), softmax and log_softmax along any axis, cross-entropy of
//! `[..., V]` logits with `ignore_index` and `label_smoothing`, and gather equal PyTorch's on
//! fixed inputs, within |ours - torch| <= 1e-6 + 1e-5 |torch| elementwise; argmax/argmin
//! exactly (ties included: both take the first).
//!
//! The fixtures come from `tests/fixtures/gen_reduce.py` (run with torch installed); this
//! test only reads the committed JSON.

mod common;

use adamant::autodiff::{CrossEntropy, Mode, Reduction, Tape, Var};
use adamant::tensor::Ids;
use common::torch::{compare_case, fixture_json, named, tensor, usizes, TOL};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    fixture_json("reduce_torch.json")["cases"].as_array().expect("cases").clone()
}

fn case(name: &str) -> Value {
    named(&fixture_json("reduce_torch.json")["cases"], name).clone()
}

/// Runs `op` on the case's inputs as parameters, compares the output and the gradients
/// (relative 1e-5, and 1e-6 absolute for gradients that cancel to ~1e-8).
fn compare(name: &str, op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    compare_case(&case(name), TOL, op)
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
