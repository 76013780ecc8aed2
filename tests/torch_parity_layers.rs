//! safetensors files written by PyTorch load into adamant's MLP and CNN and give PyTorch's
//! logits on a fixed input within 1e-5 + 1e-4 |torch|; an adamant-saved file loads back
//! bit-identically. Fixtures: `tests/fixtures/gen_layers.py`.

use std::io::Read;
use std::path::PathBuf;

use adamant::autodiff::Tape;
use adamant::layers::{load, nets, save, Module};
use adamant::tensor::{rng::seeded, Tensor};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> =
        v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, &shape)
}

/// Unzips `torch_<net>.safetensors.gz` into a temporary file and returns its path.
fn unzipped(net: &str) -> PathBuf {
    let mut bytes = Vec::new();
    let gz = std::fs::File::open(fixture(&format!("torch_{net}.safetensors.gz"))).unwrap();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes).unwrap();
    let path = std::env::temp_dir().join(format!("adamant-torch-{net}-{}.safetensors", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn check(net: &str, mut model: impl Module) {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("layers_torch.json")).unwrap()).unwrap();
    let path = unzipped(net);
    load(&mut model, &path).unwrap();
    let tape = Tape::inference();
    let logits = model.forward(tape.constant(tensor(&json[net]["input"]))).value();
    let want = tensor(&json[net]["logits"]);
    assert_eq!(logits.shape(), want.shape());
    for (i, (&o, &t)) in logits.data().iter().zip(want.data()).enumerate() {
        assert!((o - t).abs() <= 1e-5 + 1e-4 * t.abs(), "{net} logit {i}: ours {o}, torch {t}");
    }

    // Saving what we loaded and loading it into a fresh model gives the same bits.
    let ours = std::env::temp_dir().join(format!("adamant-resaved-{net}-{}.safetensors", std::process::id()));
    save(&model, &ours).unwrap();
    let mut fresh = if net == "mlp" {
        Box::new(nets::mlp(&mut seeded(99))) as Box<dyn Module>
    } else {
        Box::new(nets::cnn(&mut seeded(99)))
    };
    load(fresh.as_mut(), &ours).unwrap();
    for (a, b) in model.params().iter().zip(fresh.params()) {
        assert_eq!(a.name(), b.name());
        assert!(a.value().data().iter().zip(b.value().data()).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(ours);
}

#[test]
fn torch_mlp_file_gives_torch_logits() {
    check("mlp", nets::mlp(&mut seeded(0)));
}

#[test]
fn torch_cnn_file_gives_torch_logits() {
    check("cnn", nets::cnn(&mut seeded(0)));
}
