//! The same seed gives bit-identical training: two runs of `mnist_mlp`, and 1 against 2
//! rayon threads, end with the same weights, optimizer state and per-step losses.
//!
//! Every parallel kernel cuts its work at boundaries that do not depend on the thread count
//! and combines partial results in a fixed order, and dropout masks are a pure function of
//! (seed, step, node, element); this test is what holds the whole training step to that.

mod common;

use std::path::Path;

/// Trains `mnist_mlp` with `threads` threads into `out` and returns its final state and the
/// per-step loss log.
fn train(out: &Path, threads: usize, extra: &[&str]) -> (String, String) {
    let status = common::mnist_mlp_command(out, threads, extra).status().unwrap();
    assert!(status.success(), "mnist_mlp failed with {threads} threads");
    let state = common::checkpoint_state(&out.join("mnist_mlp_adam.ckpt"));
    let losses = std::fs::read_to_string(out.join("mnist_mlp_adam_iterations.csv")).unwrap();
    (state, losses)
}

fn assert_identical(runs: &[(String, String)], what: &str) {
    let (first_state, first_losses) = &runs[0];
    assert!(first_losses.lines().count() > 10, "{what}: too few steps logged");
    for (i, (state, losses)) in runs.iter().enumerate().skip(1) {
        assert!(losses == first_losses, "{what}: run {i}'s per-step losses differ from run 0's");
        assert!(state == first_state, "{what}: run {i}'s weights or optimizer state differ from run 0's");
    }
}

#[test]
fn mnist_mlp_is_bit_identical_across_runs_and_thread_counts() {
    let scratch = common::Scratch::new("determinism");
    // One epoch over 2,560 images of mnist-mini: 20 steps with dropout and Adam.
    let args = ["--epochs", "1", "--train-subset", "2560", "--seed", "7"];
    let runs: Vec<_> = [(1, "a"), (2, "b"), (2, "c")]
        .iter()
        .map(|&(threads, name)| train(&scratch.0.join(name), threads, &args))
        .collect();
    assert_identical(&runs, "mnist-mini subset");
}

#[test]
#[ignore = "needs ../shared/datasets (MNIST)"]
fn one_full_mnist_epoch_is_bit_identical_across_runs_and_thread_counts() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/mnist");
    assert!(data.is_dir(), "MNIST not found at {}", data.display());
    let scratch = common::Scratch::new("determinism-full");
    let data = data.to_str().unwrap().to_string();
    // --data after the helper's mnist-mini: the last one given wins.
    let args = ["--epochs", "1", "--seed", "7", "--test-subset", "10000", "--data", &data];
    let runs: Vec<_> = [(1, "a"), (2, "b"), (2, "c")]
        .iter()
        .map(|&(threads, name)| train(&scratch.0.join(name), threads, &args))
        .collect();
    assert_identical(&runs, "full MNIST, one epoch");
}
