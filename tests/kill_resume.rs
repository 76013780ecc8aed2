//! Exact resume under SIGKILL: `mnist_mlp` is killed at pseudo-random moments (during
//! training steps, evaluation and checkpoint writes alike), restarted with `--resume` each
//! time, and must end with the same weights and optimizer state, bit for bit, as a run that
//! was never interrupted. After every kill the checkpoint on disk, if there is one, must load
//! and must not have gone backwards, and the TensorBoard event file must read; at the end it
//! holds what the uninterrupted run's holds, each step once.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use adamant::checkpoint::Checkpoint;
use adamant::tensor::rng::counter_uniform;
use adamant::tensorboard::event_files;

/// 12 epochs of 5 steps on 640 images: each epoch ends with an evaluation and a 14 MB
/// checkpoint write, so a kill lands in a write a fair share of the time.
const ARGS: &[&str] = &["--epochs", "12", "--train-subset", "640", "--seed", "11"];
const CHECKPOINT: &str = "mnist_mlp_adam.ckpt";

fn spawn(out: &Path, resume: bool) -> Child {
    let mut command = common::mnist_mlp_command(out, 2, ARGS);
    command.arg("--tensorboard").arg(out.join("tb")).args(["--log-every", "3"]);
    if resume {
        command.arg("--resume");
    }
    command.stdout(std::process::Stdio::null()).spawn().unwrap()
}

/// The run's TensorBoard scalars ([`common::tensorboard_scalars`]).
fn tensorboard_scalars(out: &Path) -> (BTreeMap<(i64, String), f32>, usize) {
    common::tensorboard_scalars(&out.join("tb").join("mnist_mlp_adam"))
}

/// Temporary files of unfinished writes in `out` (`.FILE.tmp<pid>`).
fn leftover_temp_files(out: &Path) -> usize {
    std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
                .count()
        })
        .unwrap_or(0)
}

/// Whether the temporary file of a checkpoint write exists in `out` right now.
fn checkpoint_write_in_progress(out: &Path) -> bool {
    std::fs::read_dir(out)
        .map(|mut entries| {
            entries.any(|e| {
                e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(&format!(".{CHECKPOINT}.tmp")))
            })
        })
        .unwrap_or(false)
}

#[test]
fn killed_and_resumed_runs_end_bit_identical_to_an_uninterrupted_run() {
    let scratch = common::Scratch::new("kill-resume");
    let reference = scratch.0.join("reference");
    common::example_binary("mnist_mlp"); // built before the clock starts
    let started = Instant::now();
    let status = spawn(&reference, false).wait().unwrap();
    assert!(status.success());
    let full_run = started.elapsed();

    let killed = scratch.0.join("killed");
    let (mut kills, mut kills_mid_write, mut last_epoch) = (0, 0, 0);
    let mut resume = false;
    loop {
        assert!(kills < 100, "no end after {kills} kills");
        let mut child = spawn(&killed, resume);
        resume = true;
        // Every other kill comes at a pseudo-random moment, anywhere from start-up to 30% of a
        // whole run; the others as soon as a checkpoint write has begun (its temporary file
        // exists), so that interrupted writes are certain to be tested.
        let at_a_write = kills % 2 == 1;
        let delay = full_run.mul_f64(0.03 + 0.27 * counter_uniform(2024, kills as u64) as f64);
        let deadline = Instant::now() + delay;
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if if at_a_write { checkpoint_write_in_progress(&killed) } else { Instant::now() >= deadline } {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if let Some(status) = finished {
            assert!(status.success(), "a resumed run failed: {status}");
            break;
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        kills += 1;
        kills_mid_write += usize::from(leftover_temp_files(&killed) > 0);
        let path = killed.join(CHECKPOINT);
        if path.exists() {
            let checkpoint = Checkpoint::read(&path).unwrap_or_else(|e| panic!("after kill {kills}: {e}"));
            assert!(checkpoint.epoch >= last_epoch, "the checkpoint went back from epoch {last_epoch}");
            last_epoch = checkpoint.epoch;
        }
        // The event file reads after any kill (up to a torn last record).
        tensorboard_scalars(&killed);
    }
    eprintln!(
        "{kills} kills ({kills_mid_write} left a half-written temporary file); an uninterrupted run takes {full_run:?}"
    );
    assert!(kills >= 6, "too few kills ({kills}) to test anything");
    assert!(kills_mid_write >= 2, "only {kills_mid_write} kills hit a checkpoint write");
    assert_eq!(leftover_temp_files(&killed), 0, "temporary files of killed writes were left behind");
    assert!(
        common::checkpoint_state(&killed.join(CHECKPOINT))
            == common::checkpoint_state(&reference.join(CHECKPOINT)),
        "the resumed run's final weights or optimizer state differ from the uninterrupted run's"
    );
    let losses = |dir: &Path| std::fs::read_to_string(dir.join("mnist_mlp_adam_iterations.csv")).unwrap();
    assert_eq!(losses(&killed), losses(&reference), "the per-step loss logs differ");
    let (killed_scalars, count) = tensorboard_scalars(&killed);
    assert_eq!(killed_scalars.len(), count, "a step was logged twice in the event file");
    assert_eq!(killed_scalars, tensorboard_scalars(&reference).0, "the TensorBoard scalars differ");
    assert_eq!(event_files(&killed.join("tb/mnist_mlp_adam")).unwrap().len(), 1);
}

/// 4 epochs of 20 steps: most of the run is training steps, so most interruptions land
/// mid-epoch.
const SIGINT_ARGS: &[&str] = &["--epochs", "4", "--train-subset", "2560", "--seed", "12"];

/// Ctrl-C (SIGINT) at pseudo-random moments: each time the run finishes its step, writes a
/// checkpoint (mid-epoch if need be), says where in one line and exits 130; `--resume`
/// continues from there, mid-epoch included, and the end is bit-identical to a run never
/// interrupted. (A signal that lands while the data is still loading, before the handler is
/// installed, kills the process as Ctrl-C always does: that is a plain kill, also fine.)
#[test]
fn interrupted_by_sigint_and_resumed_runs_end_bit_identical_to_an_uninterrupted_run() {
    let scratch = common::Scratch::new("sigint-resume");
    let run = |out: &Path, resume: bool| {
        let mut command = common::mnist_mlp_command(out, 2, SIGINT_ARGS);
        if resume {
            command.arg("--resume");
        }
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let reference = scratch.0.join("reference");
    common::example_binary("mnist_mlp");
    let started = Instant::now();
    assert!(run(&reference, false).wait().unwrap().success());
    let full_run = started.elapsed();

    let stopped = scratch.0.join("stopped");
    let (mut signals, mut graceful, mut mid_epoch) = (0u64, 0, 0);
    let mut resume = false;
    loop {
        assert!(signals < 60, "no end after {signals} interruptions");
        let child = run(&stopped, resume);
        resume = true;
        let delay = full_run.mul_f64(0.05 + 0.15 * counter_uniform(2025, signals) as f64);
        let deadline = Instant::now() + delay;
        let pid = child.id().to_string();
        let mut child = child;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
            signals += 1;
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => break,
            Some(130) => {
                graceful += 1;
                assert_eq!(stderr.lines().count(), 1, "{stderr}");
                assert!(stderr.starts_with("interrupted after step "), "{stderr}");
                let checkpoint =
                    Checkpoint::read(&stopped.join(CHECKPOINT)).unwrap_or_else(|e| panic!("{e}"));
                assert!(stderr.contains(CHECKPOINT), "{stderr}");
                mid_epoch += usize::from(checkpoint.partial.is_some());
            }
            // Killed by the signal before the handler was installed (while loading data).
            None => {}
            other => panic!("exit status {other:?} after SIGINT: {stderr}"),
        }
    }
    eprintln!("{signals} SIGINTs: {graceful} graceful stops, {mid_epoch} of them mid-epoch");
    assert!(mid_epoch >= 2, "only {mid_epoch} stops mid-epoch out of {signals} signals");
    assert!(
        common::checkpoint_state(&stopped.join(CHECKPOINT))
            == common::checkpoint_state(&reference.join(CHECKPOINT)),
        "the resumed run's final weights or optimizer state differ from the uninterrupted run's"
    );
    let log = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(
        log(&stopped, "mnist_mlp_adam_iterations.csv"),
        log(&reference, "mnist_mlp_adam_iterations.csv")
    );
    // The epoch metrics too, but for the wall-clock seconds.
    assert_eq!(
        common::without_seconds(&log(&stopped, "mnist_mlp_adam_epochs.csv")),
        common::without_seconds(&log(&reference, "mnist_mlp_adam_epochs.csv"))
    );
}
