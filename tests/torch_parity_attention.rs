//! Scaled dot-product attention equals PyTorch's `F.scaled_dot_product_attention`, forward
//! and backward (query, key and value gradients): plain over batch and heads, causal with a
//! custom scale, a boolean mask broadcast over batch and heads, and a per-example additive
//! mask. Tolerance `|ours - torch| <= 1e-5 |torch| + 1e-6` elementwise.
//!
//! The fixtures come from `tests/fixtures/gen_attention.py` (run with torch installed); this
//! test only reads the committed JSON.

use adamant::autodiff::{Attention, AttentionMask, Mode, Param, Tape, Var};
use adamant::tensor::Tensor;
use serde_json::Value;

fn case(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/attention_torch.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let json: Value = serde_json::from_str(&text).expect("fixture is valid JSON");
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> =
        v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, &shape)
}

fn assert_close(what: &str, ours: &Tensor, torch: &Tensor) {
    assert_eq!(ours.shape(), torch.shape(), "{what}: shape");
    for (i, (&o, &t)) in ours.data().iter().zip(torch.data()).enumerate() {
        let tol = 1e-6 + 1e-5 * t.abs();
        assert!((o - t).abs() <= tol, "{what}[{i}]: ours {o}, torch {t}, |diff| {} > {tol}", (o - t).abs());
    }
}

fn compare(name: &str, options: &Attention<'_>) {
    let c = case(name);
    let params: Vec<Param> = c["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| Param::new(format!("in{i}"), tensor(v)))
        .collect();
    let tape = Tape::new(Mode::Train, 0);
    let v: Vec<Var> = params.iter().map(|p| tape.param(p)).collect();
    let out = v[0].scaled_dot_product_attention(v[1], v[2], options);
    assert_close(&format!("{name} output"), &out.value(), &tensor(&c["output"]));
    let grads = (out * tape.constant(tensor(&c["weights"]))).sum().backward();
    for (i, (p, g)) in params.iter().zip(c["grads"].as_array().unwrap()).enumerate() {
        assert_close(&format!("{name} grad of input {i}"), grads.get(p).unwrap(), &tensor(g));
    }
}

fn meta(name: &str) -> Value {
    case(name)["meta"].clone()
}

#[test]
fn plain_and_causal_attention_match_torch() {
    compare("sdpa_plain", &Attention::default());
    let scale = meta("sdpa_causal_scale")["scale"].as_f64().unwrap() as f32;
    compare("sdpa_causal_scale", &Attention { causal: true, scale: Some(scale), ..Attention::default() });
}

#[test]
fn masked_attention_matches_torch() {
    let m = meta("sdpa_bool_mask");
    let keep: Vec<bool> = m["keep"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
    let shape: Vec<usize> =
        m["keep_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let mask = AttentionMask::Bool { keep: &keep, shape: &shape };
    compare("sdpa_bool_mask", &Attention { mask: Some(mask), ..Attention::default() });
    let bias = tensor(&meta("sdpa_additive_mask")["bias"]);
    compare(
        "sdpa_additive_mask",
        &Attention { mask: Some(AttentionMask::Additive(&bias)), ..Attention::default() },
    );
}
