//! Replays the fuzzing corpus on stable Rust: every file under `fuzz/corpus/<target>/` goes
//! through the same body its fuzz target runs (`fuzz/src/lib.rs`, included here as a
//! module), which must return (the reader answering `Ok` or `Err`) without panicking. So CI
//! keeps every input the fuzzers found interesting, including the ones that once crashed a
//! reader, passing without needing nightly or libFuzzer. See `fuzz/README.md`.
//!
//! The seed inputs of the corpus (`seed-*`) are made by `seed_corpus_generator` below, which
//! on every run checks that the seeds it makes still pass, and writes them into
//! `fuzz/corpus/` only when asked:
//! `ADAMANT_FUZZ_SEEDS=write cargo test --release --test fuzz_corpus seed_corpus_generator`.

use std::fs;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use adamant::autodiff::{Mode, Tape};
use adamant::checkpoint::{Checkpoint, PartialEpoch, RunIdentity};
use adamant::data::npy::{self, NpyArray, NpyData};
use adamant::data::{cifar, idx};
use adamant::layers::{sequential, serialize, Dense, Module, Params};
use adamant::optim::{build, Optimizer, OptimizerOptions, Schedule, Scheduler};
use adamant::tensor::{rng::seeded, Tensor};
use adamant::train::{EpochMetrics, History};
use flate2::{write::GzEncoder, Compression};
use safetensors::tensor::{Dtype, TensorView};

#[path = "../fuzz/src/lib.rs"]
mod bodies;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

#[test]
fn every_corpus_input_returns_without_panicking() {
    let started = Instant::now();
    for target in bodies::TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        // A missing or emptied corpus must fail, not pass without testing anything.
        assert!(!files.is_empty(), "{}: no corpus inputs", dir.display());
        let body = bodies::body(target);
        for file in &files {
            let bytes = fs::read(file).unwrap();
            if catch_unwind(AssertUnwindSafe(|| body(&bytes))).is_err() {
                panic!("fuzz target '{target}' panics on {} (message above)", file.display());
            }
        }
        println!("{target}: {} inputs replayed", files.len());
    }
    println!("all targets in {:.2?}", started.elapsed());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Bytes `0, step, 2 step, ...` (mod 256): varied pixel values that still compress.
fn pattern(n: usize, step: usize) -> Vec<u8> {
    (0..n).map(|i| (i * step % 256) as u8).collect()
}

/// `bytes` with every occurrence of `from` replaced by `to`, which has the same length (so
/// a safetensors header keeps its declared size).
fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = bytes.to_vec();
    let at = out.windows(from.len()).position(|w| w == from).expect("pattern present");
    out[at..at + from.len()].copy_from_slice(to);
    out
}

/// A checkpoint of `model` after `steps` training steps with `optimizer` (and `scheduler`).
fn checkpoint_after<M: Module>(
    model: &mut M,
    optimizer: &mut dyn Optimizer,
    mut scheduler: Option<&mut Scheduler>,
    steps: u64,
    epochs: usize,
) -> Vec<u8> {
    let inputs = model.params()[0].shape()[1];
    for step in 1..=steps {
        if let Some(s) = scheduler.as_deref_mut() {
            s.step(optimizer);
        }
        let tape = Tape::new(Mode::Train, step);
        let x = Tensor::randn(&[3, inputs], 0.0, 1.0, &mut seeded(step));
        let grads = model.forward(tape.constant(x)).cross_entropy(&[0, 1, 1]).backward();
        optimizer.step(&mut model.params_mut(), &grads);
    }
    let epochs: Vec<EpochMetrics> = (1..=epochs)
        .map(|e| EpochMetrics {
            epoch: e,
            step: steps * e as u64 / epochs as u64,
            train_loss: 0.75 / e as f64,
            train_accuracy: Some(0.5),
            test_loss: 0.8,
            test_accuracy: (e % 2 == 0).then_some(0.625),
            lr: optimizer.lr(),
            seconds: 0.125,
            averaged_test_loss: None,
            averaged_test_accuracy: None,
        })
        .collect();
    let history = History { epochs, iterations: vec![] };
    let n = history.epochs.len();
    let run = RunIdentity::new().with("seed", 7).with("batch_size", 3).with("optimizer", optimizer.name());
    Checkpoint::capture(&*model, optimizer, scheduler.as_deref(), n, steps, &run, &history)
        .to_bytes()
        .unwrap()
}

/// The seed inputs of every target, `fuzz/corpus/<target>/seed-*`: small valid files and a
/// few truncated or corrupted variants. Every seed must pass its target's body (a seed that
/// panics is a bug to fix first). With `ADAMANT_FUZZ_SEEDS=write` they are written into
/// `fuzz/corpus/`: after changing a format, then let the fuzzers and `cargo fuzz cmin` take
/// it from there. Not an ignored test, so that it runs (without writing) in CI and the
/// generator cannot rot.
#[test]
fn seed_corpus_generator() {
    let mut seeds: Vec<(&str, &str, Vec<u8>)> = Vec::new();

    // IDX: images [2, 3, 4] and labels [5], plain and gzip, and broken variants.
    let images = idx::encode(&[2, 3, 4], &pattern(24, 11));
    let labels = idx::encode(&[5], &[0, 9, 3, 3, 7]);
    let mut two_members = gzip(&labels[..6]);
    two_members.extend(gzip(&labels[6..]));
    let gz_images = gzip(&images);
    seeds.extend([
        ("idx", "images-2x3x4.idx", images.clone()),
        ("idx", "labels-5.idx", labels.clone()),
        ("idx", "images-2x3x4.idx.gz", gz_images.clone()),
        ("idx", "labels-5.idx.gz", gzip(&labels)),
        ("idx", "labels-5-two-gzip-members.idx.gz", two_members),
        ("idx", "images-truncated.idx", images[..images.len() - 5].to_vec()),
        ("idx", "images-trailing-garbage.idx", [&images[..], &[0, 0]].concat()),
        ("idx", "images-truncated.idx.gz", gz_images[..gz_images.len() - 6].to_vec()),
        ("idx", "labels-label-10.idx", idx::encode(&[3], &[1, 10, 2])),
    ]);
    // Size bombs (issue 18), 4 KB each: a header for one image followed by 4 MiB of zeros
    // (refused after inflating the image and 1 MiB more), and one declaring 2,048,000,000
    // bytes over those 4 MiB (truncated, found without allocating the declared size).
    let trailing_bomb = gzip(&[&idx::encode(&[1, 28, 28], &[0; 784])[..], &[0; 4 << 20]].concat());
    // `idx::encode` would need the 2 GB of data: that header is written by hand.
    let mut declared = vec![0, 0, 8, 3];
    for d in [40_000u32, 256, 200] {
        declared.extend_from_slice(&d.to_be_bytes());
    }
    declared.resize(declared.len() + (4 << 20), 0);
    let declared_bomb = gzip(&declared);
    let path = Path::new("bomb");
    let m = idx::read_images_from(&trailing_bomb[..], path).unwrap_err().to_string();
    assert!(m.ends_with("(trailing data after the 784 bytes its header declares; not read further)"), "{m}");
    let m = idx::read_images_from(&declared_bomb[..], path).unwrap_err().to_string();
    assert!(m.ends_with("found 4194304 bytes (file truncated?)"), "{m}");
    seeds.extend([
        ("idx", "bomb-4mib-trailing-zeros.idx.gz", trailing_bomb),
        ("idx", "bomb-declares-2gb.idx.gz", declared_bomb),
    ]);

    // CIFAR-10: two records, plain and gzip, and broken variants.
    let mut batch = pattern(2 * cifar::RECORD_BYTES, 7);
    batch[0] = 3;
    batch[cifar::RECORD_BYTES] = 9;
    let mut bad_label = batch.clone();
    bad_label[cifar::RECORD_BYTES] = 10;
    seeds.extend([
        ("cifar", "batch-2.bin", batch.clone()),
        ("cifar", "batch-2.bin.gz", gzip(&batch)),
        ("cifar", "batch-truncated.bin", batch[..cifar::RECORD_BYTES + 100].to_vec()),
        ("cifar", "batch-label-10.bin", bad_label),
    ]);
    // A size bomb (issue 18): one byte more than the 10,000 records a file may hold, all
    // zeros (valid records), 30 KB gzipped; refused after inflating the 10,000 and that byte.
    let bomb = gzip(&vec![0; cifar::MAX_RECORDS * cifar::RECORD_BYTES + 1]);
    let m = cifar::read_batch_from(&bomb[..], Path::new("bomb")).unwrap_err().to_string();
    assert!(m.ends_with("found more than 30730000 bytes (not read further)"), "{m}");
    seeds.push(("cifar", "bomb-10001-records.bin.gz", bomb));

    // NumPy .npy: each dtype read, a version-2.0 header, and broken variants (truncated,
    // Fortran order, big-endian, a shape of 2^60 elements refused before allocating).
    let f32s = npy::encode(&NpyArray {
        shape: vec![2, 3],
        data: NpyData::F32(vec![0.5, -1.0, 2.0, 0.0, 3.5, 1e-3]),
    });
    let f64s = npy::encode(&NpyArray { shape: vec![3], data: NpyData::F64(vec![0.1, -2.0, 7.0]) });
    let bytes = npy::encode(&NpyArray { shape: vec![2, 2, 2], data: NpyData::U8(pattern(8, 5)) });
    let labels = npy::encode(&NpyArray { shape: vec![4], data: NpyData::I64(vec![3, 0, -1, 9]) });
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    let header = &f64s[10..f64s.len() - 24];
    v2.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v2.extend_from_slice(header);
    v2.extend_from_slice(&f64s[f64s.len() - 24..]);
    let mut huge = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824, 1073741824), }\n";
    huge.extend_from_slice(&(header.len() as u16).to_le_bytes());
    huge.extend_from_slice(header.as_bytes());
    huge.extend_from_slice(&[0; 16]);
    let m = npy::parse(&huge, Path::new("huge")).unwrap_err().to_string();
    assert!(m.contains("at most 2147483648 bytes of data"), "{m}");
    assert_eq!(npy::parse(&v2, Path::new("v2")).unwrap().shape, vec![3]);
    seeds.extend([
        ("npy", "f32-2x3.npy", f32s.clone()),
        ("npy", "f64-3.npy", f64s.clone()),
        ("npy", "u8-2x2x2.npy", bytes.clone()),
        ("npy", "i64-labels-negative.npy", labels),
        ("npy", "f64-3-version-2.npy", v2),
        ("npy", "f32-2x3.npy.gz", gzip(&f32s)),
        ("npy", "f32-truncated.npy", f32s[..f32s.len() - 3].to_vec()),
        ("npy", "u8-trailing.npy", [&bytes[..], &[0]].concat()),
        ("npy", "fortran-order.npy", replace(&f32s, "False", "True ")),
        ("npy", "big-endian.npy", replace(&f32s, "<f4", ">f4")),
        ("npy", "shape-2-pow-60.npy", huge),
    ]);

    // safetensors: two small tensors, the tiny model's parameters, and broken variants.
    let (a, b) =
        (Tensor::from_vec(pattern(6, 1).iter().map(|&x| x as f32).collect(), &[2, 3]), Tensor::ones(&[4]));
    let two = serialize::encode_tensors(&[("a".to_string(), &a), ("b".to_string(), &b)]).unwrap();
    let model = bodies::tiny_model();
    let named: Vec<(String, &Tensor)> =
        model.named_params().into_iter().map(|(n, p)| (n, p.value())).collect();
    let params = serialize::encode_tensors(&named).unwrap();
    let mut bad_len = two.clone();
    bad_len[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let u8_data = [1u8, 2, 3];
    let u8_view = TensorView::new(Dtype::U8, vec![3], &u8_data).unwrap();
    seeds.extend([
        ("safetensors", "two-tensors.safetensors", two.clone()),
        ("safetensors", "tiny-model.safetensors", params.clone()),
        ("safetensors", "tiny-model-bias-shape.safetensors", replace(&params, "[3]", "[4]")),
        ("safetensors", "truncated.safetensors", two[..two.len() - 3].to_vec()),
        ("safetensors", "header-length-max.safetensors", bad_len),
        ("safetensors", "u8-tensor.safetensors", safetensors::serialize([("x", u8_view)], None).unwrap()),
    ]);

    // Checkpoints of the tiny model: Adam with a schedule, Adagrad, NAdam (per-parameter
    // scalars), SGD with momentum, one of another model, and broken variants.
    let options = OptimizerOptions::default();
    let mut adam = build("adam", &options).unwrap();
    let mut sched = Scheduler::new(Schedule::CosineAnnealing { t_max: 10, eta_min: 0.0 }, 0.01);
    let adam_ckpt = checkpoint_after(&mut bodies::tiny_model(), adam.as_mut(), Some(&mut sched), 2, 1);
    let mut sgd = build("sgd", &OptimizerOptions { momentum: Some(0.9), ..Default::default() }).unwrap();
    let sgd_ckpt = checkpoint_after(&mut bodies::tiny_model(), sgd.as_mut(), None, 3, 3);
    let mut adagrad = build("adagrad", &options).unwrap();
    let adagrad_ckpt = checkpoint_after(&mut bodies::tiny_model(), adagrad.as_mut(), None, 2, 2);
    let mut nadam = build("nadam", &options).unwrap();
    let nadam_ckpt = checkpoint_after(&mut bodies::tiny_model(), nadam.as_mut(), None, 1, 1);
    let mut other = sequential![Dense::new(2, 2, &mut seeded(1))];
    let mut adam2 = build("adam", &options).unwrap();
    let other_ckpt = checkpoint_after(&mut other, adam2.as_mut(), None, 1, 1);
    // The valid ones must get through `restore` into the target's model, so that the fuzzer
    // starts from inputs that reach it.
    for (bytes, kind, scheduled) in
        [(&adam_ckpt, "adam", true), (&adagrad_ckpt, "adagrad", false), (&nadam_ckpt, "nadam", false)]
    {
        let mut optimizer = build(kind, &options).unwrap();
        let mut scheduler = Scheduler::new(Schedule::Constant, 0.01);
        let ckpt = Checkpoint::from_bytes(bytes).unwrap();
        let scheduler = scheduled.then_some(&mut scheduler);
        ckpt.restore(&mut bodies::tiny_model(), optimizer.as_mut(), scheduler).unwrap();
    }
    // An epoch the history does not back: `fit` would resume at `epoch + 1` (overflow).
    let mut epoch_max = Checkpoint::from_bytes(&adam_ckpt).unwrap();
    epoch_max.epoch = usize::MAX;
    // A NaN weight (refused on reading: training cannot continue from it), and a checkpoint
    // written mid-epoch by an interrupted run.
    let mut nan_weight = Checkpoint::from_bytes(&adam_ckpt).unwrap();
    let mut values = nan_weight.model[0].1.data().to_vec();
    values[0] = f32::NAN;
    nan_weight.model[0].1 = Tensor::from_vec(values, nan_weight.model[0].1.shape());
    let mut mid_epoch = Checkpoint::from_bytes(&sgd_ckpt).unwrap();
    mid_epoch.history.pop();
    mid_epoch.epoch -= 1;
    mid_epoch.partial = Some(PartialEpoch {
        steps: 1,
        loss_sum: 2.25,
        examples: 3,
        correct: 1,
        has_logits: true,
        seconds: 0.5,
    });
    assert!(Checkpoint::from_bytes(&mid_epoch.to_bytes().unwrap()).is_ok());
    seeds.extend([
        ("checkpoint", "nan-weight.ckpt", nan_weight.to_bytes().unwrap()),
        ("checkpoint", "mid-epoch.ckpt", mid_epoch.to_bytes().unwrap()),
        ("checkpoint", "epoch-max.ckpt", epoch_max.to_bytes().unwrap()),
        ("checkpoint", "adam-cosine.ckpt", adam_ckpt.clone()),
        ("checkpoint", "adagrad.ckpt", adagrad_ckpt.clone()),
        // Well-formed but restored with default options, which have no momentum buffer.
        ("checkpoint", "sgd-momentum.ckpt", sgd_ckpt),
        ("checkpoint", "nadam.ckpt", nadam_ckpt),
        ("checkpoint", "other-model.ckpt", other_ckpt),
        ("checkpoint", "truncated.ckpt", adam_ckpt[..adam_ckpt.len() / 2].to_vec()),
        ("checkpoint", "epoch-not-a-number.ckpt", replace(&adam_ckpt, "\"epoch\":\"1\"", "\"epoch\":\"x\"")),
    ]);

    for (target, _, bytes) in &seeds {
        bodies::body(target)(bytes);
    }
    if std::env::var("ADAMANT_FUZZ_SEEDS").as_deref() == Ok("write") {
        for (target, name, bytes) in &seeds {
            fs::create_dir_all(corpus_dir(target)).unwrap();
            fs::write(corpus_dir(target).join(format!("seed-{name}")), bytes).unwrap();
        }
        println!("{} seeds written to fuzz/corpus/", seeds.len());
    }
}
