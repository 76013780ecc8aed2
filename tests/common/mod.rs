//! Helpers shared by the integration tests: the compiled examples, scratch directories, a
//! small dataset for training-loop tests.
// Each test crate uses only some of these.
#![allow(dead_code)]

pub mod torch;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

/// The compiled example `name`, building the examples first if this test run did not
/// (`cargo test --test ...` builds only the test itself).
pub fn example_binary(name: &str) -> PathBuf {
    // Tests run from target/<profile>/deps/; examples are in target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "--quiet", "--examples"]);
        // Tests built with the `mpi` feature run the examples with `--distributed`.
        if cfg!(feature = "mpi") {
            build.args(["--features", "mpi"]);
        }
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let target_dir = profile_dir.parent().unwrap();
        let status = build.arg("--target-dir").arg(target_dir).status().expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    });
    profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// A fresh scratch directory for one test, removed by [`Scratch`]'s drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `$TMPDIR/adamant-<test>-<pid>`, emptied first.
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("adamant-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a checkpoint holds but its history (whose wall-clock seconds differ between
/// runs), as text with every float as its bit pattern: two runs that reached the same state,
/// to the bit, give equal strings. (The file bytes themselves are not compared: safetensors
/// writes its metadata map in hash order, which differs between processes.)
pub fn checkpoint_state(path: &std::path::Path) -> String {
    use std::fmt::Write as _;
    let c = adamant::checkpoint::Checkpoint::read(path).unwrap_or_else(|e| panic!("{e}"));
    let bits = |t: &adamant::tensor::Tensor| -> Vec<u32> { t.data().iter().map(|x| x.to_bits()).collect() };
    let mut s = format!("epoch {} step {} run {:?}\n", c.epoch, c.step, c.run);
    for (name, t) in &c.model {
        let _ = writeln!(s, "model {name} {:?} {:?}", t.shape(), bits(t));
    }
    let o = &c.optimizer;
    let _ = writeln!(
        s,
        "optimizer {} {:?}",
        o.kind,
        o.scalars.iter().map(|(k, v)| (k, v.to_bits())).collect::<Vec<_>>()
    );
    for (name, p) in &o.params {
        let _ = writeln!(
            s,
            "param {name} step {} {:?}",
            p.step,
            p.scalars.iter().map(|(k, v)| (k, v.to_bits())).collect::<Vec<_>>()
        );
        for (buffer, t) in &p.buffers {
            let _ = writeln!(s, "  {buffer} {:?} {:?}", t.shape(), bits(t));
        }
    }
    let scheduler = c.scheduler.iter().flatten().map(|(k, v)| (k.clone(), v.to_bits())).collect::<Vec<_>>();
    let _ = writeln!(s, "scheduler {scheduler:?}");
    s
}

/// Runs `mnist_mlp` on the bundled mnist-mini (500 test images) with `extra` arguments, logs
/// and checkpoint in `out`, `threads` rayon threads.
pub fn mnist_mlp_command(out: &std::path::Path, threads: usize, extra: &[&str]) -> Command {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/mnist-mini");
    let mut command = Command::new(example_binary("mnist_mlp"));
    command
        .args(["--data", data, "--test-subset", "500", "--no-progress", "--out"])
        .arg(out)
        .args(extra)
        .env("RAYON_NUM_THREADS", threads.to_string());
    command
}

/// The rows of a per-epoch CSV without their `seconds` column, the wall-clock time: what two
/// runs that reached the same states, to the bit, have in common.
pub fn without_seconds(epochs_csv: &str) -> Vec<String> {
    // The column is found by the header: a run that averages its weights has two after it.
    let column = epochs_csv.lines().next().and_then(|h| h.split(',').position(|c| c == "seconds"));
    epochs_csv
        .lines()
        .map(|l| {
            let mut fields: Vec<&str> = l.split(',').collect();
            if let Some(i) = column.filter(|&i| i < fields.len()) {
                fields.remove(i);
            }
            fields.join(",")
        })
        .collect()
}

/// Three Gaussian blobs in 8 dimensions (class `i % 3`, its coordinate shifted by 2):
/// linearly separable, so a small MLP reaches high accuracy in a few epochs.
pub fn blobs(n: usize, seed: u64) -> adamant::data::Dataset {
    let mut rng = adamant::tensor::rng::seeded(seed);
    let mut x = adamant::tensor::Tensor::randn(&[n, 8], 0.0, 0.5, &mut rng).into_vec();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    for (i, &l) in labels.iter().enumerate() {
        x[i * 8 + l] += 2.0;
    }
    adamant::data::Dataset { images: adamant::tensor::Tensor::from_vec(x, &[n, 8]), labels }
}

/// `(step, tag) -> value` of the TensorBoard scalars in the event files of `dir` that do not
/// depend on the clock (`step_ms`, `examples_per_second` are left out), and how many there are
/// in all: a step logged twice counts twice, so `count == values.len()` says each step is once.
pub fn tensorboard_scalars(dir: &std::path::Path) -> (std::collections::BTreeMap<(i64, String), f32>, usize) {
    let (mut values, mut count) = (std::collections::BTreeMap::new(), 0);
    for file in adamant::tensorboard::event_files(dir).unwrap() {
        let events = adamant::tensorboard::read_events(&file).unwrap_or_else(|e| panic!("{e}"));
        for event in events {
            for v in event.summary.map(|s| s.value).unwrap_or_default() {
                let clocked = v.tag.ends_with("step_ms") || v.tag.ends_with("examples_per_second");
                if let (Some(x), false) = (v.simple_value, clocked) {
                    count += 1;
                    values.insert((event.step, v.tag), x);
                }
            }
        }
    }
    (values, count)
}
