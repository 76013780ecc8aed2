//! The text readers on the real corpora beside the repository (`../shared/datasets/`):
//! example counts and splits as the PyTorch scripts of `shared/bench/` compute them. Ignored by
//! default; run with `cargo test -p adamant-data --test real_text -- --include-ignored`. When
//! the data is missing these tests fail, they do not pass silently.

use std::path::{Path, PathBuf};

use adamant_data::text::{eval_windows, CharCorpus, Names};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets");

fn shared(path: &str) -> PathBuf {
    Path::new(SHARED).join(path)
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn names_give_torch_makemore_example_counts() {
    let names = Names::read(shared("names/first.txt"), 3).unwrap();
    // torch_makemore.py: 5,163 names; train/dev/test 28,877 / 3,607 / 3,638 examples
    // (shared/bench/ACCURACY.md, and len(w) + 1 summed over each split in Python).
    assert_eq!(names.names.len(), 5163);
    assert_eq!(&names.names[..3], ["aaron", "abbey", "abbie"]);
    assert_eq!((names.train.len(), names.dev.len(), names.test.len()), (28_877, 3_607, 3_638));
    assert_eq!(names.train.inputs.shape(), &[28_877, 3]);
    // "aaron" starts the training examples: ("...", a), ("..a", a), (".aa", r).
    assert_eq!(&names.train.inputs.data()[..9], &[0, 0, 0, 0, 0, 1, 0, 1, 1]);
    assert_eq!(&names.train.targets[..6], &[1, 1, 18, 15, 14, 0]);
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn shakespeare_splits_as_torch_char_gpt() {
    let corpus = CharCorpus::read(shared("shakespeare/input.txt"), 0.9).unwrap();
    // 1,158,419 characters, 78 distinct; int(0.9 * n) = 1,042,577 train.
    assert_eq!(corpus.vocab.len(), 78);
    assert_eq!((corpus.train.len(), corpus.val.len()), (1_042_577, 115_842));
    assert!(corpus.vocab.decode(&corpus.train[..25]).starts_with("THE TRAGEDY OF CORIOLANUS"));
    // val_loss of torch_char_gpt.py with block 64: (115842 - 1) // 64 windows.
    let (x, y) = eval_windows(&corpus.val, 64);
    assert_eq!(x.shape(), &[1_810, 64]);
    assert_eq!(y.data()[0], corpus.val[1]);
}
