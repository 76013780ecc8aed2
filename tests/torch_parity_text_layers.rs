//! safetensors files written by PyTorch load into adamant's `Embedding` (and into a
//! makemore-style model of an `Embedding` and a `Dense`) and give PyTorch's outputs and
//! gradients: the embedding's forward (a copy) exactly, its scatter-add gradient and the
//! model's logits, loss and gradients within `|ours - torch| <= 1e-6 + 1e-5 |torch|`.
//! Fixtures: `tests/fixtures/gen_text_layers.py`, run with torch and safetensors installed;
//! this test only reads the committed files.

mod common;

use std::path::PathBuf;

use adamant::autodiff::{Mode, Tape};
use adamant::layers::serialize::{assign, decode_tensors};
use adamant::layers::{load, Dense, Embedding, Module, Params};
use adamant::tensor::rng::seeded;
use common::torch::{assert_close, fixture_json, ids, tensor, TOL};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn case(name: &str) -> Value {
    fixture_json("text_layers_torch.json")[name].clone()
}

#[test]
fn torch_embedding_file_gives_torch_output_and_gradient() {
    let c = case("embedding");
    // A different table first, so that a load that did nothing fails.
    let mut emb = Embedding::new(11, 4, &mut seeded(0));
    load(&mut emb, fixture("torch_embedding.safetensors")).unwrap();
    let tape = Tape::new(Mode::Train, 0);
    let y = emb.forward(&tape, &ids(&c["ids"]));
    // The forward copies rows: bit-exact.
    assert_eq!(y.value(), tensor(&c["output"]));
    let grads = (y * tape.constant(tensor(&c["r"]))).sum().backward();
    assert_close("grad weight", grads.get(&emb.weight).unwrap(), &tensor(&c["grad_weight"]), TOL);
}

/// PyTorch's `Makemore` of the generator: attributes `emb` and `fc`, as here.
#[derive(adamant::layers::Module)]
struct Makemore {
    emb: Embedding,
    fc: Dense,
}

#[test]
fn torch_makemore_state_dict_assigns_and_gives_torch_logits_loss_and_gradients() {
    let c = case("makemore");
    let rng = &mut seeded(1);
    let mut model = Makemore { emb: Embedding::new(27, 3, rng), fc: Dense::new(9, 27, rng) };
    // `assign` from the decoded tensors (what `load` does after reading the file).
    let bytes = std::fs::read(fixture("torch_makemore.safetensors")).unwrap();
    let tensors = decode_tensors(&bytes).unwrap();
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["emb.weight", "fc.bias", "fc.weight"]);
    assign(&mut model, tensors).unwrap();

    let tape = Tape::new(Mode::Train, 0);
    let contexts = ids(&c["ids"]);
    let n = contexts.shape()[0];
    let x = model.emb.forward(&tape, &contexts).reshape(&[n, 9]);
    let logits = model.fc.forward(x);
    assert_close("logits", &logits.value(), &tensor(&c["logits"]), TOL);
    let targets: Vec<usize> =
        c["targets"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as usize).collect();
    let loss = logits.cross_entropy(&targets);
    let want = c["loss"].as_f64().unwrap() as f32;
    assert!(
        (loss.item() - want).abs() <= TOL.0 + TOL.1 * want.abs(),
        "loss: ours {}, torch {want}",
        loss.item()
    );
    let grads = loss.backward();
    for (name, p) in model.named_params() {
        assert_close(&format!("grad {name}"), grads.get(p).unwrap(), &tensor(&c["grads"][&name]), TOL);
    }
}
