//! The loaders on the real datasets: the shared copies beside the repository
//! (`../shared/datasets/`) and Debian's Fashion-MNIST package. Ignored by default; run with
//! `cargo test --release -p adamant-data -- --include-ignored`. When the data is missing these
//! tests fail (the load returns an error), they do not pass silently.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use adamant_data::locate::{self, find_in, resolve_file, SYSTEM_ROOT};
use adamant_data::spec::DatasetSpec;
use adamant_data::{DataError, CIFAR10, FASHION_MNIST, MNIST};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets");

fn shared(name: &str) -> PathBuf {
    Path::new(SHARED).join(name)
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "adamant-real-data-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The uncompressed content of a file, plain or gzip.
fn content(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A copy of dataset directory `src` in a temp dir (the spec's files only; with `edit`
/// applied to the uncompressed content of `bad`, which is written back uncompressed under its
/// name without `.gz`, so the plain-file path of the reader is exercised too).
fn copy_with(
    spec: &DatasetSpec,
    src: &Path,
    bad: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) -> (TempDir, PathBuf) {
    let tmp = TempDir::new();
    let dir = tmp.0.join(spec.name);
    fs::create_dir_all(&dir).unwrap();
    for file in spec.files {
        let from =
            resolve_file(src, file.name).unwrap_or_else(|| panic!("{} in {}", file.name, src.display()));
        if file.name == bad {
            continue;
        }
        let to = dir.join(from.file_name().unwrap());
        // Large unchanged files are linked, not copied: only the bad one is written.
        #[cfg(unix)]
        std::os::unix::fs::symlink(fs::canonicalize(&from).unwrap(), &to).unwrap();
        #[cfg(not(unix))]
        fs::copy(&from, &to).unwrap();
    }
    let mut data = content(&resolve_file(src, bad).unwrap());
    edit(&mut data);
    let bad_path = dir.join(bad.trim_end_matches(".gz"));
    fs::write(&bad_path, data).unwrap();
    (tmp, bad_path)
}

/// The error's message, checked to be one line naming `path`.
fn message_naming(e: DataError, path: &Path) -> String {
    let m = e.to_string();
    assert!(m.contains(&path.display().to_string()), "error does not name {}: {m}", path.display());
    assert!(!m.contains('\n'), "{m}");
    m
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn mnist_loads_with_known_content() {
    let s = adamant_data::mnist(Some(&shared("mnist"))).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!(s.train.images.shape(), &[60_000, 784]);
    assert_eq!(s.test.images.shape(), &[10_000, 784]);
    assert_eq!(s.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(s.test.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(s.train.class_counts(10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(s.test.class_counts(10).iter().sum::<usize>(), 10_000);
    let data = s.train.images.data();
    assert!(data.iter().all(|&x| (0.0..=1.0).contains(&x)));
    // MNIST's mean pixel, the 0.1307 of every MNIST normalisation.
    let mean = data.iter().map(|&x| x as f64).sum::<f64>() / data.len() as f64;
    assert!((mean - 0.1307).abs() < 1e-4, "{mean}");
    // The bundled subset is exactly the first 10,000 training examples.
    let mini = adamant_data::mnist_mini().unwrap();
    assert_eq!(mini.train.labels, s.train.labels[..10_000]);
    assert_eq!(mini.train.images.data(), s.train.take(10_000).images.data());
    assert_eq!(mini.test.images.data(), s.test.images.data());
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn mnist_files_match_the_spec_checksums() {
    let dir = find_in(&MNIST, Some(&shared("mnist")), &[]).unwrap();
    for file in MNIST.files {
        let path = resolve_file(&dir, file.name).unwrap();
        assert_eq!(sha256_hex(&content(&path)), file.sha256, "{}", path.display());
    }
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn mnist_made_bad_gives_the_right_errors() {
    let src = shared("mnist");
    let load = |dir: &Path| locate::read_dir(&MNIST, dir).unwrap_err();

    let (_tmp, bad) = copy_with(&MNIST, &src, "train-images-idx3-ubyte.gz", |d| d.truncate(d.len() - 784));
    let m = message_naming(load(bad.parent().unwrap()), &bad);
    assert!(m.ends_with("expected 47040000 bytes of data after the 16-byte header (dimensions 60000 x 28 x 28), found 47039216 bytes (file truncated?)"), "{m}");

    let (_tmp, bad) = copy_with(&MNIST, &src, "t10k-images-idx3-ubyte.gz", |d| d[3] = 0x01);
    let m = message_naming(load(bad.parent().unwrap()), &bad);
    assert!(m.contains("expected magic 0x00000803 (idx3 u8 images), found magic 0x00000801"), "{m}");

    let (_tmp, bad) = copy_with(&MNIST, &src, "train-labels-idx1-ubyte.gz", |d| d[8 + 12_345] = 10);
    let m = message_naming(load(bad.parent().unwrap()), &bad);
    assert!(m.ends_with("expected labels in 0..=9, found label 10 at index 12345"), "{m}");

    // One label fewer, with the header's count changed to match: the files disagree.
    let (_tmp, bad) = copy_with(&MNIST, &src, "t10k-labels-idx1-ubyte.gz", |d| {
        d.pop();
        d[4..8].copy_from_slice(&9_999u32.to_be_bytes());
    });
    let m = message_naming(load(bad.parent().unwrap()), &bad);
    assert!(m.ends_with("10000 images but 9999 labels"), "{m}");

    // A truncated .gz (a download cut short) rather than truncated content.
    let tmp = TempDir::new();
    let dir = tmp.0.join("mnist");
    fs::create_dir_all(&dir).unwrap();
    for file in MNIST.files {
        fs::copy(src.join(file.name), dir.join(file.name)).unwrap();
    }
    let cut = dir.join("train-images-idx3-ubyte.gz");
    let bytes = fs::read(&cut).unwrap();
    fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let m = message_naming(load(&dir), &cut);
    assert!(m.contains("expected a complete gzip stream"), "{m}");
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn cifar10_jpeg_copy_loads_with_balanced_classes() {
    let s = adamant_data::cifar10(Some(&shared("cifar10-jpeg"))).unwrap();
    assert_eq!(s.train.images.shape(), &[50_000, 3, 32, 32]);
    assert_eq!(s.test.images.shape(), &[10_000, 3, 32, 32]);
    assert_eq!(s.train.class_counts(10), [5000; 10]);
    assert_eq!(s.test.class_counts(10), [1000; 10]);
    assert_eq!(s.class_names, adamant_data::cifar::CLASS_NAMES);
    let data = s.train.images.data();
    assert!(data.iter().all(|&x| (0.0..=1.0).contains(&x)));
    // CIFAR-10's channel means are about 0.49, 0.48, 0.45: the planes are in RGB order.
    let plane_mean = |c: usize| {
        let sum: f64 =
            data.chunks_exact(3072).map(|img| img[c * 1024..(c + 1) * 1024].iter().sum::<f32>() as f64).sum();
        sum / (50_000.0 * 1024.0)
    };
    let (r, g, b) = (plane_mean(0), plane_mean(1), plane_mean(2));
    assert!((r - 0.491).abs() < 0.01 && (g - 0.482).abs() < 0.01 && (b - 0.447).abs() < 0.01, "{r} {g} {b}");
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn cifar10_made_bad_gives_the_right_errors() {
    let src = shared("cifar10-jpeg");
    let (_tmp, bad) = copy_with(&CIFAR10, &src, "test_batch.bin", |d| d.truncate(d.len() - 1000));
    let m = message_naming(locate::read_dir(&CIFAR10, bad.parent().unwrap()).unwrap_err(), &bad);
    assert!(m.ends_with("found 30729000 bytes (9999 whole records and 2073 bytes left over)"), "{m}");

    let (_tmp, bad) = copy_with(&CIFAR10, &src, "data_batch_3.bin", |d| d[3073 * 777] = 10);
    let m = message_naming(locate::read_dir(&CIFAR10, bad.parent().unwrap()).unwrap_err(), &bad);
    assert!(
        m.ends_with("expected labels in 0..=9, found label 10 in record 777 (byte offset 2387721)"),
        "{m}"
    );
}

#[test]
#[ignore = "needs dataset-fashion-mnist"]
fn fashion_mnist_loads_from_the_debian_package() {
    let system = PathBuf::from(SYSTEM_ROOT);
    let dir = find_in(&FASHION_MNIST, None, std::slice::from_ref(&system)).unwrap();
    assert_eq!(dir, system.join("fashion-mnist"));
    for file in FASHION_MNIST.files {
        let path = resolve_file(&dir, file.name).unwrap();
        assert_eq!(sha256_hex(&content(&path)), file.sha256, "{}", path.display());
    }
    let s = adamant_data::fashion_mnist(Some(&dir)).unwrap();
    assert_eq!(s.train.images.shape(), &[60_000, 784]);
    assert_eq!(s.train.class_counts(10), [6000; 10]);
    assert_eq!(s.test.class_counts(10), [1000; 10]);
    assert_eq!(s.class_names[9], "Ankle boot");
    // Fashion-MNIST's first training image is an ankle boot, its first test image too.
    assert_eq!((s.train.labels[0], s.test.labels[0]), (9, 9));
}
