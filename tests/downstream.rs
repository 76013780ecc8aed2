//! A program of a user's own, outside this workspace, that depends on `adamant` by path,
//! sets its own `#[global_allocator]`, and trains one step: the library must link into it
//! (no allocator of its own) and must build with its default features alone.
//!
//! The crate is written to a scratch directory and built with `cargo build --offline`
//! (every dependency is already in the local registry cache, since the workspace built it),
//! into a target directory of its own under `target/` that later runs reuse.

use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST: &str = r#"[package]
name = "downstream"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
adamant = { path = "ADAMANT" }

# The README's recommendation: the numeric crates optimised even in a debug build.
[profile.dev.package."*"]
opt-level = 3

[workspace]
"#;

const MAIN: &str = r#"
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use adamant::autodiff::{Mode, Tape};
use adamant::layers::{nets, Module, Params};
use adamant::optim::{Adam, AdamConfig, Optimizer};
use adamant::tensor::{rng, Tensor};

/// The program's own allocator: the system's, counting calls.
struct Counting;
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let mut model = nets::mlp(&mut rng::seeded(0));
    let mut adam = Adam::new(AdamConfig::default());
    let images = Tensor::rand_uniform(&[16, 784], 0.0, 1.0, &mut rng::seeded(1));
    let labels: Vec<usize> = (0..16).map(|i| i % 10).collect();
    let before = model.params()[0].value().clone();
    let tape = Tape::new(Mode::Train, 7);
    let loss = model.forward(tape.constant(images)).cross_entropy(&labels);
    let value = loss.item();
    let grads = loss.backward();
    drop(tape);
    adam.step(&mut model.params_mut(), &grads);
    let moved = before.data().iter().zip(model.params()[0].value().data()).any(|(a, b)| a != b);
    println!("loss {value} moved {moved} allocations {}", CALLS.load(Ordering::Relaxed));
}
"#;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_program_with_its_own_global_allocator_builds_against_the_facade_and_trains_a_step() {
    let root = repo_root();
    let dir = root.join("target").join("downstream-test");
    let manifest = MANIFEST.replace("ADAMANT", &root.display().to_string());
    write(&dir.join("Cargo.toml"), &manifest);
    write(&dir.join("src/main.rs"), MAIN);
    // Start from the workspace's lock file: the same versions, none to resolve online.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["run", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the downstream crate failed:\n{stderr}\n{stdout}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let [_, loss, _, moved, _, allocations] = words[..] else { panic!("unexpected output: {stdout}") };
    let loss: f32 = loss.parse().unwrap();
    // 10 classes at initialisation: the cross-entropy is about ln 10 = 2.30.
    assert!((1.5..3.5).contains(&loss), "loss {loss}");
    assert_eq!(moved, "true", "the Adam step changed no weight");
    let allocations: usize = allocations.parse().unwrap();
    assert!(allocations > 100, "the program's own allocator served {allocations} allocations");
}
