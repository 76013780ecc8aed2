//! Decompression and size bombs (issue 18): files whose header is valid but which hold far
//! more than it declares (a megabyte of gzip that inflates to a gigabyte of zeros, a sparse
//! plain file of a gigabyte), or which declare far more than they hold. Each must be refused
//! with an error naming the file, without reading or allocating what it holds or declares.
//!
//! The readers run in a child process (this test binary again, with only [`child_reader`]
//! selected), so that its peak resident set (`VmHWM`) is the reader's alone; the child runs
//! under `ulimit -v` of [`CHILD_ADDRESS_SPACE_KB`], so that even an allocation it never
//! touches (which `VmHWM` would not show) fails it. Before the fix the readers read the whole
//! file and inflated the whole stream: 1,036 MB resident for the gigabyte gzip bombs (1,026 MB
//! and 4.4 s for the sparse file), and under the address-space limit an abort.
#![cfg(target_os = "linux")]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use adamant_data::{cifar, idx};
use flate2::write::GzEncoder;
use flate2::Compression;

/// What every bomb holds past its header.
const GIB: u64 = 1 << 30;
/// The peak resident set a refused bomb may cost (the bound).
const MAX_PEAK_KB: u64 = 400 << 10;
/// The child's address space: less than a gigabyte bomb, or a 2 GB declared size, would need.
const CHILD_ADDRESS_SPACE_KB: u64 = 1 << 20;
/// Set (to `reader path`) in the child: which reader to run on which file.
const CHILD_ENV: &str = "ADAMANT_SIZE_BOMB_CHILD";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "adamant-size-bombs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An IDX header for `dims` (the magic, then one `u32` per dimension), without data.
fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut header = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        header.extend_from_slice(&d.to_be_bytes());
    }
    header
}

/// Writes `prefix` followed by `zeros` zero bytes as one gzip stream into `path`, a MiB at a
/// time: a gigabyte of zeros becomes 1 MB, in about 0.4 s (at the fastest level, 10 MB).
fn write_gzip_bomb(path: &Path, prefix: &[u8], zeros: u64) {
    let mut gz = GzEncoder::new(BufWriter::new(File::create(path).unwrap()), Compression::default());
    gz.write_all(prefix).unwrap();
    let block = vec![0; 1 << 20];
    for _ in 0..zeros / block.len() as u64 {
        gz.write_all(&block).unwrap();
    }
    gz.finish().unwrap().flush().unwrap();
}

/// Writes `prefix` into `path` and extends the file with zeros to `prefix.len() + zeros`
/// bytes without writing them (a sparse file: instant, and no disk space).
fn write_sparse(path: &Path, prefix: &[u8], zeros: u64) {
    let mut file = File::create(path).unwrap();
    file.write_all(prefix).unwrap();
    file.set_len(prefix.len() as u64 + zeros).unwrap();
}

/// What the child reported: the reader's error, its peak resident set and its time.
struct ChildReport {
    error: String,
    peak_kb: u64,
    seconds: f64,
}

/// Runs `reader` (`images`, `labels` or `cifar`) on `path` in a child process and returns
/// what it reported; the reader must have failed.
fn run_in_child(reader: &str, path: &Path) -> ChildReport {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {CHILD_ADDRESS_SPACE_KB} && exec \"$0\" --exact child_reader --nocapture"))
        .arg(&exe)
        .env(CHILD_ENV, format!("{reader} {}", path.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed ({}):\n{stdout}\n{stderr}", output.status);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("child printed no {name}:\n{stdout}\n{stderr}"))
            .to_string()
    };
    let report = ChildReport {
        error: field("bomb-error: "),
        peak_kb: field("bomb-peak-kb: ").parse().unwrap(),
        seconds: field("bomb-seconds: ").parse().unwrap(),
    };
    println!(
        "{reader} {}: peak {} MB, {:.3} s: {}",
        path.display(),
        report.peak_kb >> 10,
        report.seconds,
        report.error
    );
    assert!(
        report.error.contains(&path.display().to_string()),
        "error does not name the file: {}",
        report.error
    );
    assert!(
        report.peak_kb < MAX_PEAK_KB,
        "peak resident set {} kB refusing {}",
        report.peak_kb,
        path.display()
    );
    report
}

/// The child's side of [`run_in_child`]: does nothing unless [`CHILD_ENV`] is set (so in a
/// normal test run it passes at once). Prints the reader's error, `VmHWM` (the process's peak
/// resident set, in kB) and the reader's time; a reader that succeeds fails the child.
#[test]
fn child_reader() {
    let Ok(job) = std::env::var(CHILD_ENV) else { return };
    let (reader, path) = job.split_once(' ').unwrap();
    let path = Path::new(path);
    let started = Instant::now();
    let error = match reader {
        "images" => idx::read_images(path).err(),
        "labels" => idx::read_labels(path).err(),
        "cifar" => cifar::read_batch(path).err(),
        _ => panic!("unknown reader {reader}"),
    };
    let seconds = started.elapsed().as_secs_f64();
    let error = error.unwrap_or_else(|| panic!("{reader} read {} without an error", path.display()));
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let peak_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .unwrap()
        .trim();
    println!("bomb-error: {error}");
    println!("bomb-peak-kb: {peak_kb}");
    println!("bomb-seconds: {seconds}");
}

/// The bomb: a valid header for MNIST's 60,000 training images, then a gigabyte of
/// zeros, gzipped (1 MB). The reader inflates the 47 MB declared and 1 MiB more.
#[test]
fn gzip_bomb_of_mnist_images_is_refused_in_bounded_memory() {
    let tmp = TempDir::new();
    let path = tmp.join("train-images-idx3-ubyte.gz");
    write_gzip_bomb(&path, &idx_header(&[60_000, 28, 28]), GIB);
    let report = run_in_child("images", &path);
    assert!(
        report.error.ends_with(
            "expected 47040000 bytes of data after the 16-byte header (dimensions 60000 x 28 x 28), \
             found more than 48088576 bytes (trailing data after the 47040000 bytes its header \
             declares; not read further)"
        ),
        "{}",
        report.error
    );
    // Labels: a header for 60,000 of them, then the gigabyte.
    let path = tmp.join("train-labels-idx1-ubyte.gz");
    write_gzip_bomb(&path, &idx_header(&[60_000]), GIB);
    let report = run_in_child("labels", &path);
    assert!(report.error.contains("found more than 1108576 bytes (trailing data"), "{}", report.error);
}

/// CIFAR-10 has no header: a gigabyte of zeros is a gigabyte of valid records (label 0, black
/// pixels). A file may hold at most 10,000 of them; the reader inflates that and one byte.
#[test]
fn gzip_bomb_of_cifar_records_is_refused_at_the_cap() {
    let tmp = TempDir::new();
    let path = tmp.join("data_batch_1.bin.gz");
    write_gzip_bomb(&path, &[], GIB);
    let report = run_in_child("cifar", &path);
    assert!(
        report.error.ends_with(
            "expected at most 10000 records (30730000 bytes), the size of a CIFAR-10 file, found more than \
             30730000 bytes (not read further)"
        ),
        "{}",
        report.error
    );
}

/// A plain file's length is known before it is read: a gigabyte past the header (or past
/// 10,000 CIFAR-10 records) is refused at once, unread, with the exact count.
#[test]
fn oversized_plain_files_are_refused_unread() {
    let tmp = TempDir::new();
    let path = tmp.join("train-images-idx3-ubyte");
    write_sparse(&path, &idx_header(&[60_000, 28, 28]), GIB);
    let report = run_in_child("images", &path);
    assert!(
        report.error.ends_with(
            "expected 47040000 bytes of data after the 16-byte header (dimensions 60000 x 28 x 28), found \
             1073741824 bytes (1026701824 bytes of trailing garbage)"
        ),
        "{}",
        report.error
    );
    // Unread: reading the gigabyte took 4.4 s before (on 2 busy cores), refusing it 2 ms.
    assert!(report.seconds < 0.5, "{} s", report.seconds);
    let path = tmp.join("data_batch_1.bin");
    write_sparse(&path, &[], GIB);
    let report = run_in_child("cifar", &path);
    assert!(
        report.error.ends_with(
            "expected at most 10000 records (30730000 bytes), the size of a CIFAR-10 file, \
             found 1073741824 bytes"
        ),
        "{}",
        report.error
    );
    assert!(report.seconds < 0.5, "{} s", report.seconds);
}

/// The reverse: a header that declares 2,048,000,000 bytes (under the 2 GiB maximum) over a
/// 100-byte body is a truncated file, found without allocating what the header declares
/// (under the child's 1 GiB address space, such an allocation would abort it).
#[test]
fn header_declaring_2_gb_over_a_tiny_body_allocates_nothing_for_it() {
    let tmp = TempDir::new();
    let content = [idx_header(&[40_000, 256, 200]), vec![7; 100]].concat();
    let plain = tmp.join("images");
    fs::write(&plain, &content).unwrap();
    let zipped = tmp.join("images.gz");
    write_gzip_bomb(&zipped, &content, 0);
    for path in [plain, zipped] {
        let report = run_in_child("images", &path);
        assert!(
            report.error.ends_with(
                "expected 2048000000 bytes of data after the 16-byte header (dimensions 40000 x 256 x 200), \
                 found 100 bytes (file truncated?)"
            ),
            "{}",
            report.error
        );
    }
}

/// A header that declares more than [`idx::MAX_DATA_BYTES`] is refused from the header alone,
/// in memory as from a file.
#[test]
fn header_declaring_more_than_the_maximum_is_refused() {
    let tmp = TempDir::new();
    let path = tmp.join("images.gz");
    write_gzip_bomb(&path, &idx_header(&[60_000, 1000, 1000]), 1 << 20);
    let expected = "expected at most 2147483648 bytes of data after the 16-byte header, found dimensions \
                    60000 x 1000 x 1000 (60000000000 bytes)";
    let m = idx::read_images(&path).unwrap_err().to_string();
    assert_eq!(m, format!("{}: {expected}", path.display()));
    let m = idx::parse_images(&idx_header(&[60_000, 1000, 1000]), Path::new("x")).unwrap_err().to_string();
    assert_eq!(m, format!("x: {expected}"));
}

/// The in-memory readers the fuzz targets call cap what they inflate the same way.
#[test]
fn in_memory_bombs_are_capped_too() {
    let tmp = TempDir::new();
    let path = tmp.join("bomb.gz");
    write_gzip_bomb(&path, &idx_header(&[1, 28, 28]), 64 << 20);
    let raw = fs::read(&path).unwrap();
    let m = idx::read_images_from(&raw[..], &path).unwrap_err().to_string();
    let tail = "found more than 1049360 bytes (trailing data after the 784 bytes its header declares; \
                not read further)";
    assert!(m.ends_with(tail), "{m}");
    let m = idx::decompress_capped(raw, 1000, &path).unwrap_err().to_string();
    let tail = "expected at most 1000 bytes of content, found more than 1000 bytes once gunzipped \
                (not inflated further)";
    assert!(m.ends_with(tail), "{m}");
    write_gzip_bomb(&path, &[], 64 << 20);
    let m = cifar::read_batch_from(&fs::read(&path).unwrap()[..], &path).unwrap_err().to_string();
    assert!(m.ends_with("found more than 30730000 bytes (not read further)"), "{m}");
}
