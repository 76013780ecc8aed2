//! The bodies of the fuzz targets: one function per reader of untrusted bytes, each feeding
//! the bytes to the same public function the library uses on a file's content, and
//! returning normally whatever the bytes are (every defect must be an `Err`, never a panic,
//! an overflow, a huge allocation or a hang).
//!
//! The fuzz targets of `fuzz_targets/` call these, and so does the stable-Rust replay test
//! `tests/fuzz_corpus.rs` of the facade, which includes this file as a module: one body per
//! target, so the corpus CI replays exercises exactly what was fuzzed. This file must
//! therefore use only `adamant` (no libFuzzer item).

use std::path::Path;

use adamant::autodiff::{Mode, Tape};
use adamant::checkpoint::Checkpoint;
use adamant::data::{cifar, idx, npy};
use adamant::layers::{sequential, serialize, Dense, Module, Params, ReLU, Sequential};
use adamant::optim::{build, OptimizerOptions, Schedule, Scheduler};
use adamant::tensor::{rng::seeded, Tensor};

/// The names of the targets, which are also the directories of `fuzz/corpus/`.
pub const TARGETS: [&str; 5] = ["idx", "cifar", "npy", "safetensors", "checkpoint"];

/// The body of the target named `name` (one of [`TARGETS`]).
pub fn body(name: &str) -> fn(&[u8]) {
    match name {
        "idx" => idx,
        "cifar" => cifar,
        "npy" => npy,
        "safetensors" => safetensors,
        "checkpoint" => checkpoint,
        _ => panic!("no fuzz target named '{name}'"),
    }
}

/// The small model the `safetensors` and `checkpoint` targets load into (its parameters
/// are `0.weight` [3, 4], `0.bias` [3], `2.weight` [2, 3], `2.bias` [2]); the seed corpus
/// is made with the same model so that mutations reach the name and shape checks.
pub fn tiny_model() -> Sequential {
    let mut rng = seeded(0);
    sequential![Dense::new(4, 3, &mut rng), ReLU, Dense::new(3, 2, &mut rng)]
}

/// IDX (MNIST): the bytes of a file, plain or gzip, through `idx::read_images_from` and
/// `idx::read_labels_from` (what `read_images`/`read_labels` do with a file: the header
/// first, then at most what it declares), and through `idx::decompress` and then both
/// `parse_images` and `parse_labels` (the same, for bytes already in memory).
pub fn idx(data: &[u8]) {
    let path = Path::new("fuzz.idx");
    let _ = idx::read_images_from(data, path);
    let _ = idx::read_labels_from(data, path);
    if let Ok(bytes) = idx::decompress(data.to_vec(), path) {
        let _ = idx::parse_images(&bytes, path);
        let _ = idx::parse_labels(&bytes, path, idx::NUM_CLASSES);
    }
}

/// CIFAR-10 binary: the bytes of a file, plain or gzip, through `cifar::read_batch_from` (what
/// `cifar::read_batch` does with a file: at most 10,000 records), and through
/// `idx::decompress` and then `cifar::parse_batch` (the same, for bytes already in memory).
pub fn cifar(data: &[u8]) {
    let path = Path::new("fuzz.bin");
    let _ = cifar::read_batch_from(data, path);
    if let Ok(bytes) = idx::decompress(data.to_vec(), path) {
        let _ = cifar::parse_batch(bytes, path);
    }
}

/// NumPy `.npy`: the bytes of a file through `npy::read_from` (what `npy::read` does with a
/// file, streaming, with no length known up front) and `npy::parse` (bytes in memory, length
/// known); when they read, the array must convert to a tensor, and to labels or an error.
pub fn npy(data: &[u8]) {
    let path = Path::new("fuzz.npy");
    let _ = npy::read_from(data, path);
    if let Ok(array) = npy::parse(data, path) {
        let _ = array.clone().into_tensor();
        let _ = array.into_labels(path);
    }
}

/// safetensors parameters: `serialize::decode_tensors`, and when that succeeds
/// `serialize::assign` into [`tiny_model`] (together, what `adamant::layers::load` does).
pub fn safetensors(data: &[u8]) {
    if let Ok(tensors) = serialize::decode_tensors(data) {
        let mut model = tiny_model();
        let _ = serialize::assign(&mut model, tensors);
    }
}

/// Training checkpoints: `Checkpoint::from_bytes`; when that succeeds, the checkpoint must
/// encode again and decode back (a resumed run writes it again), and `Checkpoint::restore`
/// into [`tiny_model`] with an optimizer of the checkpoint's kind (Adam if the kind is
/// unknown) and a scheduler if the checkpoint has one; when that succeeds too, one training
/// step must run on the restored state.
pub fn checkpoint(data: &[u8]) {
    let Ok(ckpt) = Checkpoint::from_bytes(data) else { return };
    // `fit` resumes at epoch `ckpt.epoch + 1`: the history (one row per epoch) bounds it.
    assert_eq!(ckpt.epoch, ckpt.history.len(), "epoch not backed by the history");
    let bytes = ckpt.to_bytes().expect("a checkpoint that was read has unique names");
    if let Err(e) = Checkpoint::from_bytes(&bytes) {
        panic!("a checkpoint that was read does not read back after writing: {e}");
    }
    let mut model = tiny_model();
    let options = OptimizerOptions::default();
    let mut optimizer = build(&ckpt.optimizer.kind, &options)
        .or_else(|_| build("adam", &options))
        .expect("adam with default options");
    let mut scheduler = Scheduler::new(Schedule::Constant, 0.01);
    let with_scheduler = ckpt.scheduler.is_some();
    if ckpt.restore(&mut model, optimizer.as_mut(), with_scheduler.then_some(&mut scheduler)).is_err() {
        return;
    }
    if with_scheduler {
        scheduler.step(optimizer.as_mut());
    }
    let tape = Tape::new(Mode::Train, 1);
    let loss = model.forward(tape.constant(Tensor::ones(&[2, 4]))).cross_entropy(&[0, 1]);
    let grads = loss.backward();
    optimizer.step(&mut model.params_mut(), &grads);
}
