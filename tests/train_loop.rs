//! The training loop end to end on a small synthetic problem: it learns, logs, checkpoints,
//! resumes bit-identically, stops on NaN (in a step's loss or in the evaluation) keeping the
//! last good checkpoint, never writes or resumes from a non-finite state, refuses a corrupt
//! checkpoint with an error naming it, and refuses to resume another run's checkpoint.

mod common;

use std::path::Path;

use adamant::checkpoint::{Checkpoint, RunIdentity};
use adamant::layers::{sequential, Dense, Module, ReLU, Sequential};
use adamant::optim::{build, Optimizer, OptimizerOptions, Schedule, Scheduler};
use adamant::tensor::{rng::seeded, Tensor};
use adamant::train::{fit, Classification, FitConfig, TrainError};

fn model(seed: u64) -> Sequential {
    let mut rng = seeded(seed);
    sequential![Dense::new(8, 16, &mut rng), ReLU, Dense::new(16, 3, &mut rng)]
}

/// A scratch directory, deleted when the test ends.
fn temp_dir(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("train-{name}"))
}

fn config(name: &str, dir: &Path, epochs: usize) -> FitConfig {
    FitConfig {
        name: name.to_string(),
        epochs,
        batch_size: 32,
        seed: 7,
        out_dir: Some(dir.to_path_buf()),
        progress: false,
        ..Default::default()
    }
}

fn bits(m: &dyn Module) -> Vec<u32> {
    m.params().iter().flat_map(|p| p.value().data().iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

fn adam() -> Box<dyn Optimizer + Send> {
    build("adam", &OptimizerOptions { lr: Some(0.01), ..Default::default() }).unwrap()
}

#[test]
fn fit_learns_and_writes_logs_and_a_checkpoint() {
    let (train, test) = (common::blobs(600, 1), common::blobs(300, 2));
    let dir = temp_dir("learns");
    let mut m = model(3);
    let mut opt = adam();
    let history =
        fit(&mut m, &Classification, opt.as_mut(), None, &train, &test, &config("run", &dir, 4)).unwrap();
    assert_eq!(history.epochs.len(), 4);
    let first = &history.epochs[0];
    let last = history.last().unwrap();
    assert!(last.train_loss < first.train_loss * 0.5, "{first:?} -> {last:?}");
    assert!(last.test_accuracy.unwrap() > 0.95, "{last:?}");
    assert_eq!(last.step, 4 * 19); // ceil(600 / 32) = 19 steps per epoch
    let epochs_csv = std::fs::read_to_string(dir.join("run_epochs.csv")).unwrap();
    assert_eq!(epochs_csv.lines().count(), 5);
    let iters_csv = std::fs::read_to_string(dir.join("run_iterations.csv")).unwrap();
    assert_eq!(iters_csv.lines().count(), 1 + 4 * 19);
    let ckpt = Checkpoint::read(&dir.join("run.ckpt")).unwrap();
    assert_eq!((ckpt.epoch, ckpt.step), (4, 76));
}

#[test]
fn resume_continues_bit_identically() {
    let (train, test) = (common::blobs(200, 4), common::blobs(60, 5));
    let schedule = Schedule::CosineAnnealing { t_max: 28, eta_min: 0.0 };
    // Straight: 4 epochs.
    let dir_a = temp_dir("straight");
    let mut a = model(6);
    let mut opt_a = adam();
    let mut sched_a = Scheduler::new(schedule, 0.01);
    fit(&mut a, &Classification, opt_a.as_mut(), Some(&mut sched_a), &train, &test, &config("r", &dir_a, 4))
        .unwrap();
    // Interrupted: 2 epochs, then a fresh process state resumes to 4.
    let dir_b = temp_dir("resumed");
    let mut b = model(6);
    let mut opt_b = adam();
    let mut sched_b = Scheduler::new(schedule, 0.01);
    fit(&mut b, &Classification, opt_b.as_mut(), Some(&mut sched_b), &train, &test, &config("r", &dir_b, 2))
        .unwrap();
    let mut c = model(99); // different initial weights: all must come from the checkpoint
    let mut opt_c = adam();
    let mut sched_c = Scheduler::new(schedule, 0.01);
    let resumed = FitConfig { resume: true, ..config("r", &dir_b, 4) };
    let h =
        fit(&mut c, &Classification, opt_c.as_mut(), Some(&mut sched_c), &train, &test, &resumed).unwrap();
    assert_eq!(h.epochs.len(), 4, "history includes the epochs before the resume");
    assert_eq!(bits(&a), bits(&c));
    assert_eq!(
        std::fs::read_to_string(dir_a.join("r_iterations.csv")).unwrap(),
        std::fs::read_to_string(dir_b.join("r_iterations.csv")).unwrap()
    );
}

fn sgd(lr: f32) -> Box<dyn Optimizer + Send> {
    build("sgd", &OptimizerOptions { lr: Some(lr), ..Default::default() }).unwrap()
}

#[test]
fn divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let (train, test) = (common::blobs(200, 8), common::blobs(60, 9));
    let dir = temp_dir("nan");
    let mut m = model(10);
    let mut good = sgd(0.1);
    fit(&mut m, &Classification, good.as_mut(), None, &train, &test, &config("d", &dir, 1)).unwrap();
    let before = std::fs::read(dir.join("d.ckpt")).unwrap();
    // The same run resumed at lr 1e6 (an override): the weights overflow within a few steps.
    let mut diverging = sgd(1e6);
    let resumed = FitConfig { resume: true, resume_override: true, ..config("d", &dir, 5) };
    let err = fit(&mut m, &Classification, diverging.as_mut(), None, &train, &test, &resumed).unwrap_err();
    let msg = err.to_string();
    match err {
        TrainError::NonFinite { step, checkpoint, .. } => {
            assert!((8..5 * 7).contains(&step), "step {step}");
            assert_eq!(checkpoint.as_deref(), Some(dir.join("d.ckpt").as_path()));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(msg.starts_with("training diverged: loss is") && msg.contains("d.ckpt"), "{msg}");
    assert_eq!(std::fs::read(dir.join("d.ckpt")).unwrap(), before, "the last good checkpoint changed");
}

/// A fresh run into a directory holding an earlier run's checkpoint does not name that file
/// as its last good state: it is not this run's (it was, before the fix).
#[test]
fn a_fresh_run_never_names_an_old_checkpoint_as_its_last_good_one() {
    let (train, test) = (common::blobs(200, 8), common::blobs(60, 9));
    let dir = temp_dir("fresh-nan");
    fit(&mut model(10), &Classification, adam().as_mut(), None, &train, &test, &config("d", &dir, 1))
        .unwrap();
    let old = std::fs::read(dir.join("d.ckpt")).unwrap();
    let err =
        fit(&mut model(10), &Classification, sgd(1e6).as_mut(), None, &train, &test, &config("d", &dir, 5))
            .unwrap_err();
    match &err {
        TrainError::NonFinite { checkpoint: None, .. } => {}
        other => panic!("expected NonFinite without a checkpoint, got {other}"),
    }
    assert!(err.to_string().ends_with("no checkpoint was written before it"), "{err}");
    assert_eq!(std::fs::read(dir.join("d.ckpt")).unwrap(), old);
}

/// The update of an epoch's last step is checked by no training loss: with one step per
/// epoch and SGD at lr 1e20 the weights overflow in that update. The evaluation catches it and
/// no checkpoint of the NaN weights is written (before the fix: "test loss NaN", exit 0, and
/// a checkpoint of NaN weights).
#[test]
fn divergence_in_the_last_step_of_an_epoch_is_caught_before_the_checkpoint() {
    let (train, test) = (common::blobs(200, 8), common::blobs(60, 9));
    let dir = temp_dir("last-step");
    let one_step = FitConfig { max_steps_per_epoch: Some(1), ..config("e", &dir, 3) };
    let err =
        fit(&mut model(10), &Classification, sgd(1e20).as_mut(), None, &train, &test, &one_step).unwrap_err();
    match &err {
        TrainError::NonFinite { step: 1, epoch: 1, what, checkpoint: None } => {
            assert!(what.starts_with("test loss is") && what.ends_with("after the epoch"), "{what}");
        }
        other => panic!("expected NonFinite at step 1, got {other}"),
    }
    assert!(!dir.join("e.ckpt").exists(), "a checkpoint of the diverged weights was written");
    assert!(!dir.join("e_epochs.csv").exists(), "the epoch log got ahead of the checkpoints");
}

/// A checkpoint holding a NaN weight (written by hand, or by an older build) is refused on
/// resume with an error naming it and the value, and the model is left as it was.
#[test]
fn resuming_from_a_checkpoint_holding_a_nan_is_refused() {
    let (train, test) = (common::blobs(100, 11), common::blobs(30, 12));
    let dir = temp_dir("nan-ckpt");
    fit(&mut model(13), &Classification, adam().as_mut(), None, &train, &test, &config("n", &dir, 1))
        .unwrap();
    let path = dir.join("n.ckpt");
    let mut c = Checkpoint::read(&path).unwrap();
    let mut values = c.model[0].1.data().to_vec();
    values[5] = f32::NAN;
    c.model[0].1 = Tensor::from_vec(values, c.model[0].1.shape());
    std::fs::write(&path, c.to_bytes().unwrap()).unwrap();
    let mut m = model(13);
    let before = bits(&m);
    let resumed = FitConfig { resume: true, ..config("n", &dir, 2) };
    let err = fit(&mut m, &Classification, adam().as_mut(), None, &train, &test, &resumed).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("n.ckpt") && msg.contains(&format!("model/{}[5] = NaN", c.model[0].0)), "{msg}");
    assert_eq!(bits(&m), before);
}

/// `resume` continues only the run that wrote the checkpoint: another seed (or batch size,
/// or optimizer) is refused naming the setting and both values; `resume_override` continues
/// with this run's values, which later checkpoints record.
#[test]
fn resume_refuses_another_runs_checkpoint_unless_overridden() {
    let (train, test) = (common::blobs(100, 11), common::blobs(30, 12));
    let dir = temp_dir("identity");
    fit(&mut model(13), &Classification, adam().as_mut(), None, &train, &test, &config("i", &dir, 1))
        .unwrap();
    let other_seed = FitConfig { resume: true, seed: 8, batch_size: 16, ..config("i", &dir, 2) };
    let mut m = model(13);
    let before = bits(&m);
    let err = fit(&mut m, &Classification, adam().as_mut(), None, &train, &test, &other_seed).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("was written by another run (seed 7 there, 8 here; batch_size 32 there, 16 here)"),
        "{msg}"
    );
    assert_eq!(bits(&m), before);
    // Settings given by the caller count the same way.
    let other_model =
        FitConfig { resume: true, identity: RunIdentity::new().with("hidden", 64), ..config("i", &dir, 2) };
    let err = fit(&mut m, &Classification, adam().as_mut(), None, &train, &test, &other_model).unwrap_err();
    assert!(err.to_string().contains("(hidden (not set) there, 64 here)"), "{err}");
    // Overridden: it continues, with this run's seed and rate, and records them.
    let overridden = FitConfig { resume_override: true, ..other_seed };
    let mut faster = build("adam", &OptimizerOptions { lr: Some(0.02), ..Default::default() }).unwrap();
    let h = fit(&mut m, &Classification, faster.as_mut(), None, &train, &test, &overridden).unwrap();
    assert_eq!(h.epochs.len(), 2);
    assert_eq!(faster.lr(), 0.02, "the configured rate applies after an override");
    let c = Checkpoint::read(&dir.join("i.ckpt")).unwrap();
    assert_eq!(
        (c.run.get("seed"), c.run.get("batch_size"), c.run.get("lr")),
        (Some("8"), Some("16"), Some("0.02"))
    );
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_it() {
    let (train, test) = (common::blobs(100, 11), common::blobs(30, 12));
    let dir = temp_dir("corrupt");
    let mut m = model(13);
    let mut opt = adam();
    fit(&mut m, &Classification, opt.as_mut(), None, &train, &test, &config("c", &dir, 1)).unwrap();
    let path = dir.join("c.ckpt");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let resumed = FitConfig { resume: true, ..config("c", &dir, 2) };
    let mut m2 = model(13);
    let before = bits(&m2);
    let err = fit(&mut m2, &Classification, opt.as_mut(), None, &train, &test, &resumed).unwrap_err();
    assert!(err.to_string().contains("c.ckpt"), "{err}");
    assert_eq!(bits(&m2), before);
    // A checkpoint of another optimizer does not load either.
    std::fs::write(&path, &bytes).unwrap();
    let mut sgd = build("sgd", &OptimizerOptions::default()).unwrap();
    let err = fit(&mut m2, &Classification, sgd.as_mut(), None, &train, &test, &resumed).unwrap_err();
    assert!(err.to_string().contains("optimizer adam there, sgd here"), "{err}");
    assert_eq!(bits(&m2), before);
    // Not even when told to override the settings: the state is of another optimizer.
    let forced = FitConfig { resume_override: true, ..resumed };
    let err = fit(&mut m2, &Classification, sgd.as_mut(), None, &train, &test, &forced).unwrap_err();
    assert!(err.to_string().contains("'adam'") && err.to_string().contains("'sgd'"), "{err}");
    assert_eq!(bits(&m2), before);
}

/// Classification that raises `flag` on its `at`-th forward pass, as a Ctrl-C handler would
/// between two steps.
struct InterruptAt {
    at: usize,
    calls: std::cell::Cell<usize>,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<M: Module + ?Sized> adamant::train::Task<M> for InterruptAt {
    fn forward<'t>(
        &self,
        model: &M,
        images: adamant::autodiff::Var<'t>,
        labels: &[usize],
    ) -> adamant::train::StepOutput<'t> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == self.at {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Classification.forward(model, images, labels)
    }
}

/// An interrupted run finishes its step, writes a mid-epoch checkpoint and returns
/// `Interrupted`; resumed, it ends bit-identical to a run never interrupted, its logs too.
#[test]
fn an_interrupted_run_resumes_mid_epoch_bit_identically() {
    let (train, test) = (common::blobs(200, 4), common::blobs(60, 5));
    let schedule = Schedule::CosineAnnealing { t_max: 21, eta_min: 0.0 };
    let straight = temp_dir("interrupt-straight");
    let mut a = model(6);
    let mut sched_a = Scheduler::new(schedule, 0.01);
    fit(
        &mut a,
        &Classification,
        adam().as_mut(),
        Some(&mut sched_a),
        &train,
        &test,
        &config("r", &straight, 3),
    )
    .unwrap();

    let stopped = temp_dir("interrupt-stopped");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The 10th forward pass is step 9 of 21 (epoch 1's 7 steps and its evaluation came
    // first; epochs of 7 steps): it raises the flag, the step completes, and the loop stops
    // before step 10, two steps into epoch 2.
    let task = InterruptAt { at: 10, calls: Default::default(), flag: flag.clone() };
    let interruptible = FitConfig { interrupt: Some(flag.clone()), ..config("r", &stopped, 3) };
    let mut b = model(6);
    let mut sched_b = Scheduler::new(schedule, 0.01);
    let err =
        fit(&mut b, &task, adam().as_mut(), Some(&mut sched_b), &train, &test, &interruptible).unwrap_err();
    match &err {
        TrainError::Interrupted { step: 9, epoch: 2, checkpoint: Some(path) } => {
            assert_eq!(path, &stopped.join("r.ckpt"))
        }
        other => panic!("expected Interrupted at step 9, got {other}"),
    }
    let saved = Checkpoint::read(&stopped.join("r.ckpt")).unwrap();
    assert_eq!((saved.epoch, saved.step, saved.partial.as_ref().map(|p| p.steps)), (1, 9, Some(2)));

    let mut c = model(99);
    let mut sched_c = Scheduler::new(schedule, 0.01);
    let resumed = FitConfig { resume: true, ..config("r", &stopped, 3) };
    let h =
        fit(&mut c, &Classification, adam().as_mut(), Some(&mut sched_c), &train, &test, &resumed).unwrap();
    assert_eq!(h.epochs.len(), 3);
    assert_eq!(bits(&a), bits(&c));
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(read(&straight, "r_iterations.csv"), read(&stopped, "r_iterations.csv"));
    assert_eq!(
        common::without_seconds(&read(&straight, "r_epochs.csv")),
        common::without_seconds(&read(&stopped, "r_epochs.csv"))
    );

    // Raised before the first step of a fresh run: nothing to save, nothing saved.
    let early = temp_dir("interrupt-early");
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let at_once = FitConfig { interrupt: Some(flag), ..config("e", &early, 3) };
    let err =
        fit(&mut model(6), &Classification, adam().as_mut(), None, &train, &test, &at_once).unwrap_err();
    assert!(matches!(err, TrainError::Interrupted { step: 0, checkpoint: None, .. }), "{err}");
    assert!(!early.join("e.ckpt").exists());
}

/// A second run on the same files is refused while the first holds them (the lock is per
/// run name, so other runs in the same directory go on), and works once it is released.
#[test]
fn a_second_run_on_the_same_files_is_refused_while_the_first_holds_them() {
    let (train, test) = (common::blobs(100, 11), common::blobs(30, 12));
    let dir = temp_dir("lock");
    std::fs::create_dir_all(&dir.0).unwrap();
    // Another process's lock, as `fit` takes it (an open file description of its own).
    let held = std::fs::File::create(dir.join("l.lock")).unwrap();
    held.try_lock().unwrap();
    std::fs::write(dir.join("l.lock"), "4242\n").unwrap();
    let err =
        fit(&mut model(13), &Classification, adam().as_mut(), None, &train, &test, &config("l", &dir, 1))
            .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TrainError::Locked { holder: Some(4242), .. }), "{msg}");
    assert!(msg.contains("l.lock: process 4242 is running with this run's files"), "{msg}");
    assert!(!dir.join("l.ckpt").exists() && !dir.join("l_epochs.csv").exists());
    // Another name in the same directory (a shard of a sweep) is not held up.
    fit(&mut model(13), &Classification, adam().as_mut(), None, &train, &test, &config("other", &dir, 1))
        .unwrap();
    drop(held);
    fit(&mut model(13), &Classification, adam().as_mut(), None, &train, &test, &config("l", &dir, 1))
        .unwrap();
}

/// A checkpoint file far larger than any of this model's could be (a 1 GiB sparse file in
/// its place) is refused from its length, naming it, without being read into memory.
#[test]
fn an_oversized_checkpoint_is_refused_unread() {
    let (train, test) = (common::blobs(100, 11), common::blobs(30, 12));
    let dir = temp_dir("huge-ckpt");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = std::fs::File::create(dir.join("h.ckpt")).unwrap();
    file.set_len(1 << 30).unwrap();
    let resumed = FitConfig { resume: true, ..config("h", &dir, 1) };
    let started = std::time::Instant::now();
    let err =
        fit(&mut model(13), &Classification, adam().as_mut(), None, &train, &test, &resumed).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("h.ckpt") && msg.contains("the file is 1073741824 bytes, more than the"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
}
