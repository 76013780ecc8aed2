//! A user's own data in the training loop: a [`Dataset::from_tensors`] trains with `fit`, and
//! `FitConfig::augment` crops and flips exactly the training batches (as
//! [`Augment::apply`] on the epoch's shuffled batches), never the evaluation ones, the same
//! in every run, and is part of the run's identity on resume.

mod common;

use std::cell::RefCell;

use adamant::autodiff::Var;
use adamant::checkpoint::Checkpoint;
use adamant::data::{Augment, BatchOptions, Batches, Dataset};
use adamant::layers::{sequential, Dense, Module, Sequential};
use adamant::optim::{build, Optimizer, OptimizerOptions};
use adamant::tensor::{rng::seeded, Tensor};
use adamant::train::{fit, FitConfig, StepOutput, Task, TrainError};

/// `n` one-channel 6x6 images whose class (0..3) is which third of the image is bright.
fn images(n: usize, seed: u64) -> Dataset {
    let mut rng = seeded(seed);
    let mut x = Tensor::rand_uniform(&[n, 1, 6, 6], 0.0, 0.3, &mut rng).into_vec();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    for (i, &l) in labels.iter().enumerate() {
        for y in 0..6 {
            for col in 2 * l..2 * l + 2 {
                x[i * 36 + y * 6 + col] += 1.0;
            }
        }
    }
    Dataset::from_tensors(Tensor::from_vec(x, &[n, 1, 6, 6]), labels).unwrap()
}

fn model() -> Sequential {
    sequential![Dense::new(36, 3, &mut seeded(1))]
}

fn adam() -> Box<dyn Optimizer + Send> {
    build("adam", &OptimizerOptions { lr: Some(0.05), ..Default::default() }).unwrap()
}

/// Classification on the flattened images, keeping every batch it is given and whether it
/// came in a training step or an evaluation.
#[derive(Default)]
struct Recorder {
    seen: RefCell<Vec<(bool, Tensor)>>,
}

impl Task<Sequential> for Recorder {
    fn forward<'t>(&self, model: &Sequential, images: Var<'t>, labels: &[usize]) -> StepOutput<'t> {
        self.seen.borrow_mut().push((images.tape().is_training(), images.value()));
        let logits = model.forward(images.flatten());
        StepOutput { loss: logits.cross_entropy(labels), logits: Some(logits) }
    }
}

fn config(augment: Option<Augment>) -> FitConfig {
    FitConfig { epochs: 2, batch_size: 16, seed: 5, progress: false, augment, ..Default::default() }
}

fn bits(m: &dyn Module) -> Vec<u32> {
    m.params().iter().flat_map(|p| p.value().data().iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

#[test]
fn a_dataset_from_tensors_trains_with_fit() {
    let (train, test) = (images(90, 2), images(30, 3));
    let mut m = model();
    let h = fit(&mut m, &Recorder::default(), adam().as_mut(), None, &train, &test, &config(None)).unwrap();
    let last = h.last().unwrap();
    assert!(last.test_accuracy.unwrap() > 0.9, "{last:?}");
}

#[test]
fn augmentation_changes_exactly_the_training_batches() {
    let (train, test) = (images(40, 2), images(24, 3));
    let augment = Augment { crop_padding: 2, horizontal_flip: true };
    let task = Recorder::default();
    let cfg = FitConfig { eval_batch_size: 10, ..config(Some(augment)) };
    fit(&mut model(), &task, adam().as_mut(), None, &train, &test, &cfg).unwrap();
    let seen = task.seen.into_inner();
    let (mut train_seen, mut eval_seen) = (vec![], vec![]);
    for (training, t) in seen {
        if training {
            train_seen.push(t)
        } else {
            eval_seen.push(t)
        }
    }
    // Training: each epoch's batches, in fit's order, cropped and flipped per example.
    let mut expected = vec![];
    for epoch in 1..=2 {
        let options = BatchOptions { batch_size: 16, seed: 5, epoch, ..BatchOptions::default() };
        for batch in Batches::new(&train, options) {
            let plain = batch.images.clone();
            let augmented = augment.apply(&batch.images, &batch.indices, 5, epoch);
            assert_ne!(augmented, plain, "some image of the batch moved");
            expected.push(augmented);
        }
    }
    assert_eq!(train_seen, expected);
    // Evaluation (the test set after each epoch, in batches of 10): the rows as they are.
    let untouched: Vec<Tensor> =
        (0..24).step_by(10).map(|s| test.images.slice_rows(s, (s + 10).min(24))).collect();
    assert_eq!(eval_seen, [&untouched[..], &untouched[..]].concat());
}

#[test]
fn augmented_runs_repeat_bit_for_bit_and_differ_from_plain_ones() {
    let (train, test) = (images(48, 2), images(12, 3));
    let run = |augment| {
        let mut m = model();
        fit(&mut m, &Recorder::default(), adam().as_mut(), None, &train, &test, &config(augment)).unwrap();
        bits(&m)
    };
    let a = run(Some(Augment::default()));
    assert_eq!(a, run(Some(Augment::default())));
    assert_ne!(a, run(None));
}

#[test]
fn resume_with_another_augmentation_is_refused() {
    let (train, test) = (images(48, 2), images(12, 3));
    let dir = common::Scratch::new("own-data-augment");
    let at = |epochs, augment, resume| FitConfig {
        name: "aug".into(),
        out_dir: Some(dir.to_path_buf()),
        epochs,
        resume,
        ..config(augment)
    };
    let task = Recorder::default();
    fit(&mut model(), &task, adam().as_mut(), None, &train, &test, &at(1, Some(Augment::default()), false))
        .unwrap();
    assert_eq!(Checkpoint::read(&dir.join("aug.ckpt")).unwrap().run.get("augment"), Some("crop4+flip"));
    for other in [None, Some(Augment { horizontal_flip: false, ..Augment::default() })] {
        let err =
            fit(&mut model(), &task, adam().as_mut(), None, &train, &test, &at(2, other, true)).unwrap_err();
        let TrainError::RunMismatch { conflicts, .. } = &err else { panic!("{err}") };
        assert_eq!(conflicts.len(), 1, "{err}");
        assert_eq!(conflicts[0].setting, "augment");
        assert_eq!(conflicts[0].saved.as_deref(), Some("crop4+flip"));
    }
    let h = fit(
        &mut model(),
        &task,
        adam().as_mut(),
        None,
        &train,
        &test,
        &at(2, Some(Augment::default()), true),
    )
    .unwrap();
    assert_eq!(h.epochs.len(), 2);
}

#[test]
#[should_panic(
    expected = "fit: FitConfig::augment crops and flips images [N, C, H, W], but the training set's are [6, 4]"
)]
fn augmenting_flat_features_is_a_programmer_error() {
    let flat = Dataset::from_tensors(Tensor::zeros(&[6, 4]), vec![0; 6]).unwrap();
    let mut m = sequential![Dense::new(4, 2, &mut seeded(0))];
    let _ = fit(
        &mut m,
        &adamant::train::Classification,
        adam().as_mut(),
        None,
        &flat,
        &flat,
        &config(Some(Augment::default())),
    );
}

#[test]
fn the_augment_flag_is_refused_on_flat_images_before_training() {
    let dir = common::Scratch::new("own-data-cli");
    let out = common::mnist_mlp_command(&dir, 1, &["--augment", "--epochs", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--augment")
            && stderr.contains("crops and flips images [N, C, H, W]; mnist's training set is ["),
        "{stderr}"
    );
    assert!(!dir.join("mnist_mlp_adam.ckpt").exists(), "nothing trained");
}
