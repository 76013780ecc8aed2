//! Scaled dot-product attention equals PyTorch's `F.scaled_dot_product_attention`, forward
//! and backward (query, key and value gradients): plain over batch and heads, causal with a
//! custom scale, a boolean mask broadcast over batch and heads, and a per-example additive
//! mask; and masked_fill and where with broadcast masks and operands. Tolerance
//! `|ours - torch| <= 1e-5 |torch| + 1e-6` elementwise.
//!
//! The fixtures come from `tests/fixtures/gen_attention.py` (run with torch installed); this
//! test only reads the committed JSON.

mod common;

use adamant::autodiff::{Attention, AttentionMask, Var};
use common::torch::{compare_case, fixture_json, named, tensor, usizes, TOL};
use serde_json::Value;

fn case(name: &str) -> Value {
    named(&fixture_json("attention_torch.json")["cases"], name).clone()
}

fn compare(name: &str, options: &Attention<'_>) {
    compare_case(&case(name), TOL, |v, _| v[0].scaled_dot_product_attention(v[1], v[2], options));
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
    let shape = usizes(&m["keep_shape"]);
    let mask = AttentionMask::Bool { keep: &keep, shape: &shape };
    compare("sdpa_bool_mask", &Attention { mask: Some(mask), ..Attention::default() });
    let bias = tensor(&meta("sdpa_additive_mask")["bias"]);
    compare(
        "sdpa_additive_mask",
        &Attention { mask: Some(AttentionMask::Additive(&bias)), ..Attention::default() },
    );
}

#[test]
fn broadcast_masked_fill_and_where_match_torch() {
    let bools = |m: &Value| -> Vec<bool> {
        m["mask"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect()
    };
    let m = meta("masked_fill_broadcast_causal");
    let (mask, shape, value) = (bools(&m), usizes(&m["mask_shape"]), m["value"].as_f64().unwrap() as f32);
    compare_case(&case("masked_fill_broadcast_causal"), TOL, |v, _| {
        v[0].masked_fill(&mask, &shape, value).softmax(-1)
    });
    let m = meta("where_broadcast");
    let (mask, shape) = (bools(&m), usizes(&m["mask_shape"]));
    compare_case(&case("where_broadcast"), TOL, |v, _| Var::where_(&mask, &shape, v[0], v[1]));
}
