//! safetensors save/load: bit-exact round trips, and every kind of bad file is an error that
//! names the file and the parameter and leaves the model unchanged.

use std::path::{Path, PathBuf};

use adamant_autodiff::Param;
use adamant_layers::serialize::{assign, load_tensors, save_tensors, AssignError};
use adamant_layers::{load, nets, save, sequential, Dense, Module, Params, SerializeError};
use adamant_tensor::io::{remove_interrupted_writes, write_atomic, CodecError};
use adamant_tensor::{rng::seeded, Tensor};
use safetensors::tensor::{Dtype, TensorView};

/// A scratch directory of this test process, deleted when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("adamant-serialize-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn values(m: &dyn Module) -> Vec<Tensor> {
    m.params().iter().map(|p| p.value().clone()).collect()
}

fn small_model(seed: u64) -> adamant_layers::Sequential {
    let mut rng = seeded(seed);
    sequential![Dense::new(3, 4, &mut rng), Dense::new(4, 2, &mut rng)]
}

#[test]
fn save_then_load_is_bit_identical() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("mlp.safetensors");
    let saved = nets::mlp(&mut seeded(1));
    save(&saved, &path).unwrap();
    let mut loaded = nets::mlp(&mut seeded(2));
    assert_ne!(values(&saved), values(&loaded));
    load(&mut loaded, &path).unwrap();
    for (a, b) in values(&saved).iter().zip(values(&loaded).iter()) {
        let bits = |t: &Tensor| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b));
    }
    // No temporary file is left beside it.
    let entries: Vec<_> = std::fs::read_dir(&*dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

/// Writes a file with the given tensors (any dtype), for making bad files.
fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(&str, TensorView)> =
        tensors.iter().map(|(n, d, s, data)| (*n, TensorView::new(*d, s.clone(), data).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

fn good_tensors() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
    vec![
        ("0.weight", Dtype::F32, vec![4, 3], f32_bytes(12)),
        ("0.bias", Dtype::F32, vec![4], f32_bytes(4)),
        ("1.weight", Dtype::F32, vec![2, 4], f32_bytes(8)),
        ("1.bias", Dtype::F32, vec![2], f32_bytes(2)),
    ]
}

/// Loads `tensors` into a fresh small model, expects an error, and checks the model is unchanged.
fn expect_error(name: &str, tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) -> (SerializeError, String) {
    let dir = temp_dir(name);
    let path = dir.join("bad.safetensors");
    write_raw(&path, &tensors);
    let mut model = small_model(3);
    let before = values(&model);
    let err = load(&mut model, &path).expect_err("loading a bad file must fail");
    assert_eq!(values(&model), before, "a failed load changed the model");
    let msg = err.to_string();
    assert!(msg.contains("bad.safetensors"), "error does not name the file: {msg}");
    (err, msg)
}

#[test]
fn the_good_file_loads() {
    let dir = temp_dir("good");
    let path = dir.join("good.safetensors");
    write_raw(&path, &good_tensors());
    let mut model = small_model(3);
    load(&mut model, &path).unwrap();
    assert_eq!(model.params()[0].value().data()[5], 5.0);
}

#[test]
fn a_missing_parameter_is_named() {
    let mut t = good_tensors();
    t.remove(2);
    let (err, msg) = expect_error("missing", t);
    assert!(
        matches!(err, SerializeError::Mismatch { source: AssignError::Missing { ref name, .. }, .. } if name == "1.weight"),
        "{msg}"
    );
    assert!(msg.contains("'1.weight'") && msg.contains("missing"), "{msg}");
}

#[test]
fn an_extra_tensor_is_named() {
    let mut t = good_tensors();
    t.push(("2.weight", Dtype::F32, vec![1], f32_bytes(1)));
    let (err, msg) = expect_error("extra", t);
    assert!(
        matches!(err, SerializeError::Mismatch { source: AssignError::Unexpected { ref name, .. }, .. } if name == "2.weight"),
        "{msg}"
    );
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    let mut t = good_tensors();
    t[1] = ("0.bias", Dtype::F32, vec![5], f32_bytes(5));
    let (err, msg) = expect_error("shape", t);
    assert!(
        matches!(err, SerializeError::Mismatch { source: AssignError::Shape { ref name, .. }, .. } if name == "0.bias"),
        "{msg}"
    );
    assert!(msg.contains("[5]") && msg.contains("[4]"), "{msg}");
}

#[test]
fn a_wrong_dtype_is_named() {
    let mut t = good_tensors();
    t[3] = ("1.bias", Dtype::F64, vec![2], vec![0u8; 16]);
    let (err, msg) = expect_error("dtype", t);
    assert!(
        matches!(err, SerializeError::Codec { source: CodecError::Dtype { ref name, .. }, .. } if name == "1.bias"),
        "{msg}"
    );
    assert!(msg.contains("F64"), "{msg}");
}

#[test]
fn truncated_and_garbage_files_are_format_errors() {
    let dir = temp_dir("corrupt");
    let good = dir.join("good.safetensors");
    write_raw(&good, &good_tensors());
    let bytes = std::fs::read(&good).unwrap();
    for (name, content) in [
        ("truncated.safetensors", bytes[..bytes.len() - 7].to_vec()),
        ("header-only.safetensors", bytes[..20].to_vec()),
        ("empty.safetensors", Vec::new()),
        ("garbage.safetensors", b"this is not a safetensors file at all".to_vec()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let mut model = small_model(4);
        let before = values(&model);
        let err = load(&mut model, &path).expect_err(name);
        assert!(matches!(err, SerializeError::Codec { source: CodecError::Format(_), .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(values(&model), before);
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let mut model = small_model(5);
    let err = load(&mut model, "/nonexistent/dir/model.safetensors").unwrap_err();
    assert!(matches!(err, SerializeError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/model.safetensors"), "{err}");
}

#[test]
fn tensors_round_trip_through_save_and_load_tensors() {
    let dir = temp_dir("tensors");
    let path = dir.join("t.safetensors");
    let a = Tensor::randn(&[2, 3], 0.0, 1.0, &mut seeded(6));
    let b = Tensor::scalar(4.5);
    save_tensors(&[("b".to_string(), &b), ("a".to_string(), &a)], &path).unwrap();
    let loaded = load_tensors(&path).unwrap();
    assert_eq!(loaded, vec![("a".to_string(), a), ("b".to_string(), b)]);
}

#[test]
fn atomic_write_replaces_the_old_file_whole() {
    let dir = temp_dir("atomic");
    let path = dir.join("f.bin");
    write_atomic(&path, b"old contents").unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    // Writing into a directory that does not exist fails and leaves nothing behind.
    assert!(write_atomic(&dir.join("no/such/dir/f.bin"), b"x").is_err());
    assert_eq!(std::fs::read_dir(&*dir).unwrap().count(), 1);
}

#[test]
fn interrupted_writes_are_removed_and_nothing_else() {
    let dir = temp_dir("interrupted");
    let path = dir.join("run.ckpt");
    write_atomic(&path, b"good").unwrap();
    // What killed write_atomic calls leave behind, and files that only look similar.
    for name in [".run.ckpt.tmp123", ".run.ckpt.tmp9", ".run.ckptx.tmp1", "run.ckpt.tmp1", ".other.tmp1"] {
        std::fs::write(dir.join(name), b"partial").unwrap();
    }
    remove_interrupted_writes(&path).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".other.tmp1", ".run.ckptx.tmp1", "run.ckpt", "run.ckpt.tmp1"]);
    assert_eq!(std::fs::read(&path).unwrap(), b"good");
    // A directory that does not exist has nothing to clean.
    remove_interrupted_writes(&dir.join("none/run.ckpt")).unwrap();
}

/// What `prefix_names` used to make easy to get wrong: a container that forgets to prefix
/// its children, so both children's parameters are called `weight` and `bias`.
struct Forgetful {
    a: Dense,
    b: Dense,
}

impl Params for Forgetful {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        self.a.visit_params(prefix, f);
        self.b.visit_params(prefix, f);
    }
    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        self.a.visit_params_mut(prefix, f);
        self.b.visit_params_mut(prefix, f);
    }
}

#[test]
fn duplicate_names_are_an_error_naming_them_not_a_panic() {
    let dir = temp_dir("duplicates");
    let path = dir.join("model.safetensors");
    let mut rng = seeded(4);
    let mut model = Forgetful { a: Dense::new(2, 3, &mut rng), b: Dense::new(3, 1, &mut rng) };

    let e = save(&model, &path).unwrap_err();
    assert!(
        matches!(&e, SerializeError::Mismatch { source: AssignError::Duplicate { name }, .. } if name == "weight"),
        "{e:?}"
    );
    assert!(e.to_string().contains("two parameters are named 'weight'"), "{e}");
    assert!(!path.exists(), "nothing is written");

    let (w, b) = (Tensor::ones(&[1]), Tensor::zeros(&[1]));
    let named = [("w".to_string(), &w), ("b".to_string(), &b), ("w".to_string(), &b)];
    let e = save_tensors(&named, &path).unwrap_err();
    assert!(
        matches!(&e, SerializeError::Codec { source: CodecError::DuplicateName(name), .. } if name == "w"),
        "{e:?}"
    );

    // Loading into such a model is refused too, before anything changes.
    let before: Vec<Tensor> = model.params().iter().map(|p| p.value().clone()).collect();
    let tensors = model.named_params().into_iter().map(|(n, p)| (n, p.value().clone())).collect();
    let e = assign(&mut model, tensors).unwrap_err();
    assert_eq!(e, AssignError::Duplicate { name: "weight".to_string() });
    let after: Vec<Tensor> = model.params().iter().map(|p| p.value().clone()).collect();
    assert_eq!(before, after);
}

/// A module with state that is not trained: a running mean and a counter, as batch norm has.
#[derive(adamant_layers::Module)]
struct Tracked {
    fc: Dense,
    running_mean: adamant_layers::Buffer,
    num_batches_tracked: adamant_layers::Buffer,
}

fn tracked(seed: u64) -> Tracked {
    Tracked {
        fc: Dense::new(3, 2, &mut seeded(seed)),
        running_mean: adamant_layers::Buffer::new(Tensor::from_vec(vec![0.25, -1.5], &[2])),
        num_batches_tracked: adamant_layers::Buffer::count(7),
    }
}

#[test]
fn buffers_are_saved_and_loaded_but_never_trained() {
    let dir = temp_dir("buffers");
    let blocks = vec![tracked(1), tracked(2)];
    // Buffers are named like parameters and walked apart from them.
    let names: Vec<String> = blocks.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.running_mean", "0.num_batches_tracked", "1.running_mean", "1.num_batches_tracked"]);
    let params: Vec<String> = blocks.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(params, ["0.fc.weight", "0.fc.bias", "1.fc.weight", "1.fc.bias"]);

    blocks[1].running_mean.set(Tensor::from_vec(vec![3.0, 4.0], &[2]));
    blocks[1].num_batches_tracked.update(|t| t.data_mut()[0] = 1000.0);
    let path = dir.join("tracked.safetensors");
    save(&blocks, &path).unwrap();
    // The counter is an I64 in the file, as PyTorch writes num_batches_tracked.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("1.num_batches_tracked").unwrap().dtype(), Dtype::I64);
    assert_eq!(st.tensor("1.running_mean").unwrap().dtype(), Dtype::F32);

    let mut fresh = vec![tracked(3), tracked(4)];
    load(&mut fresh, &path).unwrap();
    assert_eq!(fresh[1].running_mean.value().data(), &[3.0, 4.0]);
    assert_eq!(fresh[1].num_batches_tracked.value().item(), 1000.0);
    assert_eq!(fresh[0].fc.params()[0].value(), blocks[0].fc.params()[0].value());

    // A file without the buffers (weights of a model that had none) does not fit.
    let weights_only: Vec<(String, Tensor)> =
        blocks.named_params().into_iter().map(|(n, p)| (n, p.value().clone())).collect();
    let err = assign(&mut fresh, weights_only).unwrap_err();
    assert_eq!(err, AssignError::Missing { name: "0.running_mean".to_string() });
    assert_eq!(err.to_string(), "'0.running_mean' of the model is missing from the file");
    // ... and the model is unchanged.
    assert_eq!(fresh[1].running_mean.value().data(), &[3.0, 4.0]);
}
