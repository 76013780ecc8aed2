//! avg_pool2d, adaptive_avg_pool2d and conv1d equal PyTorch's forward values and gradients on
//! fixed inputs, and the layers `Conv1d`, `AvgPool2d` and `AdaptiveAvgPool2d` load a PyTorch
//! `state_dict` (safetensors) by its own keys and give PyTorch's outputs, then save and load
//! back bit-identically.
//!
//! Tolerance, for every value and gradient: the relative |ours - torch| <= 1e-5 |torch|, plus
//! 1e-6 for values near 0.
//!
//! The fixtures come from `tests/fixtures/gen_pool.py` (run with torch installed); this test
//! only reads the committed files.

mod common;

use adamant::autodiff::{Tape, Var};
use adamant::layers::{
    save, sequential, serialize, AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, Dense, Flatten, Module, ReLU,
};
use adamant::tensor::{rng::seeded, Tensor};
use common::torch::{assert_close, compare_case, fixture_json, named, tensor, TOL};
use serde_json::Value;

fn fixture() -> Value {
    fixture_json("pool_torch.json")
}

fn case(name: &str) -> Value {
    named(&fixture()["cases"], name).clone()
}

/// Runs `op` on the case's inputs as parameters, compares the output and the gradients.
fn compare(name: &str, tol: (f32, f32), op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    compare_case(&case(name), tol, op)
}

fn meta(m: &Value, key: &str) -> usize {
    m[key].as_u64().unwrap() as usize
}

#[test]
fn avg_pool2d_matches_torch() {
    for name in
        ["avg_pool2d_3x3_s2_p1", "avg_pool2d_2x2_s2_p0", "avg_pool2d_3x3_s1_p1", "avg_pool2d_4x4_s3_p2"]
    {
        compare(name, TOL, |v, m| v[0].avg_pool2d(meta(m, "kernel"), meta(m, "stride"), meta(m, "padding")));
    }
}

#[test]
fn adaptive_avg_pool2d_matches_torch() {
    for name in [
        "adaptive_avg_pool2d_7x5_to_3x2",
        "adaptive_avg_pool2d_6x6_to_1x1",
        "adaptive_avg_pool2d_2x3_to_4x5",
        "adaptive_avg_pool2d_10x9_to_4x4",
    ] {
        compare(name, TOL, |v, m| v[0].adaptive_avg_pool2d(meta(m, "out_h"), meta(m, "out_w")));
    }
}

#[test]
fn conv1d_matches_torch() {
    for name in ["conv1d_k3_s1_p1", "conv1d_k5_s2_p2"] {
        compare(name, TOL, |v, m| v[0].conv1d(v[1], Some(v[2]), meta(m, "stride"), meta(m, "padding")));
    }
    compare("conv1d_k1_nobias", TOL, |v, _| v[0].conv1d(v[1], None, 1, 0));
}

/// Loads the torch-saved tensors of `net` (keys `<net>.<state_dict key>`) into `model`,
/// checks the keys are PyTorch's and the output PyTorch's, then saves and loads it back.
fn round_trip(net: &str, mut model: impl Module) {
    let json = fixture();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pool_torch.safetensors");
    let prefix = format!("{net}.");
    let tensors: Vec<(String, Tensor)> = serialize::load_tensors(path)
        .unwrap()
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix(&prefix).map(|k| (k.to_string(), t)))
        .collect();
    let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
    let torch_keys: Vec<String> = json["nets"][net]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, torch_keys, "{net}: parameter names are PyTorch's state_dict keys");
    serialize::assign(&mut model, tensors).unwrap();
    let input = tensor(&json["nets"][net]["input"]);
    let tape = Tape::inference();
    let ours = model.forward(tape.constant(input.clone())).value();
    assert_close(&format!("{net} output"), &ours, &tensor(&json["nets"][net]["output"]), TOL);
    drop(tape);

    let dir = common::Scratch::new(&format!("pool-{net}"));
    let file = dir.join("model.safetensors");
    save(&model, &file).unwrap();
    let reloaded = serialize::load_tensors(&file).unwrap();
    assert_eq!(reloaded.len(), names.len());
    for (name, p) in model.named_params() {
        let saved =
            &reloaded.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} not saved")).1;
        assert_eq!(p.value().data(), saved.data(), "{name}: bit-identical after save");
    }
}

#[test]
fn conv1d_layers_load_a_torch_state_dict_and_give_torch_outputs() {
    let mut rng = seeded(0);
    round_trip(
        "conv1d_net",
        sequential![Conv1d::new(3, 4, 3, 1, 1, &mut rng), ReLU, Conv1d::new(4, 2, 5, 2, 2, &mut rng)],
    );
}

#[test]
fn pooling_layers_in_a_net_give_torch_outputs() {
    let mut rng = seeded(0);
    round_trip(
        "pool_net",
        sequential![
            Conv2d::new(2, 3, 3, 1, 1, &mut rng),
            AvgPool2d::new(3, 2, 1),
            AdaptiveAvgPool2d::new(2, 2),
            Flatten,
            Dense::new(12, 5, &mut rng)
        ],
    );
}

#[test]
fn conv1d_initialisation_has_torch_bounds() {
    // PyTorch: weight and bias uniform in +-1/sqrt(in_channels * kernel) (Kaiming-uniform
    // with a = sqrt(5) gives the same bound for the weight).
    let layer = Conv1d::new(4, 6, 5, 1, 0, &mut seeded(3));
    let bound = 1.0 / (20f32).sqrt();
    assert_eq!(layer.weight.shape(), &[6, 4, 5]);
    for p in [&layer.weight, layer.bias.as_ref().unwrap()] {
        let max = p.value().data().iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max <= bound && max > 0.5 * bound, "{max} vs {bound}");
    }
}
