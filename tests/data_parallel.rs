//! Data-parallel `fit` over a `ThreadGroup` (N ranks as N threads; the MPI runs of the same
//! code are tests/mpi.rs): N processes compute what one computes up to the order of the
//! gradient sum, a given N gives the same bits every run, rank 0 alone writes, a run resumes
//! with another number of processes, and processes whose weights disagree are stopped with the
//! parameter named.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use adamant::data::Dataset;
use adamant::distributed::{Communicator, ThreadGroup};
use adamant::layers::{nets, sequential, Dense, Dropout, Params, ReLU, Sequential};
use adamant::optim::{build, OptimizerOptions};
use adamant::tensor::{rng::seeded, Tensor};
use adamant::train::{fit, Classification, FitConfig, TrainError};

/// MNIST-shaped random data: 512 images of 784 values, 10 classes.
fn mnist_shaped(n: usize, seed: u64) -> Dataset {
    let mut rng = seeded(seed);
    let images = Tensor::rand_uniform(&[n, 784], 0.0, 1.0, &mut rng);
    Dataset::from_tensors(images, (0..n).map(|i| (i * 7 + 3) % 10).collect()).unwrap()
}

/// What a run ends with: every parameter's values.
type Weights = Vec<(String, Vec<f32>)>;

fn weights(model: &dyn Params) -> Weights {
    model.params().iter().map(|p| (p.name().to_string(), p.value().data().to_vec())).collect()
}

/// Runs `fit` on `ranks` threads (1: no communicator) from the same seed; returns each rank's
/// final weights, or its error.
fn run<M: Params + adamant::layers::Module + Send>(
    ranks: usize,
    make_model: impl Fn(usize) -> M + Sync,
    train: &Dataset,
    test: &Dataset,
    config: &FitConfig,
) -> Vec<Result<Weights, TrainError>> {
    let train_one = |comm: Option<Arc<dyn Communicator>>| {
        let rank = comm.as_ref().map_or(0, |c| c.rank());
        let mut model = make_model(rank);
        let mut adam = build("adam", &OptimizerOptions { lr: Some(1e-3), ..Default::default() }).unwrap();
        let config = FitConfig { distributed: comm, ..config.clone() };
        fit(&mut model, &Classification, adam.as_mut(), None, train, test, &config).map(|_| weights(&model))
    };
    if ranks == 1 {
        return vec![train_one(None)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::ranks(ranks)
            .into_iter()
            .map(|rank| {
                let train_one = &train_one;
                s.spawn(move || train_one(Some(Arc::new(rank))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn config(steps: usize, out: Option<PathBuf>) -> FitConfig {
    FitConfig {
        name: "dp".into(),
        epochs: 1,
        batch_size: 128,
        seed: 5,
        out_dir: out,
        progress: false,
        max_steps_per_epoch: Some(steps),
        eval_batch_size: 100,
        ..Default::default()
    }
}

/// The largest difference between two runs' weights relative to the weights,
/// `||a - b|| / ||a||` over each parameter tensor, and the largest difference of one value.
fn relative_difference(a: &Weights, b: &Weights) -> (f64, f32) {
    let (mut relative, mut largest) = (0f64, 0f32);
    for ((name, x), (other, y)) in a.iter().zip(b) {
        assert_eq!(name, other);
        let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        let diff = x.iter().zip(y).map(|(&u, &v)| (u as f64 - v as f64).powi(2)).sum::<f64>().sqrt();
        relative = relative.max(diff / norm.max(1e-30));
        largest = x.iter().zip(y).fold(largest, |m, (u, v)| m.max((u - v).abs()));
    }
    (relative, largest)
}

#[test]
fn two_and_four_processes_take_the_steps_one_process_takes() {
    // The paper's MLP with dropout, three steps of 128 examples.
    let (train, test) = (mnist_shaped(512, 1), mnist_shaped(100, 2));
    let make = |_| nets::mlp(&mut seeded(3));
    let single = run(1, make, &train, &test, &config(3, None)).remove(0).unwrap();
    for ranks in [2, 4] {
        let results = run(ranks, make, &train, &test, &config(3, None));
        let first = results[0].as_ref().unwrap();
        for (rank, r) in results.iter().enumerate() {
            assert_eq!(r.as_ref().unwrap(), first, "rank {rank} of {ranks} ended with other weights");
        }
        // Adam moves a coordinate whose gradient is near epsilon by an amount that depends on
        // the gradient's last bits; no value may move by a step's worth (lr), and each tensor
        // must agree to 1e-5 of its norm.
        let (difference, largest) = relative_difference(&single, first);
        assert!(difference < 1e-5, "{ranks} processes: weights differ from one process by {difference:e}");
        assert!(largest < 1e-4, "{ranks} processes: one weight differs by {largest:e}");
        // The same number of processes gives the same bits every run.
        assert_eq!(run(ranks, make, &train, &test, &config(3, None))[0].as_ref().unwrap(), first);
        eprintln!("{ranks} processes: relative difference {difference:e}, largest {largest:e}");
    }
}

fn small(rank_seed: u64) -> Sequential {
    let mut rng = seeded(rank_seed);
    sequential![Dense::new(8, 16, &mut rng), ReLU, Dropout::new(0.3), Dense::new(16, 3, &mut rng)]
}

#[test]
fn a_batch_the_processes_cannot_share_is_refused() {
    let (train, test) = (common::blobs(64, 1), common::blobs(30, 2));
    let cfg = FitConfig { batch_size: 30, ..config(2, None) };
    for result in run(4, |_| small(3), &train, &test, &cfg) {
        let error = result.unwrap_err().to_string();
        assert_eq!(
            error,
            "data-parallel training: a batch of 30 cannot be shared evenly by 4 processes; use a batch size that divides by 4"
        );
    }
}

#[test]
fn processes_with_different_weights_are_stopped_naming_the_parameter() {
    let (train, test) = (common::blobs(64, 1), common::blobs(30, 2));
    let cfg = FitConfig { batch_size: 32, ..config(2, None) };
    // Rank 1 starts from other weights: they never agree again.
    let results = run(2, |rank| small(3 + rank as u64), &train, &test, &cfg);
    for result in results {
        let error = result.unwrap_err().to_string();
        assert_eq!(
            error,
            "data-parallel training: after epoch 1 the weights of process 1 differ from process 0's, first at parameter '0.weight'"
        );
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rank_zero_writes_and_a_run_resumes_with_another_number_of_processes() {
    let (train, test) = (common::blobs(256, 1), common::blobs(60, 2));
    let out = common::Scratch::new("data-parallel-resume");
    let cfg = |epochs, dir: &Path, resume| FitConfig {
        batch_size: 32,
        epochs,
        max_steps_per_epoch: None,
        out_dir: Some(dir.to_path_buf()),
        resume,
        ..config(0, None)
    };
    // Straight: 3 epochs on 2 processes. Split: 2 epochs on 2, then the third on 2 again (the
    // same bits) and, from the same checkpoint, on 4 and on 1 (the same run, other sums).
    let straight = out.join("straight");
    let reference = run(2, |_| small(3), &train, &test, &cfg(3, &straight, false)).remove(0).unwrap();
    assert_eq!(file_names(&straight), ["dp.ckpt", "dp.lock", "dp_epochs.csv", "dp_iterations.csv"]);
    // One writer: each of the 24 steps once in the log (two would have appended twice).
    let log = std::fs::read_to_string(straight.join("dp_iterations.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 3 * 8, "{log}");
    let split = out.join("split");
    run(2, |_| small(3), &train, &test, &cfg(2, &split, false)).remove(0).unwrap();
    for ranks in [4, 1, 2] {
        let dir = out.join(format!("resumed-on-{ranks}"));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["dp.ckpt", "dp_epochs.csv", "dp_iterations.csv"] {
            std::fs::copy(split.join(file), dir.join(file)).unwrap();
        }
        let resumed = run(ranks, |_| small(3), &train, &test, &cfg(3, &dir, true)).remove(0).unwrap();
        let epochs = std::fs::read_to_string(dir.join("dp_epochs.csv")).unwrap();
        assert_eq!(epochs.lines().count(), 4, "{ranks} processes: {epochs}");
        if ranks == 2 {
            assert_eq!(resumed, reference, "resumed on the same number of processes: the same bits");
        } else {
            let (difference, _) = relative_difference(&reference, &resumed);
            assert!(difference < 1e-4, "resumed on {ranks} processes: {difference:e}");
        }
    }
}
