//! CIFAR-10's binary format: files of 3,073-byte records, each a label byte followed by a
//! 32x32 image as three 1,024-byte planes (red, green, blue; rows top to bottom).
//!
//! That record layout is already channel-major, so a batch of records is NCHW after dropping
//! the label bytes: images come out as `[N, 3, 32, 32]` in [0, 1] with no transposition.
//! Files may be plain or gzip-compressed (decided from the content, as for IDX files).
//!
//! CIFAR-10's files hold 10,000 records each, and a file may hold at most that many
//! ([`MAX_RECORDS`]): a plain file's length is checked before it is read, and a gzip stream
//! is inflated only up to that size and one byte past it, so a decompression bomb (a few
//! megabytes of gzip that inflate to gigabytes) is refused with 30 MB of memory, naming the
//! file and the cap (issue 18; `tests/size_bombs.rs` holds it).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use adamant_tensor::Tensor;

use crate::idx::{extend_scaled, Content};
use crate::{DataError, Dataset};

/// Image side length.
pub const SIDE: usize = 32;
/// Bytes of one image: 3 planes of 32x32.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Bytes of one record: the label byte and the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Number of classes; labels must be below it.
pub const NUM_CLASSES: usize = 10;
/// The training files, in the order their records are concatenated.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The optional file of class names, one per line.
pub const META_FILE: &str = "batches.meta.txt";
/// The standard class names, index = label, used when no `batches.meta.txt` is present.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
/// The most records a file may hold: every file of CIFAR-10 holds exactly 10,000. A file
/// with more is refused before more than that is read (or inflated): a decompression bomb
/// must not decide how much memory the reader takes.
pub const MAX_RECORDS: usize = 10_000;
/// The most bytes a file may hold: [`MAX_RECORDS`] records.
const MAX_FILE_BYTES: usize = MAX_RECORDS * RECORD_BYTES;

/// The error for a file of more than [`MAX_FILE_BYTES`]; `found` says how much it holds.
fn over_cap(path: &Path, found: String) -> DataError {
    DataError::format(
        path,
        format!("at most {MAX_RECORDS} records ({MAX_FILE_BYTES} bytes), the size of a CIFAR-10 file"),
        found,
    )
}

/// Checks CIFAR binary `bytes` read from `path` (named in errors) and returns the number of
/// records: the size must be a positive multiple of 3,073, at most [`MAX_RECORDS`] records,
/// and every label below 10.
fn check_batch(bytes: &[u8], path: &Path) -> Result<usize, DataError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(over_cap(path, format!("{} bytes", bytes.len())));
    }
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(DataError::format(
            path,
            format!("a positive multiple of {RECORD_BYTES} bytes (records of 1 label byte + {IMAGE_BYTES} pixel bytes)"),
            format!(
                "{} bytes ({} whole records and {} bytes left over)",
                bytes.len(),
                bytes.len() / RECORD_BYTES,
                bytes.len() % RECORD_BYTES
            ),
        ));
    }
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if record[0] as usize >= NUM_CLASSES {
            return Err(DataError::format(
                path,
                format!("labels in 0..={}", NUM_CLASSES - 1),
                format!("label {} in record {i} (byte offset {})", record[0], i * RECORD_BYTES),
            ));
        }
    }
    Ok(bytes.len() / RECORD_BYTES)
}

/// Converts checked batches to one dataset, records in the order given.
fn to_dataset(batches: &[Vec<u8>]) -> Dataset {
    let n: usize = batches.iter().map(|b| b.len() / RECORD_BYTES).sum();
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for record in batches.iter().flat_map(|b| b.chunks_exact(RECORD_BYTES)) {
        labels.push(record[0] as usize);
        extend_scaled(&mut pixels, &record[1..]);
    }
    Dataset { images: Tensor::from_vec(pixels, &[n, 3, SIDE, SIDE]), labels }
}

/// Parses CIFAR-10 binary records from bytes already read from `path` (named in errors).
pub fn parse_batch(bytes: Vec<u8>, path: &Path) -> Result<Dataset, DataError> {
    check_batch(&bytes, path)?;
    Ok(to_dataset(&[bytes]))
}

/// Reads the records of `content` and checks them (see [`check_batch`]): at most
/// [`MAX_RECORDS`] are read, and a plain file longer than that is refused unread.
fn read_content<R: Read>(mut content: Content<'_, R>) -> Result<Vec<u8>, DataError> {
    let path = content.path();
    if let Some(len) = content.known_len().filter(|&len| len > MAX_FILE_BYTES as u64) {
        return Err(over_cap(path, format!("{len} bytes")));
    }
    let bytes = content.read_up_to(MAX_FILE_BYTES)?;
    if bytes.len() == MAX_FILE_BYTES && content.skip_up_to(1)? > 0 {
        return Err(over_cap(path, format!("more than {MAX_FILE_BYTES} bytes (not read further)")));
    }
    check_batch(&bytes, path)?;
    Ok(bytes)
}

/// Reads one CIFAR-10 binary file (plain or gzip): images `[N, 3, 32, 32]` in [0, 1].
pub fn read_batch(path: &Path) -> Result<Dataset, DataError> {
    Ok(to_dataset(&[read_content(Content::open(path)?)?]))
}

/// [`read_batch`] from the bytes of a CIFAR-10 binary file (plain or gzip) as `input` yields
/// them, read as from a file; `path` is only named in errors.
pub fn read_batch_from(input: impl Read, path: &Path) -> Result<Dataset, DataError> {
    Ok(to_dataset(&[read_content(Content::new(input, None, path)?)?]))
}

/// Reads, decompresses and checks each of `paths` on its own thread (inflating 30 MB per
/// file is most of the time); the first error in `paths` order is returned.
fn read_checked(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, DataError> {
    let results: Vec<Result<Vec<u8>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            paths.iter().map(|p| s.spawn(move || read_content(Content::open(p)?))).collect();
        // A panic in a reader would be a bug here, not bad input: re-raise it.
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    results.into_iter().collect()
}

/// Reads several CIFAR-10 binary files as one dataset, records in the order of `paths`.
pub fn read_batches(paths: &[PathBuf]) -> Result<Dataset, DataError> {
    Ok(to_dataset(&read_checked(paths)?))
}

/// Reads the training files and the test files (each group concatenated in order), all
/// decompressed at once.
pub fn read_splits(train: &[PathBuf], test: &[PathBuf]) -> Result<(Dataset, Dataset), DataError> {
    let all: Vec<PathBuf> = train.iter().chain(test).cloned().collect();
    let mut batches = read_checked(&all)?;
    let test_batches = batches.split_off(train.len());
    Ok((to_dataset(&batches), to_dataset(&test_batches)))
}

/// Reads class names from a `batches.meta.txt`: exactly ten non-empty lines (surrounding
/// whitespace and blank lines, as the original file ends with, are ignored).
pub fn read_class_names(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        DataError::format(
            path,
            "UTF-8 text",
            format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        )
    })?;
    let names: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if names.len() != NUM_CLASSES {
        return Err(DataError::format(
            path,
            format!("{NUM_CLASSES} class names, one per line"),
            format!("{} names", names.len()),
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD_BYTES];
        r[0] = label;
        r
    }

    #[test]
    fn records_become_nchw_in_unit_range() {
        let mut bytes = record(3, 0);
        // Red plane's first pixel, green plane's first pixel, blue plane's last pixel.
        bytes[1] = 255;
        bytes[1 + 1024] = 51;
        bytes[RECORD_BYTES - 1] = 102;
        bytes.extend(record(9, 255));
        let d = parse_batch(bytes, Path::new("b.bin")).unwrap();
        assert_eq!(d.images.shape(), &[2, 3, 32, 32]);
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.images.at(&[0, 0, 0, 0]), 1.0);
        assert_eq!(d.images.at(&[0, 1, 0, 0]), 0.2);
        assert_eq!(d.images.at(&[0, 2, 31, 31]), 0.4);
        assert_eq!(d.images.at(&[0, 2, 31, 30]), 0.0);
        assert!(d.images.data()[IMAGE_BYTES..].iter().all(|&x| x == 1.0));
    }

    #[test]
    fn empty_and_ragged_files_are_errors() {
        let e = parse_batch(vec![], Path::new("b.bin")).unwrap_err().to_string();
        assert!(e.starts_with("b.bin: expected a positive multiple of 3073 bytes"), "{e}");
        let mut bytes = record(1, 0);
        bytes.push(0);
        let e = parse_batch(bytes, Path::new("b.bin")).unwrap_err().to_string();
        assert!(e.ends_with("found 3074 bytes (1 whole records and 1 bytes left over)"), "{e}");
    }

    #[test]
    fn label_ten_is_an_error_naming_the_record() {
        let mut bytes = record(1, 0);
        bytes.extend(record(10, 0));
        let e = parse_batch(bytes, Path::new("b.bin")).unwrap_err().to_string();
        assert_eq!(e, "b.bin: expected labels in 0..=9, found label 10 in record 1 (byte offset 3073)");
    }
}
