//! Data-parallel training over MPI, end to end: `mpirun -n 2` and `-n 4` (the second over TCP,
//! `--mca btl tcp,self`, so that the network path runs) of `mnist_mlp --distributed` take the
//! steps one process takes up to the order of the gradient sum, give the same bits on every
//! run, print one JSON line, and a one-epoch MNIST run's accuracy matches one process's;
//! `char_gpt` and `makemore` run on 2 processes and print one JSON line (their steps against
//! one process's are tests/char_gpt_distributed.rs, over threads).
//!
//! Built only with the cargo feature `mpi` (`.ci/run` installs OpenMPI and runs
//! `cargo test --release --features mpi --test mpi -- --include-ignored`).
#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::Command;

use adamant::checkpoint::Checkpoint;

/// `mnist_mlp` on `ranks` MPI processes (1: no mpirun), one thread each, with `args`; its stdout.
fn mnist_mlp(ranks: usize, tcp: bool, out: &Path, data: &str, args: &[&str]) -> String {
    let binary = common::example_binary("mnist_mlp");
    let mut command = if ranks == 1 {
        let mut c = Command::new(&binary);
        c.env("RAYON_NUM_THREADS", "2");
        c
    } else {
        let mut c = Command::new("mpirun");
        c.args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            &ranks.to_string(),
            "-x",
            "RAYON_NUM_THREADS=1",
        ]);
        if tcp {
            c.args(["--mca", "btl", "tcp,self"]);
        }
        c.arg(&binary).arg("--distributed");
        c
    };
    command.args(["--data", data, "--no-progress", "--json", "--out"]).arg(out).args(args);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (apt-get install openmpi-bin): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{ranks} ranks: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The model's parameters in the checkpoint of `out`, by name.
fn weights(out: &Path) -> Vec<(String, Vec<f32>)> {
    let checkpoint = Checkpoint::read(&out.join("mnist_mlp_adam.ckpt")).unwrap();
    checkpoint.model.into_iter().map(|(name, t)| (name, t.into_vec())).collect()
}

fn relative_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((n, x), (m, y))| {
            assert_eq!(n, m);
            let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            let diff = x.iter().zip(y).map(|(&u, &v)| (u as f64 - v as f64).powi(2)).sum::<f64>().sqrt();
            diff / norm
        })
        .fold(0.0, f64::max)
}

const MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/mnist-mini");

#[test]
fn two_and_four_ranks_take_one_process_steps_and_repeat_their_bits() {
    let scratch = common::Scratch::new("mpi-steps");
    let args = ["--epochs", "1", "--steps-per-epoch", "3", "--test-subset", "500"];
    let single = scratch.join("single");
    mnist_mlp(1, false, &single, MINI, &args);
    for (ranks, tcp) in [(2, false), (4, true)] {
        let (a, b) = (scratch.join(format!("n{ranks}a")), scratch.join(format!("n{ranks}b")));
        let stdout = mnist_mlp(ranks, tcp, &a, MINI, &args);
        assert_eq!(stdout.lines().count(), 1, "only rank 0 prints the JSON line: {stdout}");
        assert!(stdout.starts_with("{\"experiment\": \"mnist_mlp\""), "{stdout}");
        mnist_mlp(ranks, tcp, &b, MINI, &args);
        assert_eq!(weights(&a), weights(&b), "{ranks} ranks: two runs differ");
        let difference = relative_difference(&weights(&single), &weights(&a));
        assert!(difference < 1e-5, "{ranks} ranks: {difference:e} from one process");
        eprintln!("{ranks} ranks: weights within {difference:e} of one process after 3 steps");
    }
}

/// The accuracy in a `--json` line.
fn accuracy(json: &str) -> f64 {
    let at = json.find("\"test_accuracy\": ").expect("an accuracy") + "\"test_accuracy\": ".len();
    json[at..].split([',', '}']).next().unwrap().trim().parse().unwrap()
}

#[test]
#[ignore = "needs ../shared/datasets (MNIST)"]
fn a_one_epoch_mnist_run_on_two_ranks_reaches_one_process_accuracy() {
    let scratch = common::Scratch::new("mpi-epoch");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/mnist");
    let args = ["--epochs", "1"];
    let single = accuracy(&mnist_mlp(1, false, &scratch.join("single"), data, &args));
    let two = accuracy(&mnist_mlp(2, false, &scratch.join("two"), data, &args));
    eprintln!("one epoch: one process {single}, two ranks {two}");
    assert!((single - two).abs() <= 0.002, "one process {single}, two ranks {two}");
    assert!(single > 0.95, "{single}");
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let scratch = common::Scratch::new("mpi-resume");
    let args = |epochs: &'static str| ["--epochs", epochs, "--steps-per-epoch", "3", "--test-subset", "500"];
    let straight = scratch.join("straight");
    mnist_mlp(2, false, &straight, MINI, &args("2"));
    for ranks in [4, 1] {
        let out = scratch.join(format!("then-{ranks}"));
        mnist_mlp(2, false, &out, MINI, &args("1"));
        let mut resumed: Vec<&str> = args("2").to_vec();
        resumed.push("--resume");
        mnist_mlp(ranks, false, &out, MINI, &resumed);
        let epochs = std::fs::read_to_string(out.join("mnist_mlp_adam_epochs.csv")).unwrap();
        assert_eq!(epochs.lines().count(), 3, "epoch 1 on 2 ranks, epoch 2 on {ranks}: {epochs}");
        let difference = relative_difference(&weights(&straight), &weights(&out));
        assert!(difference < 1e-5, "resumed on {ranks}: {difference:e} from the run on 2 ranks");
    }
}

/// `example --distributed` on 2 MPI processes, one thread each, with `args`; its stdout.
fn on_two_ranks(example: &str, args: &[&str]) -> String {
    let mut command = Command::new("mpirun");
    command
        .args(["--allow-run-as-root", "--oversubscribe", "-n", "2", "-x", "RAYON_NUM_THREADS=1"])
        .arg(common::example_binary(example))
        .arg("--distributed")
        .args(args);
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{example}: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The one line of `stdout` that is a JSON object, parsed; panics unless there is exactly one.
fn one_json_line(stdout: &str) -> serde_json::Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 1, "rank 0 alone prints the JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]))
}

#[test]
fn char_gpt_and_makemore_run_on_two_ranks() {
    let scratch = common::Scratch::new("mpi-char-gpt");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/shakespeare-mini");
    let out = scratch.join("char_gpt");
    let tiny = ["--layers", "1", "--heads", "2", "--embd", "16", "--block", "16", "--batch-size", "4"];
    let run =
        ["--steps", "4", "--eval-every", "2", "--samples", "20", "--no-progress", "--json", "--data", data];
    let mut args: Vec<&str> = tiny.iter().chain(&run).copied().collect();
    args.extend(["--out", out.to_str().unwrap()]);
    let stdout = on_two_ranks("char_gpt", &args);
    let json = one_json_line(&stdout);
    assert!(json["val_loss"].as_f64().is_some_and(f64::is_finite), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("char_gpt:")).count(), 1, "{stdout}");
    assert_eq!(Checkpoint::read(&out.join("char_gpt.ckpt")).unwrap().step, 4);

    let stdout = on_two_ranks("makemore", &["--steps", "20", "--json"]);
    let json = one_json_line(&stdout);
    assert!(json["train_loss"].as_f64().is_some_and(f64::is_finite), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("makemore:")).count(), 1, "{stdout}");
}
