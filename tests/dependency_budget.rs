//! The library's default dependency tree stays small: a program that only wants tensors,
//! autodiff and Adam must not compile an HTTP stack, a plotting library or a command-line
//! parser. Counted as issue 17 counts it:
//! `cargo tree -p adamant -e normal --prefix none | sed 's/ (\*)//' | sort -u | wc -l`.

use std::collections::BTreeSet;
use std::process::Command;

/// The budget of issue 17 (127 crates before it).
const MAX_CRATES: usize = 60;

#[test]
fn the_default_dependency_tree_of_adamant_stays_within_its_budget() {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "adamant", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let crates: BTreeSet<String> =
        stdout.lines().map(|l| l.replace(" (*)", "")).filter(|l| !l.trim().is_empty()).collect();
    assert!(crates.iter().any(|c| c.starts_with("adamant-tensor ")), "unexpected output:\n{stdout}");
    assert!(
        crates.len() <= MAX_CRATES,
        "adamant's default tree has {} crates (budget {MAX_CRATES}):\n{}",
        crates.len(),
        crates.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    // The heavy parts are features, never defaults.
    for heavy in [
        "ureq",
        "rustls",
        "ring",
        "faer",
        "plotters",
        "lexopt",
        "indicatif",
        "mimalloc",
        "adamant-lab",
        "prost",
        "crc32c",
    ] {
        let name = format!("{heavy} ");
        assert!(!crates.iter().any(|c| c.starts_with(&name)), "{heavy} is in the default tree");
    }
}
