//! Weight averaging and gradient accumulation in the training loop: the average changes
//! nothing of the training itself, is evaluated after each epoch (its CSV columns only when
//! it is on), is checkpointed and resumed bit-identically (mid-epoch too), stays out of the
//! run identity when off so older checkpoints keep resuming; one accumulated step of 4
//! micro-batches of 8 equals one step on the batch of those 32 examples.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use adamant::autodiff::Var;
use adamant::checkpoint::Checkpoint;
use adamant::data::batch::{BatchOptions, Batches};
use adamant::layers::{sequential, BatchNorm1d, Dense, Dropout, Module, Params, ReLU, Sequential};
use adamant::optim::{build, Averaging, Optimizer, OptimizerOptions};
use adamant::tensor::rng::seeded;
use adamant::train::{fit, Classification, FitConfig, StepOutput, Task, TrainError};

/// With batch norm (buffers to average, a counter among them) and dropout (per-step masks).
fn model(seed: u64) -> Sequential {
    let mut rng = seeded(seed);
    sequential![
        Dense::new(8, 16, &mut rng),
        BatchNorm1d::new(16),
        ReLU,
        Dropout::new(0.2),
        Dense::new(16, 3, &mut rng)
    ]
}

fn config(name: &str, dir: &Path, epochs: usize) -> FitConfig {
    FitConfig {
        name: name.to_string(),
        epochs,
        batch_size: 32,
        seed: 7,
        out_dir: Some(dir.to_path_buf()),
        progress: false,
        average: Some(Averaging::Ema { decay: 0.9 }),
        ..Default::default()
    }
}

fn adam() -> Box<dyn Optimizer + Send> {
    build("adam", &OptimizerOptions { lr: Some(0.01), ..Default::default() }).unwrap()
}

/// Every parameter's and buffer's bits.
fn bits(m: &dyn Module) -> Vec<u32> {
    let mut out: Vec<u32> =
        m.params().iter().flat_map(|p| p.value().data().to_vec()).map(f32::to_bits).collect();
    out.extend(m.named_buffers().iter().flat_map(|(_, b)| b.value().data().to_vec()).map(f32::to_bits));
    out
}

fn average_bits(dir: &Path, name: &str) -> Vec<(String, Vec<u32>)> {
    let saved = Checkpoint::read(&dir.join(format!("{name}.ckpt"))).unwrap().average.expect("an average");
    saved
        .tensors
        .iter()
        .map(|(n, t, _)| (n.clone(), t.data().iter().map(|x| x.to_bits()).collect()))
        .collect()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[test]
fn averaging_changes_no_training_step_and_reports_averaged_test_metrics() {
    let (train, test) = (common::blobs(200, 4), common::blobs(60, 5));
    let plain_dir = common::Scratch::new("avg-plain");
    let plain = FitConfig { average: None, ..config("r", &plain_dir, 2) };
    let mut a = model(6);
    let h_plain = fit(&mut a, &Classification, adam().as_mut(), None, &train, &test, &plain).unwrap();
    let ema_dir = common::Scratch::new("avg-ema");
    let mut b = model(6);
    let h = fit(&mut b, &Classification, adam().as_mut(), None, &train, &test, &config("r", &ema_dir, 2))
        .unwrap();
    // The raw weights and every logged loss are those of the run without averaging: the
    // evaluation with averaged weights puts the model's own back exactly.
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(read(&plain_dir, "r_iterations.csv"), read(&ema_dir, "r_iterations.csv"));
    for (p, e) in h_plain.epochs.iter().zip(&h.epochs) {
        assert_eq!(
            (p.test_loss, p.test_accuracy, p.averaged_test_loss),
            (e.test_loss, e.test_accuracy, None)
        );
        let (loss, accuracy) = (e.averaged_test_loss.unwrap(), e.averaged_test_accuracy.unwrap());
        assert!(loss.is_finite() && loss != e.test_loss && (0.0..=1.0).contains(&accuracy), "{e:?}");
    }
    // The averaged columns only where the run averages; the identity names it only there.
    let header = |dir: &Path| read(dir, "r_epochs.csv").lines().next().unwrap().to_string();
    assert_eq!(header(&plain_dir), "epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,lr,seconds");
    assert!(header(&ema_dir).ends_with(",seconds,averaged_test_loss,averaged_test_accuracy"));
    let saved = Checkpoint::read(&plain_dir.join("r.ckpt")).unwrap();
    assert_eq!(
        (saved.run.get("average"), saved.run.get("accumulate"), saved.average.is_none()),
        (None, None, true)
    );
    let saved = Checkpoint::read(&ema_dir.join("r.ckpt")).unwrap();
    assert_eq!(saved.run.get("average"), Some("ema:0.9"));
    assert_eq!(saved.history, h.epochs, "the averaged metrics round-trip through the checkpoint");
    // One update per optimizer step: 2 epochs of ceil(200 / 32) = 7.
    assert_eq!(saved.average.unwrap().updates, 14);
}

/// A task that raises the interrupt flag on its `at`-th forward pass.
struct InterruptAt {
    at: usize,
    calls: AtomicUsize,
    flag: Arc<AtomicBool>,
}

impl<M: Module + ?Sized> Task<M> for InterruptAt {
    fn forward<'t>(&self, model: &M, images: Var<'t>, labels: &[usize]) -> StepOutput<'t> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
        Classification.forward(model, images, labels)
    }
}

#[test]
fn an_averaging_accumulating_run_resumes_bit_identically_mid_epoch_and_between_epochs() {
    let (train, test) = (common::blobs(200, 4), common::blobs(60, 5));
    // 2 micro-batches of 16 per step: ceil(13 / 2) = 7 steps per epoch, the last one short.
    let setup = |dir: &Path, epochs| FitConfig {
        batch_size: 16,
        accumulate: 2,
        average: Some(Averaging::Temporal { beta2: 0.99 }),
        ..config("r", dir, epochs)
    };
    let straight = common::Scratch::new("avg-straight");
    let mut a = model(6);
    let h = fit(&mut a, &Classification, adam().as_mut(), None, &train, &test, &setup(&straight, 3)).unwrap();
    assert_eq!(h.last().unwrap().step, 21);

    let stopped = common::Scratch::new("avg-stopped");
    let flag = Arc::new(AtomicBool::new(false));
    // Forward pass 20: epoch 1 took 13 micro-batches and one evaluation pass (60 test examples,
    // then its averaged one: 15 calls); calls 16..=19 are steps 8 and 9, and call 20 is step
    // 10's first micro-batch: the loop stops after step 10, three steps into epoch 2.
    let task = InterruptAt { at: 20, calls: AtomicUsize::new(0), flag: flag.clone() };
    let interruptible = FitConfig { interrupt: Some(flag), ..setup(&stopped, 3) };
    let err = fit(&mut model(6), &task, adam().as_mut(), None, &train, &test, &interruptible).unwrap_err();
    assert!(matches!(err, TrainError::Interrupted { step: 10, epoch: 2, checkpoint: Some(_) }), "{err}");
    let saved = Checkpoint::read(&stopped.join("r.ckpt")).unwrap();
    assert_eq!((saved.step, saved.average.as_ref().unwrap().updates), (10, 10));

    // Resumed into a model of other weights: everything comes from the checkpoint. First to
    // the end of epoch 2, then (another process) to 3.
    let mut c = model(99);
    fit(
        &mut c,
        &Classification,
        adam().as_mut(),
        None,
        &train,
        &test,
        &FitConfig { resume: true, ..setup(&stopped, 2) },
    )
    .unwrap();
    let mut d = model(98);
    fit(
        &mut d,
        &Classification,
        adam().as_mut(),
        None,
        &train,
        &test,
        &FitConfig { resume: true, ..setup(&stopped, 3) },
    )
    .unwrap();
    assert_eq!(bits(&a), bits(&d));
    assert_eq!(average_bits(&straight, "r"), average_bits(&stopped, "r"));
    assert_eq!(read(&straight, "r_iterations.csv"), read(&stopped, "r_iterations.csv"));
    assert_eq!(
        common::without_seconds(&read(&straight, "r_epochs.csv")),
        common::without_seconds(&read(&stopped, "r_epochs.csv"))
    );
}

#[test]
fn a_checkpoint_without_an_average_resumes_only_with_the_same_settings_or_an_override() {
    let (train, test) = (common::blobs(100, 4), common::blobs(30, 5));
    let dir = common::Scratch::new("avg-old");
    let plain = FitConfig { average: None, ..config("r", &dir, 1) };
    fit(&mut model(6), &Classification, adam().as_mut(), None, &train, &test, &plain).unwrap();
    // Its own settings: resumes (a checkpoint as earlier versions wrote it).
    fit(
        &mut model(6),
        &Classification,
        adam().as_mut(),
        None,
        &train,
        &test,
        &FitConfig { resume: true, epochs: 2, ..plain.clone() },
    )
    .unwrap();
    let averaged = FitConfig { resume: true, ..config("r", &dir, 3) };
    let err =
        fit(&mut model(6), &Classification, adam().as_mut(), None, &train, &test, &averaged).unwrap_err();
    assert!(err.to_string().contains("average (not set) there, ema:0.9 here"), "{err}");
    // Overridden: the average starts with the resumed run.
    let overridden = FitConfig { resume_override: true, ..averaged };
    let h = fit(&mut model(6), &Classification, adam().as_mut(), None, &train, &test, &overridden).unwrap();
    assert_eq!(
        h.epochs.iter().map(|e| e.averaged_test_loss.is_some()).collect::<Vec<_>>(),
        [false, false, true]
    );
    let saved = Checkpoint::read(&dir.join("r.ckpt")).unwrap();
    assert_eq!(saved.average.unwrap().updates, 4, "one epoch of ceil(100 / 32) steps");
}

#[test]
fn one_accumulated_step_equals_one_step_on_the_big_batch() {
    let train = common::blobs(96, 8);
    let test = common::blobs(10, 9);
    // The 32 examples of the big batch are the first four micro-batches of 8: the epoch's
    // order does not depend on the batch size.
    let first = |batch_size, take| -> Vec<usize> {
        let options = BatchOptions { batch_size, shuffle: true, drop_last: false, seed: 7, epoch: 1 };
        Batches::new(&train, options).take(take).flat_map(|b| b.labels).collect()
    };
    assert_eq!(first(8, 4), first(32, 1));
    let images = |batch_size, take| -> Vec<f32> {
        let options = BatchOptions { batch_size, shuffle: true, drop_last: false, seed: 7, epoch: 1 };
        Batches::new(&train, options).take(take).flat_map(|b| b.images.data().to_vec()).collect()
    };
    assert_eq!(images(8, 4), images(32, 1));

    let no_dropout = |seed| {
        let mut rng = seeded(seed);
        sequential![Dense::new(8, 16, &mut rng), ReLU, Dense::new(16, 3, &mut rng)]
    };
    let one_step = |batch_size, accumulate| {
        let mut m = no_dropout(3);
        let config = FitConfig {
            batch_size,
            accumulate,
            max_steps_per_epoch: Some(1),
            seed: 7,
            progress: false,
            ..Default::default()
        };
        let mut sgd = build("sgd", &OptimizerOptions { lr: Some(0.5), ..Default::default() }).unwrap();
        let h = fit(&mut m, &Classification, sgd.as_mut(), None, &train, &test, &config).unwrap();
        assert_eq!(h.last().unwrap().step, 1);
        (m, h.iterations[0].1)
    };
    let (big, big_loss) = one_step(32, 1);
    let (accumulated, accumulated_loss) = one_step(8, 4);
    let start = no_dropout(3);
    let mut moved = 0.0f32;
    for ((p, q), p0) in big.params().iter().zip(accumulated.params()).zip(start.params()) {
        for ((&x, &y), &x0) in p.value().data().iter().zip(q.value().data()).zip(p0.value().data()) {
            assert!((x - y).abs() <= 1e-6, "{}: {x} vs {y}", p.name());
            moved = moved.max((x - x0).abs());
        }
    }
    assert!(moved > 1e-2, "the step moved the weights ({moved})");
    // The logged loss is the step's mean over its 32 examples.
    assert!((big_loss - accumulated_loss).abs() <= 1e-6, "{big_loss} vs {accumulated_loss}");
    // Steps per epoch count optimizer steps: 12 micro-batches of 8, 3 steps of 4.
    let config = FitConfig { batch_size: 8, accumulate: 4, ..Default::default() };
    assert_eq!(config.steps_per_epoch(96), 3);
    assert_eq!(FitConfig { accumulate: 5, ..config }.steps_per_epoch(96), 3);
}
