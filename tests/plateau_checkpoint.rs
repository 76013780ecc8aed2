//! A scheduler with a plateau survives a training checkpoint: written to bytes and restored,
//! it continues bit-identically (rates and plateau state), also when the plateau's best is
//! still infinite; a checkpoint written without a plateau restores into a scheduler with one
//! as a fresh plateau, and a plateau's state refuses to restore into a scheduler without one.
//! In `fit`, the plateau watches each epoch's test loss, its cuts carry through a resume, and
//! a resume with another plateau is refused.

mod common;

use adamant::checkpoint::{Checkpoint, RestoreError, RunIdentity};
use adamant::history::History;
use adamant::layers::{Dense, Params};
use adamant::optim::{build, Optimizer, OptimizerOptions, Plateau, Schedule, Scheduler};
use adamant::tensor::rng::seeded;
use adamant::train::{fit, Classification, FitConfig, TrainError};

/// Test losses: improving, then flat long enough for cuts (patience 1, cooldown 1).
const LOSSES: [f64; 9] = [0.9, 0.7, 0.7, 0.7, 0.7, 0.71, 0.5, 0.5, 0.5];

fn scheduler(base_lr: f32) -> Scheduler {
    let schedule: Schedule = "warmup:6".parse().unwrap();
    let plateau: Plateau = "plateau:1,0.5,0.0001,min,rel,1".parse().unwrap();
    Scheduler::new(schedule, base_lr).with_plateau(plateau)
}

/// Epochs `epochs` of 3 steps each (rates only: the model does not train), each ending with
/// `observe(LOSSES[epoch])`; returns the rates set.
fn epochs(s: &mut Scheduler, optimizer: &mut dyn Optimizer, epochs: std::ops::Range<usize>) -> Vec<f32> {
    let mut rates = Vec::new();
    for epoch in epochs {
        rates.extend((0..3).map(|_| s.step(optimizer)));
        s.observe(LOSSES[epoch]);
    }
    rates
}

/// The scheduler `s` after `done` epochs, through a checkpoint's bytes into `into`.
fn through_checkpoint(s: &Scheduler, done: usize, into: &mut Scheduler) -> Result<(), RestoreError> {
    let mut model = Dense::new(2, 2, &mut seeded(0));
    let mut optimizer = build("adam", &OptimizerOptions::default()).unwrap();
    let history = History::default();
    let mut ckpt = Checkpoint::capture(&model, &*optimizer, Some(s), 0, 0, &RunIdentity::new(), &history);
    assert!(ckpt.first_non_finite().is_none(), "after {done} epochs: {:?}", ckpt.first_non_finite());
    ckpt = Checkpoint::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
    ckpt.restore(&mut model, optimizer.as_mut(), Some(into))
}

#[test]
fn a_plateau_scheduler_resumes_from_a_checkpoint_bit_identically() {
    let mut optimizer = build("sgd", &OptimizerOptions::default()).unwrap();
    let mut straight = scheduler(0.2);
    let rates = epochs(&mut straight, optimizer.as_mut(), 0..LOSSES.len());
    assert!(straight.plateau().unwrap().1.lr < 0.2f32 as f64, "the run cuts the rate");
    for stop in 0..LOSSES.len() {
        let mut first = scheduler(0.2);
        epochs(&mut first, optimizer.as_mut(), 0..stop);
        let mut resumed = scheduler(0.2);
        through_checkpoint(&first, stop, &mut resumed).unwrap();
        assert_eq!(resumed, first, "after {stop} epochs");
        assert_eq!(epochs(&mut resumed, optimizer.as_mut(), stop..LOSSES.len()), rates[stop * 3..]);
        assert_eq!(resumed, straight, "after {stop} epochs");
    }
}

#[test]
fn checkpoints_with_and_without_a_plateau() {
    let mut optimizer = build("sgd", &OptimizerOptions::default()).unwrap();
    // Written without a plateau (as every checkpoint before plateaus existed).
    let mut plain = Scheduler::new("warmup:6".parse().unwrap(), 0.2);
    epochs(&mut plain, optimizer.as_mut(), 0..4);
    let mut with_plateau = scheduler(0.2);
    through_checkpoint(&plain, 4, &mut with_plateau).unwrap();
    assert_eq!(with_plateau.position(), 12);
    let (plateau, state) = with_plateau.plateau().unwrap();
    assert_eq!(state, &plateau.start(0.2f32 as f64));

    // A plateau's state does not restore into a scheduler without one: its cuts would be lost.
    let mut cut = scheduler(0.2);
    epochs(&mut cut, optimizer.as_mut(), 0..5);
    let mut without = Scheduler::new("warmup:6".parse().unwrap(), 0.2);
    let before = without.clone();
    let e = through_checkpoint(&cut, 5, &mut without).unwrap_err().to_string();
    assert!(e.contains("the saved state has a plateau"), "{e}");
    assert_eq!(without, before);
}

/// `epochs` epochs of SGD (lr 0.1) on the blobs with `plateau`, in `dir`, resuming if asked.
fn plateau_run(
    dir: &std::path::Path,
    epochs: usize,
    plateau: &str,
    resume: bool,
) -> Result<(Dense, Vec<f32>), TrainError> {
    let (train, test) = (common::blobs(96, 1), common::blobs(48, 2));
    let mut model = Dense::new(8, 3, &mut seeded(3));
    let mut sgd = build("sgd", &OptimizerOptions { lr: Some(0.1), ..Default::default() }).unwrap();
    let mut scheduler = Scheduler::new(Schedule::Constant, 0.1).with_plateau(plateau.parse().unwrap());
    let config = FitConfig {
        name: "plateau".to_string(),
        epochs,
        batch_size: 32,
        out_dir: Some(dir.to_path_buf()),
        resume,
        progress: false,
        ..Default::default()
    };
    let history =
        fit(&mut model, &Classification, sgd.as_mut(), Some(&mut scheduler), &train, &test, &config)?;
    Ok((model, history.epochs.iter().map(|e| e.lr).collect()))
}

#[test]
fn fit_cuts_the_rate_when_the_test_loss_stalls_and_a_resume_keeps_the_cuts() {
    // A relative threshold of 0.99 counts no epoch after the first as an improvement, so with
    // patience 0 the end of every later epoch halves the rate for the next: the plateau is
    // fed each epoch's test loss (the first sets its best).
    const PLATEAU: &str = "plateau:0,0.5,0.99";
    let straight_dir = common::Scratch::new("plateau-straight");
    let (straight, rates) = plateau_run(&straight_dir, 4, PLATEAU, false).unwrap();
    assert_eq!(rates, [0.1, 0.1, 0.05, 0.025]);

    let resumed_dir = common::Scratch::new("plateau-resumed");
    plateau_run(&resumed_dir, 2, PLATEAU, false).unwrap();
    let (resumed, rates_resumed) = plateau_run(&resumed_dir, 4, PLATEAU, true).unwrap();
    assert_eq!(rates_resumed, rates, "the cuts before the stop carry over");
    let bits = |m: &Dense| {
        m.params().iter().flat_map(|p| p.value().data().to_vec()).map(f32::to_bits).collect::<Vec<_>>()
    };
    assert_eq!(bits(&resumed), bits(&straight));

    // Another plateau is another run.
    let e = plateau_run(&resumed_dir, 5, "plateau:1,0.5,0.99", true).err().expect("refused");
    assert!(matches!(e, TrainError::RunMismatch { .. }), "{e}");
    assert!(e.to_string().contains("plateau plateau:0,0.5,0.99 there, plateau:1,0.5,0.99 here"), "{e}");
}
