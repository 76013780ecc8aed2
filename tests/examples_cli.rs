//! Bad arguments to every example: one line on stderr naming the argument, exit status 2,
//! nothing on stdout, no panic and no backtrace, and no time spent loading data first.

mod common;

use std::process::Command;

use adamant::checkpoint::Checkpoint;
use std::time::{Duration, Instant};

/// Every example, and whether it takes `--optimizer NAME` with the optimizer options.
const EXAMPLES: &[(&str, bool)] = &[
    ("quickstart", false),
    ("mnist_logreg", true),
    ("mnist_mlp", true),
    ("cifar10_cnn", true),
    ("mnist_vae", false),
    ("optimize", true),
    ("trace_adam", false),
    ("bench", false),
    ("bench_kernels", false),
    ("data_info", false),
    ("makemore", false),
];

/// The bad command lines of the reliability issue, each with the flag its error must name.
/// Examples that take an optimizer get `--optimizer adam` first, so that the error is about
/// the bad value and not about a missing `--optimizer`.
fn cases(takes_optimizer: bool) -> Vec<(Vec<&'static str>, &'static str)> {
    let with_optimizer = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut line = if takes_optimizer { vec!["--optimizer", "adam"] } else { vec![] };
        line.extend_from_slice(rest);
        line
    };
    vec![
        (vec!["--optimizer", "no-such-optimizer"], "--optimizer"),
        (with_optimizer(&["--lr", "-0.1"]), "--lr"),
        (with_optimizer(&["--lr", "NaN"]), "--lr"),
        (vec!["--batch-size", "0"], "--batch-size"),
        (vec!["--epochs", "three"], "--epochs"),
        (vec!["--epochs", "-1"], "--epochs"),
        (vec!["--data", "/nonexistent/adamant-data-dir"], "--data"),
        (vec!["--no-such-flag"], "--no-such-flag"),
        (vec!["--preprocess", "zca:-1"], "--preprocess"),
        (vec!["--ema", "1.5"], "--ema"),
        (vec!["--ema", "nan"], "--ema"),
        (vec!["--average", "temporal:1"], "--average"),
        (vec!["--average", "mean"], "--average"),
        (vec!["--accumulate", "0"], "--accumulate"),
        (vec!["--precision", "fp16"], "--precision"),
        (vec!["--plateau", "3,1.5"], "--plateau"),
        (vec!["--accumulate", "16777217"], "--accumulate"),
        // Every count is bounded. Near 2^64, trace_adam panicked with "capacity overflow",
        // bench's `warmup + steps` wrapped into a table of NaN, and the training examples
        // went on to load the data.
        (vec!["--steps", "18446744073709551615"], "--steps"),
        (vec!["--epochs", "18446744073709551615"], "--epochs"),
        (vec!["--epochs", "1000001"], "--epochs"),
        (vec!["--batch-size", "16777217"], "--batch-size"),
        (vec!["--train-subset", "100000001"], "--train-subset"),
        (vec!["--test-subset", "18446744073709551616"], "--test-subset"),
        (vec!["--steps-per-epoch", "100000001"], "--steps-per-epoch"),
        (vec!["--threads", "1025"], "--threads"),
        (vec!["--warmup", "18446744073709551615"], "--warmup"),
        (vec!["--shard", "0/18446744073709551615"], "--shard"),
        // `--out ''` wrote into the current directory; a newline in a path printed an error of
        // two lines.
        (vec!["--out", ""], "--out"),
        (vec!["--out", "runs/two\nlines"], "--out"),
        (vec!["--data", "/nonexistent/two\nlines"], "--data"),
        (vec!["--svg", "two\nlines.svg"], "--svg"),
        (vec!["--shard", "0\n/2"], "--shard"),
        (vec!["--preprocess", "zca\nx"], "--preprocess"),
        (vec!["--backend", "avx\n2"], "--backend"),
        // An output directory that cannot exist, even for root: its parent is a file.
        (vec!["--out", UNWRITABLE_OUT], "--out"),
    ]
}

/// A directory no one can create: its parent is a regular file.
const UNWRITABLE_OUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml/out");

#[test]
fn every_example_refuses_bad_arguments_with_one_line() {
    let mut failures = Vec::new();
    for &(example, takes_optimizer) in EXAMPLES {
        let bin = common::example_binary(example);
        for (line, flag) in cases(takes_optimizer) {
            let started = Instant::now();
            let out = Command::new(&bin).args(&line).env("RUST_BACKTRACE", "1").output().unwrap();
            let took = started.elapsed();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let problems = [
                (out.status.code() != Some(2), format!("exit status {:?}, expected 2", out.status.code())),
                (
                    !out.stdout.is_empty(),
                    format!("stdout not empty: {:?}", String::from_utf8_lossy(&out.stdout)),
                ),
                (stderr.lines().count() != 1, "stderr is not exactly one line".to_string()),
                (!stderr.starts_with("error: "), "stderr does not start with 'error: '".to_string()),
                (!stderr.contains(flag), format!("stderr does not name {flag}")),
                (stderr.contains("panicked") || stderr.contains("backtrace"), "a panic".to_string()),
                // Arguments are checked before any data is read or work starts.
                (took > Duration::from_secs(5), format!("took {took:?}")),
            ];
            for (failed, why) in problems {
                if failed {
                    failures.push(format!("{example} {line:?}: {why}; stderr: {stderr:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// An unwritable `--out` is refused before any data is read. The data directory given is
/// empty, so a program that read the data first fails on the data and not on `--out` (the
/// CIFAR-10 example with ZCA took 27 s to get there).
#[test]
fn an_unwritable_out_is_refused_before_the_data_is_read() {
    let scratch = common::Scratch::new("unwritable-out");
    let empty = scratch.join("empty-data");
    std::fs::create_dir(&empty).unwrap();
    let file = scratch.join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = file.join("out");
    let mut failures = Vec::new();
    for example in ["mnist_logreg", "mnist_mlp", "cifar10_cnn", "mnist_vae", "quickstart"] {
        let mut command = Command::new(common::example_binary(example));
        command.arg("--out").arg(&out);
        // quickstart reads the bundled subset and takes no --data.
        if example != "quickstart" {
            command.arg("--data").arg(&empty);
        }
        let started = Instant::now();
        let output = command.output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = format!("error: --out: cannot write to '{}': ", out.display());
        if output.status.code() != Some(2)
            || stderr.lines().count() != 1
            || !stderr.starts_with(&expected)
            || took > Duration::from_secs(5)
        {
            failures.push(format!(
                "{example}: exit {:?} after {took:?}, stderr {stderr:?}",
                output.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!out.exists());
}

#[test]
fn help_succeeds_for_every_example() {
    for &(example, _) in EXAMPLES {
        let out = Command::new(common::example_binary(example)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{example} --help: {}", String::from_utf8_lossy(&out.stderr));
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.to_lowercase().contains("usage"), "{example} --help printed {help:?}");
    }
}

/// `mnist_mlp` on mnist-mini with `extra` arguments, 2 threads.
fn mnist_mlp(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    common::mnist_mlp_command(out, 2, extra).output().unwrap()
}

#[test]
fn sgd_at_lr_1e6_stops_on_nan_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let scratch = common::Scratch::new("divergence");
    // The command: SGD at 1e6 overflows within a few steps of the start, before any
    // checkpoint exists.
    let out = mnist_mlp(&scratch.0.join("at-once"), &["--optimizer", "sgd", "--lr", "1e6", "--epochs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("training diverged: loss is")
            && stderr.contains("at step ")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!scratch.0.join("at-once/mnist_mlp_sgd.ckpt").exists(), "a diverged state was checkpointed");

    // One good epoch of 5 steps at lr 0.01, then the step schedule multiplies the rate by 1e8:
    // epoch 2 diverges, and the checkpoint must still be epoch 1's, byte for byte.
    let steps = ["--optimizer", "sgd", "--lr", "0.01", "--steps-per-epoch", "5", "--schedule", "step:5,1e8"];
    let good = scratch.0.join("good");
    let out = mnist_mlp(&good, &[&steps[..], &["--epochs", "1"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let diverged = scratch.0.join("diverged");
    let out = mnist_mlp(&diverged, &[&steps[..], &["--epochs", "3"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("training diverged") && stderr.contains("epoch 2"), "{stderr}");
    let checkpoint = diverged.join("mnist_mlp_sgd.ckpt");
    assert!(stderr.contains(&checkpoint.display().to_string()), "{stderr}");
    // The file holds epoch 1's state, the same as the run that stopped after epoch 1 (the
    // bytes differ only in the wall-clock seconds of its history).
    let kept = Checkpoint::read(&checkpoint).unwrap();
    let reference = Checkpoint::read(&good.join("mnist_mlp_sgd.ckpt")).unwrap();
    assert_eq!((kept.epoch, kept.step), (1, 5));
    let bits = |c: &Checkpoint| -> Vec<(String, Vec<u32>)> {
        c.model
            .iter()
            .map(|(name, t)| (name.clone(), t.data().iter().map(|x| x.to_bits()).collect()))
            .collect()
    };
    assert!(bits(&kept) == bits(&reference), "the kept weights are not those of the last good epoch");
    assert!(kept.model.iter().all(|(_, t)| t.data().iter().all(|x| x.is_finite())));
}

/// `--ema 0.999` reports the raw and the averaged model's test metrics, in the text report and
/// in the JSON line; `--accumulate K` takes K minibatches per logged step; both are refused
/// together with `--average`, and each is in the checkpoint's identity.
#[test]
fn ema_and_accumulate_flags_report_and_record_what_they_do() {
    let scratch = common::Scratch::new("ema-flags");
    let quick = ["--optimizer", "adam", "--steps-per-epoch", "3", "--epochs", "1"];
    let out = mnist_mlp(&scratch.0.join("text"), &[&quick[..], &["--ema", "0.999"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("test accuracy") && stdout.contains("(averaged weights: test loss "), "{stdout}");

    let out = mnist_mlp(
        &scratch.0.join("json"),
        &[&quick[..], &["--ema", "0.999", "--accumulate", "2", "--plateau", "0,0.5", "--json"]].concat(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["test_accuracy", "averaged_test_accuracy", "test_loss", "averaged_test_loss"] {
        assert!(line[key].as_f64().is_some_and(|x| x.is_finite()), "{key} in {line}");
    }
    let ckpt = Checkpoint::read(&scratch.0.join("json/mnist_mlp_adam.ckpt")).unwrap();
    assert_eq!((ckpt.run.get("average"), ckpt.run.get("accumulate")), (Some("ema:0.999"), Some("2")));
    assert_eq!(ckpt.run.get("plateau"), Some("plateau:0,0.5"));
    assert_eq!((ckpt.step, ckpt.average.unwrap().updates), (3, 3));
    let iterations = std::fs::read_to_string(scratch.0.join("json/mnist_mlp_adam_iterations.csv")).unwrap();
    assert_eq!(iterations.lines().count(), 1 + 3, "one row per optimizer step");

    let out = mnist_mlp(&scratch.0.join("both"), &["--ema", "0.9", "--average", "swa"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), stderr.lines().count()), (Some(2), 1), "{stderr}");
    assert!(stderr.contains("--average: give one of --ema and --average"), "{stderr}");
}

/// A second run on the same `--out` and run files is refused with one line while the first
/// runs (before the fix both wrote the same checkpoint and logs).
#[test]
fn a_second_run_on_the_same_out_is_refused_while_the_first_runs() {
    let scratch = common::Scratch::new("two-runs");
    let mut first = common::mnist_mlp_command(&scratch.0, 1, &["--epochs", "50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // The lock is taken when training starts: the checkpoint's iteration log appears then.
    while !scratch.0.join("mnist_mlp_adam_iterations.csv").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the first run did not start");
        assert!(first.try_wait().unwrap().is_none(), "the first run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = mnist_mlp(&scratch.0, &["--epochs", "1"]);
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("mnist_mlp_adam.lock: process ")
            && stderr.contains("is running with this run's files"),
        "{stderr}"
    );
    // Killed, the first run leaves no stuck lock: a resume goes ahead.
    let resumed = mnist_mlp(&scratch.0, &["--epochs", "1", "--resume"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
}

/// `mnist_vae --quick` on 512 mnist-mini images for one epoch, into `out`, with `extra`.
fn mnist_vae_quick(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/mnist-mini");
    let output = Command::new(common::example_binary("mnist_vae"))
        .args(["--quick", "--epochs", "1", "--train-subset", "512", "--data", data, "--out"])
        .arg(out)
        .args(extra)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "mnist_vae {extra:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The rows of a VAE runs file, sorted (shards finish in their own order).
fn sorted_rows(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn vae_grid_split_into_shards_gives_the_results_of_one_sweep() {
    let scratch = common::Scratch::new("vae-shards");
    let (whole, sharded) = (scratch.join("whole"), scratch.join("sharded"));
    mnist_vae_quick(&whole, &[]);
    // Two shards of the eight-setting quick grid, at the same time in one --out (each run
    // locks its own files only), then the collecting run, which trains nothing.
    std::thread::scope(|s| {
        for shard in ["0/2", "1/2"] {
            let sharded = &sharded;
            s.spawn(move || mnist_vae_quick(sharded, &["--shard", shard]));
        }
    });
    assert!(!sharded.join("mnist_vae.svg").exists(), "a shard drew the plot of a partial grid");
    let shard_rows: Vec<String> = ["0of2", "1of2"]
        .iter()
        .flat_map(|s| sorted_rows(&sharded.join(format!("mnist_vae_runs_shard{s}.csv"))))
        .collect();
    assert_eq!(shard_rows.len(), 8, "{shard_rows:?}");
    let collected = mnist_vae_quick(&sharded, &["--resume"]);
    assert!(sharded.join("mnist_vae.svg").exists());
    let whole_rows = sorted_rows(&whole.join("mnist_vae_runs.csv"));
    assert_eq!(whole_rows.len(), 8, "{whole_rows:?}");
    // Same seeds, same settings: the losses agree bit for bit (they are printed in full).
    assert_eq!(sorted_rows(&sharded.join("mnist_vae_runs.csv")), whole_rows);
    let stdout = String::from_utf8_lossy(&collected.stdout);
    assert!(stdout.contains("plot:"), "{stdout}");

    for bad in ["2/2", "1", "a/b", "0/0"] {
        let out = Command::new(common::example_binary("mnist_vae")).args(["--shard", bad]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--shard {bad}: {stderr}");
        assert!(stderr.contains("--shard"), "--shard {bad}: {stderr}");
    }
}

/// `--resume` continues only the run in `--out`: a flag that defines the run and differs is
/// refused with one line naming it, both values and the ways out (before the fix, a run
/// started with `--seed 7` resumed under seed 0 without a word); `--resume-override`
/// continues with the new values; `--epochs` may change when the schedule does not follow it.
#[test]
fn resume_refuses_a_conflicting_flag_naming_it_and_both_values() {
    let scratch = common::Scratch::new("resume-identity");
    let short = ["--steps-per-epoch", "2", "--optimizer", "adam", "--lr", "0.001"];
    let run = |extra: &[&str]| mnist_mlp(&scratch.0, &[&short[..], extra].concat());
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    ok(run(&["--epochs", "1", "--seed", "7"]));
    let checkpoint = scratch.0.join("mnist_mlp_adam.ckpt");
    let before = std::fs::read(&checkpoint).unwrap();
    for (extra, named) in [
        (&["--epochs", "2", "--resume"][..], "--seed 7 there, 0 here"),
        (
            &["--epochs", "2", "--resume", "--seed", "7", "--batch-size", "64"],
            "--batch-size 128 there, 64 here",
        ),
        (
            &["--epochs", "2", "--resume", "--seed", "7", "--betas", "0.8,0.999"],
            "--betas 0.9,0.999 there, 0.8,0.999 here",
        ),
        (
            &["--epochs", "2", "--resume", "--seed", "7", "--train-subset", "500"],
            "--train-subset (training examples) 10000 there, 500 here",
        ),
        (
            &["--epochs", "2", "--resume", "--seed", "7", "--precision", "bf16"],
            "--precision (not set) there, bf16 here",
        ),
    ] {
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: --resume: ") && stderr.contains(named), "{extra:?}: {stderr}");
        assert!(stderr.contains("--resume-override") && stderr.contains("drop --resume"), "{stderr}");
        assert_eq!(std::fs::read(&checkpoint).unwrap(), before, "a refused resume changed the checkpoint");
    }
    // The same settings, and more epochs (the constant schedule does not follow them): fine.
    let same = ok(run(&["--epochs", "2", "--resume", "--seed", "7"]));
    assert!(!same.contains("warning"), "{same}");
    // Another rate, overridden: a warning naming it, and the new rate in the log from here on.
    let other = ok(run(&["--epochs", "3", "--resume-override", "--seed", "7", "--lr", "0.01"]));
    assert!(
        other.contains("warning: resuming from") && other.contains("lr 0.001 there, 0.01 here"),
        "{other}"
    );
    assert_eq!(logged_rates(&scratch.0, "mnist_mlp_adam"), [0.001, 0.001, 0.001, 0.001, 0.01, 0.01]);
}

/// The learning rates of every step of a run, read from its iterations log.
fn logged_rates(out: &std::path::Path, name: &str) -> Vec<f64> {
    let log = std::fs::read_to_string(out.join(format!("{name}_iterations.csv"))).unwrap();
    log.lines().skip(1).map(|line| line.rsplit(',').next().unwrap().parse().unwrap()).collect()
}

#[test]
#[ignore = "needs ../shared/datasets (CIFAR-10)"]
fn cifar10_cnn_anneals_the_rate_to_zero_over_the_run_by_default() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/cifar10-jpeg");
    let scratch = common::Scratch::new("cnn-schedule");
    let run = |extra: &[&str]| {
        let out = Command::new(common::example_binary("cifar10_cnn"))
            .args(["--data", data, "--train-subset", "640", "--test-subset", "100", "--epochs", "2"])
            .args(["--steps-per-epoch", "3", "--no-progress", "--out"])
            .arg(&scratch.0)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        logged_rates(&scratch.0, "cifar10_cnn_adam")
    };
    // Five batches per epoch, capped at three steps: the cosine spans the 6 steps run.
    let annealed = run(&[]);
    let cosine = |t: f64| 1e-3 * (1.0 + (std::f64::consts::PI * (t - 1.0) / 6.0).cos()) / 2.0;
    assert_eq!(annealed.len(), 6, "{annealed:?}");
    for (i, lr) in annealed.iter().enumerate() {
        assert!((lr - cosine(i as f64 + 1.0)).abs() < 1e-9, "step {}: {lr} ({annealed:?})", i + 1);
    }
    // The cosine spans the run's length, so another --epochs is another run: refused on resume.
    let longer = Command::new(common::example_binary("cifar10_cnn"))
        .args(["--data", data, "--train-subset", "640", "--test-subset", "100", "--epochs", "3"])
        .args(["--steps-per-epoch", "3", "--no-progress", "--resume", "--out"])
        .arg(&scratch.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&longer.stderr);
    assert_eq!(longer.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--epochs 2 there, 3 here")
            && stderr.contains("--schedule cosine:6 there, cosine:9 here"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&scratch.0).unwrap();
    let constant = run(&["--schedule", "constant"]);
    assert!(constant.iter().all(|&lr| (lr - 1e-3).abs() < 1e-9), "{constant:?}");
}

#[test]
fn tensorboard_flags_are_checked_before_the_data_is_read() {
    let scratch = common::Scratch::new("tensorboard-flags");
    let file = scratch.join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let unwritable = file.join("tb");
    let mut failures = Vec::new();
    for example in ["mnist_logreg", "mnist_mlp", "cifar10_cnn", "mnist_vae", "quickstart"] {
        let bad_dir: Vec<&std::ffi::OsStr> = vec!["--tensorboard".as_ref(), unwritable.as_os_str()];
        let cases: [(Vec<&std::ffi::OsStr>, String); 3] = [
            (bad_dir, format!("error: --tensorboard: cannot write to '{}': ", unwritable.display())),
            (
                vec!["--log-every".as_ref(), "5".as_ref()],
                "error: --log-every: needs --tensorboard DIR".into(),
            ),
            (
                vec!["--log-optimizer-state".as_ref()],
                "error: --log-optimizer-state: needs --tensorboard DIR".into(),
            ),
        ];
        for (args, expected) in cases {
            let output = Command::new(common::example_binary(example)).args(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.code() != Some(2)
                || stderr.lines().count() != 1
                || !stderr.starts_with(&expected)
            {
                failures.push(format!(
                    "{example} {args:?}: status {:?}, stderr {stderr:?}",
                    output.status.code()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_vae_grid_writes_one_tensorboard_run_per_setting() {
    let scratch = common::Scratch::new("vae-tensorboard");
    let tb = scratch.join("tb");
    let tb_arg = tb.to_str().unwrap();
    mnist_vae_quick(&scratch.join("out"), &["--tensorboard", tb_arg, "--log-every", "8"]);
    // key -> final test loss (NaN for a run that diverged, the study's point).
    let test_losses: std::collections::BTreeMap<String, f64> =
        sorted_rows(&scratch.join("out/mnist_vae_runs.csv"))
            .iter()
            .map(|row| {
                let f: Vec<&str> = row.split(',').collect();
                (format!("vae_{}", f[0]), f[7].parse().unwrap())
            })
            .collect();
    let mut runs: Vec<String> = std::fs::read_dir(&tb)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 8, "{runs:?}");
    assert!(runs.iter().all(|r| r.starts_with("vae_")), "{runs:?}");
    for run in &runs {
        let files = adamant::tensorboard::event_files(&tb.join(run)).unwrap();
        assert_eq!(files.len(), 1, "{run}");
        let events = adamant::tensorboard::read_events(&files[0]).unwrap();
        let tagged = |tag: &str| -> Vec<i64> {
            events
                .iter()
                .filter(|e| e.summary.as_ref().is_some_and(|s| s.value.iter().any(|v| v.tag == tag)))
                .map(|e| e.step)
                .collect()
        };
        // 512 images in batches of 128: 4 steps, logged at 1 only (every 8); the epoch at 4,
        // unless the run diverged before its end.
        assert_eq!(tagged("train/loss"), vec![1], "{run}");
        let expected_epochs = if test_losses[run].is_finite() { vec![4] } else { vec![] };
        assert_eq!(tagged("test/loss"), expected_epochs, "{run}");
        assert_eq!(tagged("weights/enc.weight"), vec![1], "{run}");
    }
}

#[test]
fn compare_split_into_shards_then_collected_gives_the_figure_of_one_sweep() {
    let scratch = common::Scratch::new("compare-shards");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/mnist-mini");
    let logreg = |out: &std::path::Path, extra: &[&str]| {
        let output = Command::new(common::example_binary("mnist_logreg"))
            .args([
                "--compare",
                "--epochs",
                "1",
                "--train-subset",
                "512",
                "--test-subset",
                "200",
                "--no-progress",
            ])
            .args(["--data", data, "--out"])
            .arg(out)
            .args(extra)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(output.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let (whole, sharded) = (scratch.join("whole"), scratch.join("sharded"));
    logreg(&whole, &[]);
    let first = logreg(&sharded, &["--shard", "0/2"]);
    assert!(first.contains("shard 0/2 done"), "{first}");
    assert!(!sharded.join("mnist_logreg.csv").exists(), "a shard drew the figure of part of the sweep");
    logreg(&sharded, &["--shard", "1/2"]);
    // The collecting run trains nothing: every optimizer's run is finished in its checkpoint.
    logreg(&sharded, &["--resume"]);
    let table = |dir: &std::path::Path| {
        let text = std::fs::read_to_string(dir.join("mnist_logreg.csv")).unwrap();
        common::without_seconds(&text)
    };
    assert_eq!(table(&sharded), table(&whole));
    let output =
        Command::new(common::example_binary("mnist_logreg")).args(["--shard", "0/2"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: --shard: splits the optimizers of --compare; add --compare\n"
    );
}
