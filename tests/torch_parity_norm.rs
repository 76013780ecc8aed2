//! layer_norm, rms_norm and batch_norm equal PyTorch's forward values, gradients and
//! running-statistics updates, and the state_dicts of PyTorch's nn.LayerNorm, nn.RMSNorm,
//! nn.BatchNorm1d and nn.BatchNorm2d (saved with safetensors, `num_batches_tracked` as I64)
//! load into adamant's layers of the same names and give PyTorch's outputs in evaluation and
//! in training mode, including the buffers a training step updates.
//!
//! Tolerance: `|ours - torch| <= 1e-5 |torch| + 1e-6` elementwise (statistics in f64 here,
//! float32 in PyTorch).
//!
//! The fixtures come from `tests/fixtures/gen_norm.py` (run with torch installed); this test
//! only reads the committed files.

mod common;

use adamant::autodiff::{Mode, Param, Tape, Var};
use adamant::layers::{load, BatchNorm1d, BatchNorm2d, LayerNorm, Module, Params, RMSNorm};
use adamant::tensor::Tensor;
use common::torch::{assert_close, compare_case, fixture_json, named, tensor, usizes, TOL};
use serde_json::Value;

fn fixtures() -> Value {
    fixture_json("norm_torch.json")
}

/// Runs `op` on the case's inputs as parameters; compares the output and every gradient.
fn compare(name: &str, op: impl for<'t> Fn(&[Var<'t>], &Value) -> Var<'t>) {
    compare_case(named(&fixtures()["cases"], name), TOL, op)
}

fn shape_of(m: &Value, key: &str) -> Vec<usize> {
    usizes(&m[key])
}

#[test]
fn layer_norm_matches_torch() {
    compare("layer_norm_affine", |v, m| {
        v[0].layer_norm(
            &shape_of(m, "normalized_shape"),
            Some(v[1]),
            Some(v[2]),
            m["eps"].as_f64().unwrap() as f32,
        )
    });
    compare("layer_norm_plain", |v, m| {
        v[0].layer_norm(&shape_of(m, "normalized_shape"), None, None, m["eps"].as_f64().unwrap() as f32)
    });
}

#[test]
fn rms_norm_matches_torch() {
    compare("rms_norm_weight", |v, m| {
        v[0].rms_norm(&shape_of(m, "normalized_shape"), Some(v[1]), Some(m["eps"].as_f64().unwrap() as f32))
    });
    compare("rms_norm_default_eps", |v, m| v[0].rms_norm(&shape_of(m, "normalized_shape"), None, None));
}

#[test]
fn batch_norm_matches_torch_in_training_and_evaluation() {
    for name in ["batch_norm_train_2d", "batch_norm_train_4d"] {
        compare(name, |v, m| {
            let (mut mean, mut var) = (tensor(&m["running_mean"]), tensor(&m["running_var"]));
            let y = v[0].batch_norm(Some(v[1]), Some(v[2]), Some((&mut mean, &mut var)), true, 0.1, 1e-5);
            assert_close(&format!("{name} running_mean"), &mean, &tensor(&m["running_mean_after"]), TOL);
            assert_close(&format!("{name} running_var"), &var, &tensor(&m["running_var_after"]), TOL);
            y
        });
    }
    compare("batch_norm_eval", |v, m| {
        let (mut mean, mut var) = (tensor(&m["running_mean"]), tensor(&m["running_var"]));
        v[0].batch_norm(Some(v[1]), Some(v[2]), Some((&mut mean, &mut var)), false, 0.1, 1e-5)
    });
}

/// Loads the PyTorch state_dict of layer `name` into `layer` and compares its outputs with
/// PyTorch's: evaluation, then one training forward (output, input gradient, buffers).
fn check_layer(name: &str, mut layer: impl Module) {
    let all = fixtures();
    let c = named(&all["layers"], name);
    let file = format!("{}/tests/fixtures/{}", env!("CARGO_MANIFEST_DIR"), c["file"].as_str().unwrap());
    load(&mut layer, &file).unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = tensor(&c["input"]);

    let eval = Tape::inference();
    assert_close(
        &format!("{name} eval"),
        &layer.forward(eval.constant(x.clone())).value(),
        &tensor(&c["eval_output"]),
        TOL,
    );

    let input = Param::new("x", x);
    let tape = Tape::new(Mode::Train, 0);
    let y = layer.forward(tape.param(&input));
    assert_close(&format!("{name} train"), &y.value(), &tensor(&c["train_output"]), TOL);
    let grads = (y * tape.constant(tensor(&c["weights"]))).sum().backward();
    assert_close(
        &format!("{name} input grad"),
        grads.get(&input).unwrap(),
        &tensor(&c["train_input_grad"]),
        TOL,
    );
    let buffers = c["buffers_after"].as_object().unwrap();
    assert_eq!(layer.named_buffers().len(), buffers.len(), "{name}: buffer count");
    for (key, b) in layer.named_buffers() {
        assert_close(&format!("{name} {key}"), &b.value(), &tensor(&buffers[&key]), TOL);
    }
}

#[test]
fn torch_norm_layers_load_and_match() {
    check_layer("LayerNorm", LayerNorm::new(&[3, 4]));
    check_layer("RMSNorm", RMSNorm::new(&[6]));
    check_layer("BatchNorm1d", BatchNorm1d::new(4));
    check_layer("BatchNorm2d", BatchNorm2d::with_options(3, 1e-5, None, true, true));
}

#[test]
fn norm_layers_have_torch_names_and_defaults() {
    let names = |m: &dyn Module| m.named_params().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    let bn = BatchNorm2d::new(3);
    assert_eq!(names(&bn), ["weight", "bias"]);
    let buffers: Vec<String> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(buffers, ["running_mean", "running_var", "num_batches_tracked"]);
    assert_eq!(bn.running_var().unwrap().data(), &[1.0, 1.0, 1.0]);
    assert_eq!(names(&LayerNorm::new(&[4])), ["weight", "bias"]);
    assert_eq!(names(&LayerNorm::with_options(&[4], 1e-5, true, false)), ["weight"]);
    assert!(names(&RMSNorm::with_options(&[4], None, false)).is_empty());
    // No running statistics: batch statistics in evaluation too, as PyTorch.
    let plain = BatchNorm1d::with_options(2, 1e-5, Some(0.1), false, false);
    assert!(plain.named_buffers().is_empty() && names(&plain).is_empty());
    let tape = Tape::inference();
    let y = plain.forward(tape.constant(Tensor::from_vec(vec![1.0, 5.0, 3.0, 7.0], &[2, 2])));
    assert!(y.value().data().iter().zip([-1.0, -1.0, 1.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-4));
}

#[test]
#[should_panic(expected = "BatchNorm2d: expected [N, C, H, W] input, got shape [2, 3]")]
fn batch_norm_2d_names_the_rank_it_expects() {
    BatchNorm2d::new(3).forward(Tape::inference().constant(Tensor::zeros(&[2, 3])));
}
