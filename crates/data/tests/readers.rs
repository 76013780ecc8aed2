//! The IDX and CIFAR-10 readers and the dataset lookup, on small files written here and on
//! the MNIST subset bundled in `datasets/mnist-mini/`: no data from outside the repository.
//!
//! Every bad input must be an error that names the file; good files must round-trip exactly.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use adamant_data::locate::{self, find_in, resolve_file, search_roots, MNIST, MNIST_MINI};
use adamant_data::spec::{DataFile, DatasetSpec, Packaging};
use adamant_data::{cifar, idx, DataError, CIFAR10};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// Tests that read or set `$ADAMANT_DATA` hold this: the environment is process-global.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "adamant-readers-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Creates the subdirectory `name` and returns its path.
    fn sub(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip_file(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic pseudo-random bytes (an LCG): content that is not all one value.
fn pixels(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

/// IDX images `[n, 28, 28]` and their labels `i % 10`.
fn mnist_like(n: usize, seed: u32) -> (Vec<u8>, Vec<u8>) {
    let images = idx::encode(&[n, 28, 28], &pixels(n * 784, seed));
    let labels = idx::encode(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    (images, labels)
}

/// Writes a complete MNIST-like dataset (4 train, 3 test examples) into `dir`, gzipped under
/// the standard names unless `plain`.
fn write_mnist_dir(dir: &Path, plain: bool) {
    let (train_x, train_y) = mnist_like(4, 1);
    let (test_x, test_y) = mnist_like(3, 2);
    for (file, bytes) in MNIST.files.iter().zip([train_x, train_y, test_x, test_y]) {
        if plain {
            fs::write(dir.join(file.name.trim_end_matches(".gz")), bytes).unwrap();
        } else {
            fs::write(dir.join(file.name), gzip(&bytes)).unwrap();
        }
    }
}

/// One CIFAR record: `label`, then pixels from `seed`.
fn cifar_record(label: u8, seed: u32) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(pixels(cifar::IMAGE_BYTES, seed));
    r
}

/// Writes a complete CIFAR-10-like dataset (2 records per file) into `dir`, `.bin.gz` when
/// `gz`.
fn write_cifar_dir(dir: &Path, gz: bool) {
    for (k, file) in CIFAR10.files.iter().enumerate() {
        let bytes = [cifar_record(k as u8, 2 * k as u32), cifar_record(9, 2 * k as u32 + 1)].concat();
        if gz {
            fs::write(dir.join(format!("{}.gz", file.name)), gzip(&bytes)).unwrap();
        } else {
            fs::write(dir.join(file.name), bytes).unwrap();
        }
    }
}

/// The error's message, checked to be one line that names `path`.
fn message_naming(e: DataError, path: &Path) -> String {
    let m = e.to_string();
    assert!(m.contains(&path.display().to_string()), "error does not name {}: {m}", path.display());
    assert!(!m.contains('\n'), "error is not one line: {m}");
    m
}

#[test]
fn idx_files_round_trip_plain_and_gzipped() {
    let tmp = TempDir::new();
    let raw = pixels(3 * 5 * 7, 9);
    let bytes = idx::encode(&[3, 5, 7], &raw);
    for (name, content) in [("plain", bytes.clone()), ("zipped.gz", gzip(&bytes))] {
        let path = tmp.path().join(name);
        fs::write(&path, content).unwrap();
        let x = idx::read_images(&path).unwrap();
        assert_eq!((x.rows, x.cols), (5, 7));
        assert_eq!(x.images.shape(), &[3, 35]);
        let expected: Vec<f32> = raw.iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(x.images.data(), &expected[..]);
    }
    let labels_path = tmp.path().join("labels.gz");
    fs::write(&labels_path, gzip(&idx::encode(&[4], &[0, 9, 3, 3]))).unwrap();
    assert_eq!(idx::read_labels(&labels_path).unwrap(), vec![0, 9, 3, 3]);
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let tmp = TempDir::new();
    let bytes = idx::encode(&[6], &[1, 2, 3, 4, 5, 6]);
    let path = tmp.path().join("labels.gz");
    fs::write(&path, [gzip(&bytes[..7]), gzip(&bytes[7..])].concat()).unwrap();
    assert_eq!(idx::read_labels(&path).unwrap(), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn truncated_idx_file_is_an_error_naming_it() {
    let tmp = TempDir::new();
    let (images, _) = mnist_like(3, 4);
    let path = tmp.path().join("train-images-idx3-ubyte");
    fs::write(&path, &images[..images.len() - 1]).unwrap();
    let m = message_naming(idx::read_images(&path).unwrap_err(), &path);
    assert!(m.ends_with("expected 2352 bytes of data after the 16-byte header (dimensions 3 x 28 x 28), found 2351 bytes (file truncated?)"), "{m}");
    // Cut inside the header.
    fs::write(&path, &images[..10]).unwrap();
    let m = message_naming(idx::read_images(&path).unwrap_err(), &path);
    assert!(m.contains("16-byte header") && m.contains("truncated"), "{m}");
}

#[test]
fn truncated_gzip_is_an_error_naming_it() {
    let tmp = TempDir::new();
    let (images, _) = mnist_like(3, 4);
    let zipped = gzip(&images);
    let path = tmp.path().join("train-images-idx3-ubyte.gz");
    fs::write(&path, &zipped[..zipped.len() / 2]).unwrap();
    let m = message_naming(idx::read_images(&path).unwrap_err(), &path);
    assert!(m.contains("expected a complete gzip stream"), "{m}");
}

#[test]
fn trailing_garbage_is_an_error() {
    let tmp = TempDir::new();
    let mut labels = idx::encode(&[3], &[1, 2, 3]);
    labels.extend_from_slice(b"junk");
    let path = tmp.path().join("labels");
    fs::write(&path, labels).unwrap();
    let m = message_naming(idx::read_labels(&path).unwrap_err(), &path);
    assert!(m.ends_with("found 7 bytes (4 bytes of trailing garbage)"), "{m}");
    // Gzipped, the garbage is counted as it is inflated (the file's length says nothing).
    let path = tmp.path().join("labels.gz");
    fs::write(&path, gzip(&[&idx::encode(&[3], &[1, 2, 3])[..], b"junk"].concat())).unwrap();
    let m = message_naming(idx::read_labels(&path).unwrap_err(), &path);
    assert!(m.ends_with("found 7 bytes (4 bytes of trailing garbage)"), "{m}");
}

/// The readers stop inflating where the data ends, then read on to the end of the stream:
/// which is where gzip's checksum is checked.
#[test]
fn gzip_checksum_is_still_verified() {
    let tmp = TempDir::new();
    let path = tmp.path().join("labels.gz");
    let mut zipped = gzip(&idx::encode(&[4], &[0, 9, 3, 3]));
    // The CRC-32 is the trailer's first 4 of 8 bytes.
    let crc_at = zipped.len() - 8;
    zipped[crc_at] ^= 1;
    fs::write(&path, zipped).unwrap();
    let m = message_naming(idx::read_labels(&path).unwrap_err(), &path);
    assert!(m.contains("expected a complete gzip stream, found corrupt or truncated gzip data"), "{m}");
    let batch = tmp.path().join("b.bin.gz");
    let mut zipped = gzip(&cifar_record(1, 1));
    let crc_at = zipped.len() - 8;
    zipped[crc_at] ^= 1;
    fs::write(&batch, zipped).unwrap();
    let m = message_naming(cifar::read_batch(&batch).unwrap_err(), &batch);
    assert!(m.contains("expected a complete gzip stream"), "{m}");
}

#[test]
fn wrong_magic_is_an_error() {
    let tmp = TempDir::new();
    let (images, labels) = mnist_like(2, 5);
    let path = tmp.path().join("x");
    // Labels where images belong, and the reverse.
    fs::write(&path, &labels).unwrap();
    let m = message_naming(idx::read_images(&path).unwrap_err(), &path);
    assert!(m.contains("expected magic 0x00000803 (idx3 u8 images), found magic 0x00000801"), "{m}");
    fs::write(&path, &images).unwrap();
    let m = message_naming(idx::read_labels(&path).unwrap_err(), &path);
    assert!(m.contains("expected magic 0x00000801 (idx1 u8 labels), found magic 0x00000803"), "{m}");
    // A corrupted first byte; an element type other than u8.
    for (at, value, found) in [(0, 0x42, "0x42000803 (not an IDX file)"), (2, 0x0D, "0x00000D03 (idx3 f32)")]
    {
        let mut bad = images.clone();
        bad[at] = value;
        fs::write(&path, &bad).unwrap();
        let m = message_naming(idx::read_images(&path).unwrap_err(), &path);
        assert!(m.ends_with(&format!("found magic {found}")), "{m}");
    }
}

#[test]
fn header_count_larger_than_the_data_is_an_error() {
    let tmp = TempDir::new();
    let (mut images, mut labels) = mnist_like(3, 6);
    images[7] = 5; // count 3 -> 5
    labels[7] = 4; // count 3 -> 4
    let (xp, yp) = (tmp.path().join("images"), tmp.path().join("labels"));
    fs::write(&xp, images).unwrap();
    fs::write(&yp, labels).unwrap();
    let m = message_naming(idx::read_images(&xp).unwrap_err(), &xp);
    assert!(
        m.contains("expected 3920 bytes") && m.contains("(dimensions 5 x 28 x 28), found 2352 bytes"),
        "{m}"
    );
    let m = message_naming(idx::read_labels(&yp).unwrap_err(), &yp);
    assert!(m.ends_with(
        "expected 4 bytes of data after the 8-byte header (dimensions 4), found 3 bytes (file truncated?)"
    ));
}

#[test]
fn label_of_ten_or_more_is_an_error() {
    let tmp = TempDir::new();
    let path = tmp.path().join("labels.gz");
    for bad in [10u8, 255] {
        fs::write(&path, gzip(&idx::encode(&[4], &[0, 9, bad, 1]))).unwrap();
        let m = message_naming(idx::read_labels(&path).unwrap_err(), &path);
        assert!(m.ends_with(&format!("expected labels in 0..=9, found label {bad} at index 2")), "{m}");
    }
}

/// Headers that declare 0 examples used to be accepted: training then ran 0 steps and
/// printed "train loss 0.0000" with exit status 0 (issue 18).
#[test]
fn empty_idx_files_are_errors_naming_them() {
    let tmp = TempDir::new();
    let (xp, yp) = (tmp.path().join("images.gz"), tmp.path().join("labels.gz"));
    fs::write(&xp, gzip(&idx::encode(&[0, 28, 28], &[]))).unwrap();
    fs::write(&yp, gzip(&idx::encode(&[0], &[]))).unwrap();
    let m = message_naming(idx::read_images(&xp).unwrap_err(), &xp);
    assert!(m.ends_with("expected at least 1 image, found a header that declares 0 images"), "{m}");
    let m = message_naming(idx::read_labels(&yp).unwrap_err(), &yp);
    assert!(m.ends_with("expected at least 1 label, found a header that declares 0 labels"), "{m}");
    let m = message_naming(idx::read_split(&xp, &yp).unwrap_err(), &xp);
    assert!(m.contains("0 images"), "{m}");
    // An empty CIFAR-10 batch was already refused.
    let batch = tmp.path().join("data_batch_1.bin");
    fs::write(&batch, []).unwrap();
    let m = message_naming(cifar::read_batch(&batch).unwrap_err(), &batch);
    assert!(m.ends_with("found 0 bytes (0 whole records and 0 bytes left over)"), "{m}");
}

#[test]
fn image_count_differing_from_label_count_names_both_files() {
    let tmp = TempDir::new();
    let (images, _) = mnist_like(3, 7);
    let (_, labels) = mnist_like(4, 7);
    let (xp, yp) = (tmp.path().join("images"), tmp.path().join("labels"));
    fs::write(&xp, images).unwrap();
    fs::write(&yp, labels).unwrap();
    let e = idx::read_split(&xp, &yp).unwrap_err();
    assert!(matches!(e, DataError::Mismatch { .. }), "{e:?}");
    let m = message_naming(e, &xp);
    assert!(m.contains(&yp.display().to_string()) && m.ends_with("3 images but 4 labels"), "{m}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let tmp = TempDir::new();
    let path = tmp.path().join("nothing-here.gz");
    let e = idx::read_images(&path).unwrap_err();
    assert!(matches!(&e, DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    message_naming(e, &path);
    message_naming(cifar::read_batch(&path).unwrap_err(), &path);
}

#[test]
fn cifar_batches_round_trip_plain_and_gzipped() {
    let tmp = TempDir::new();
    let records = [cifar_record(4, 1), cifar_record(0, 2), cifar_record(9, 3)];
    let bytes = records.concat();
    for (name, content) in [("b.bin", bytes.clone()), ("b.bin.gz", gzip(&bytes))] {
        let path = tmp.path().join(name);
        fs::write(&path, content).unwrap();
        let d = cifar::read_batch(&path).unwrap();
        assert_eq!(d.labels, vec![4, 0, 9]);
        assert_eq!(d.images.shape(), &[3, 3, 32, 32]);
        // Record 1, green plane, row 2, column 5 is byte 1 + 1024 + 2 * 32 + 5 of the record.
        assert_eq!(d.images.at(&[1, 1, 2, 5]), records[1][1 + 1024 + 69] as f32 / 255.0);
        let expected: Vec<f32> =
            records.iter().flat_map(|r| r[1..].iter().map(|&p| p as f32 / 255.0)).collect();
        assert_eq!(d.images.data(), &expected[..]);
    }
}

#[test]
fn cifar_size_not_a_multiple_of_3073_is_an_error() {
    let tmp = TempDir::new();
    let path = tmp.path().join("data_batch_1.bin");
    let mut bytes = [cifar_record(1, 1), cifar_record(2, 2)].concat();
    bytes.truncate(bytes.len() - 100);
    fs::write(&path, &bytes).unwrap();
    let m = message_naming(cifar::read_batch(&path).unwrap_err(), &path);
    assert!(m.contains("expected a positive multiple of 3073 bytes"), "{m}");
    assert!(m.ends_with("found 6046 bytes (1 whole records and 2973 bytes left over)"), "{m}");
}

#[test]
fn cifar_label_of_ten_is_an_error() {
    let tmp = TempDir::new();
    let path = tmp.path().join("test_batch.bin.gz");
    fs::write(&path, gzip(&[cifar_record(1, 1), cifar_record(10, 2)].concat())).unwrap();
    let m = message_naming(cifar::read_batch(&path).unwrap_err(), &path);
    assert!(m.ends_with("expected labels in 0..=9, found label 10 in record 1 (byte offset 3073)"), "{m}");
}

#[test]
fn cifar_class_names_come_from_the_meta_file() {
    let tmp = TempDir::new();
    let dir = tmp.sub("cifar10");
    write_cifar_dir(&dir, true);
    let s = locate::read_dir(&CIFAR10, &dir).unwrap();
    assert_eq!(s.class_names, cifar::CLASS_NAMES);
    assert_eq!(s.train.len(), 10);
    assert_eq!(s.train.labels, vec![0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    assert_eq!(s.test.labels, vec![5, 9]);
    let meta = dir.join("batches.meta.txt");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    fs::write(&meta, format!("{}\n\n", names.join("\n"))).unwrap();
    assert_eq!(locate::read_dir(&CIFAR10, &dir).unwrap().class_names, names);
    fs::write(&meta, "a\nb\n").unwrap();
    let m = message_naming(locate::read_dir(&CIFAR10, &dir).unwrap_err(), &meta);
    assert!(m.ends_with("expected 10 class names, one per line, found 2 names"), "{m}");
}

#[test]
fn mnist_like_dirs_load_plain_or_gzipped() {
    let tmp = TempDir::new();
    for plain in [false, true] {
        let dir = tmp.sub(if plain { "plain" } else { "gz" });
        write_mnist_dir(&dir, plain);
        let found = find_in(&MNIST, Some(&dir), &[]).unwrap();
        let s = locate::read_dir(&MNIST, &found).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (4, 3));
        assert_eq!(s.train.images.shape(), &[4, 784]);
        assert_eq!(s.test.labels, vec![0, 1, 2]);
        let expected: Vec<f32> = pixels(3 * 784, 2).iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(s.test.images.data(), &expected[..]);
        assert_eq!(s.class_names[7], "7");
        assert_eq!(s.source, dir);
    }
}

#[test]
fn mnist_images_must_be_28_by_28() {
    let tmp = TempDir::new();
    let dir = tmp.sub("mnist");
    write_mnist_dir(&dir, false);
    let path = dir.join("t10k-images-idx3-ubyte.gz");
    fs::write(&path, gzip(&idx::encode(&[3, 14, 56], &pixels(3 * 784, 2)))).unwrap();
    let m = message_naming(locate::read_dir(&MNIST, &dir).unwrap_err(), &path);
    assert!(m.ends_with("expected 28 x 28 images (mnist), found 14 x 56"), "{m}");
}

#[test]
fn a_bad_test_split_fails_the_whole_load() {
    let tmp = TempDir::new();
    let dir = tmp.sub("mnist");
    write_mnist_dir(&dir, false);
    let path = dir.join("t10k-labels-idx1-ubyte.gz");
    fs::write(&path, gzip(&idx::encode(&[2], &[1, 2]))).unwrap();
    let m = message_naming(locate::read_dir(&MNIST, &dir).unwrap_err(), &path);
    assert!(m.ends_with("3 images but 2 labels"), "{m}");
}

#[test]
fn file_names_are_tolerant_of_gz() {
    let tmp = TempDir::new();
    let dir = tmp.path();
    fs::write(dir.join("a"), b"x").unwrap();
    fs::write(dir.join("b.bin.gz"), b"x").unwrap();
    fs::write(dir.join("c.gz"), b"x").unwrap();
    fs::write(dir.join("c"), b"x").unwrap();
    assert_eq!(resolve_file(dir, "a.gz"), Some(dir.join("a")));
    assert_eq!(resolve_file(dir, "b.bin"), Some(dir.join("b.bin.gz")));
    assert_eq!(resolve_file(dir, "c.gz"), Some(dir.join("c.gz")), "the exact name comes first");
    assert_eq!(resolve_file(dir, "d.bin"), None);
    let cifar = tmp.sub("cifar10");
    write_cifar_dir(&cifar, false);
    assert_eq!(find_in(&CIFAR10, Some(&cifar), &[]).unwrap(), cifar);
}

#[test]
fn explicit_directory_is_final() {
    let tmp = TempDir::new();
    let good_root = tmp.sub("root");
    write_mnist_dir(&tmp.sub("root/mnist"), false);
    let explicit = tmp.sub("explicit");
    write_mnist_dir(&explicit, false);
    fs::remove_file(explicit.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    // The roots hold a complete copy, but an explicit directory is never second-guessed.
    let e = find_in(&MNIST, Some(&explicit), std::slice::from_ref(&good_root)).unwrap_err();
    assert!(matches!(&e, DataError::NotFound { searched, .. } if searched.len() == 1));
    let m = message_naming(e, &explicit);
    assert!(m.contains("missing t10k-labels-idx1-ubyte.gz") && m.contains("given explicitly"), "{m}");
    // Nor is a download tried for it.
    let m = locate::load(&MNIST, Some(&explicit), true).unwrap_err().to_string();
    assert!(!m.contains("download"), "{m}");
    let nowhere = tmp.path().join("nowhere");
    let m = message_naming(find_in(&MNIST, Some(&nowhere), &[good_root]).unwrap_err(), &nowhere);
    assert!(m.contains("no such directory"), "{m}");
}

#[test]
fn roots_are_searched_in_order_and_all_listed_when_nothing_is_found() {
    let tmp = TempDir::new();
    let (first, second, third) = (tmp.sub("first"), tmp.sub("second"), tmp.sub("third"));
    // `first` holds an incomplete copy: it is skipped, with the reason.
    let partial = tmp.sub("first/mnist");
    write_mnist_dir(&partial, false);
    fs::remove_file(partial.join("train-images-idx3-ubyte.gz")).unwrap();
    write_mnist_dir(&tmp.sub("second/mnist"), true);
    write_mnist_dir(&tmp.sub("third/mnist"), false);
    let roots = [first.clone(), second.clone(), third.clone()];
    assert_eq!(find_in(&MNIST, None, &roots).unwrap(), second.join("mnist"));
    fs::remove_dir_all(second.join("mnist")).unwrap();
    assert_eq!(find_in(&MNIST, None, &roots).unwrap(), third.join("mnist"));
    fs::remove_dir_all(third.join("mnist")).unwrap();
    fs::write(third.join("mnist"), b"a file").unwrap();
    let e = find_in(&MNIST, None, &roots).unwrap_err();
    let DataError::NotFound { dataset, searched } = &e else { panic!("{e:?}") };
    assert_eq!(dataset, "mnist");
    assert_eq!(
        searched,
        &[
            format!("{}: missing train-images-idx3-ubyte.gz", partial.display()),
            format!("{}: no such directory", second.join("mnist").display()),
            format!("{}: not a directory", third.join("mnist").display()),
        ]
    );
}

#[test]
fn adamant_data_comes_before_local_datasets() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = TempDir::new();
    write_mnist_dir(&tmp.sub("mnist"), false);
    let previous = std::env::var_os(locate::DATA_ENV);
    std::env::set_var(locate::DATA_ENV, tmp.path());
    let roots = search_roots();
    let found = locate::find(&MNIST, None);
    let download_dir = locate::download_dir(&MNIST);
    std::env::remove_var(locate::DATA_ENV);
    let roots_unset = search_roots();
    if let Some(v) = previous {
        std::env::set_var(locate::DATA_ENV, v);
    }
    assert_eq!(
        roots,
        [tmp.path().to_path_buf(), PathBuf::from("./datasets"), PathBuf::from("/usr/share/datasets")]
    );
    assert_eq!(roots_unset, [PathBuf::from("./datasets"), PathBuf::from("/usr/share/datasets")]);
    assert_eq!(found.unwrap(), tmp.path().join("mnist"));
    assert_eq!(download_dir, tmp.path().join("mnist"));
}

#[test]
fn a_failed_download_is_reported_after_the_places_searched() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = TempDir::new();
    // A port on which nothing listens: the connection is refused at once, with no network.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mirror: &'static str = Box::leak(format!("http://127.0.0.1:{port}/").into_boxed_str());
    let mirrors: &'static [&'static str] = Box::leak(vec![mirror].into_boxed_slice());
    let spec = DatasetSpec {
        name: "adamant-test-unfindable",
        files: &[DataFile { name: "labels.gz", sha256: "00", size: 8, download_size: 100 }],
        mirrors,
        packaging: Packaging::Files,
    };
    let previous = std::env::var_os(locate::DATA_ENV);
    std::env::set_var(locate::DATA_ENV, tmp.path());
    let e = locate::load(&spec, None, true).unwrap_err();
    let no_download = locate::load(&spec, None, false).unwrap_err();
    match previous {
        Some(v) => std::env::set_var(locate::DATA_ENV, v),
        None => std::env::remove_var(locate::DATA_ENV),
    }
    let DataError::NotFound { searched, .. } = &e else { panic!("{e:?}") };
    assert_eq!(searched.len(), 4, "{searched:?}");
    assert_eq!(searched[0], format!("{}: no such directory", tmp.path().join(spec.name).display()));
    assert!(searched[3].starts_with(&format!("download into {}: ", tmp.path().join(spec.name).display())));
    if cfg!(feature = "download") {
        assert!(searched[3].contains(mirror), "{}", searched[3]);
    } else {
        // Without an HTTP client the error says why nothing was fetched.
        assert!(searched[3].ends_with("built without its `download` feature"), "{}", searched[3]);
    }
    assert!(!no_download.to_string().contains("download"), "{no_download}");
}

#[test]
fn bundled_mnist_mini_loads_with_mnist_content() {
    let s = adamant_data::mnist_mini().unwrap();
    assert!(s.source.ends_with("datasets/mnist-mini"), "{}", s.source.display());
    assert_eq!((s.train.len(), s.test.len()), (10_000, 10_000));
    assert_eq!(s.train.images.shape(), &[10_000, 784]);
    assert_eq!(s.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(s.test.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(s.train.class_counts(10).iter().sum::<usize>(), 10_000);
    assert!(s.train.class_counts(10).iter().all(|&c| c > 800), "{:?}", s.train.class_counts(10));
    let data = s.train.images.data();
    assert!(data.iter().all(|&x| (0.0..=1.0).contains(&x)));
    let mean = data.iter().map(|&x| x as f64).sum::<f64>() / data.len() as f64;
    assert!((0.12..0.14).contains(&mean), "MNIST's mean pixel is about 0.13, got {mean}");
    // The first training image (a 5) has ink in its middle rows, none in its corner.
    assert_eq!(s.train.images.at(&[0, 0]), 0.0);
    assert!(s.train.images.data()[14 * 28..15 * 28].iter().any(|&x| x > 0.5));
}

#[test]
fn bundled_mnist_mini_matches_its_checksums() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist-mini");
    for (file, full) in MNIST_MINI.files.iter().zip(MNIST.files) {
        let content = gunzip_file(&dir.join(file.name));
        assert_eq!(sha256_hex(&content), file.sha256, "{}", file.name);
        // The test files are MNIST's whole test set.
        if file.name.starts_with("t10k") {
            assert_eq!(file.sha256, full.sha256);
        }
    }
}
