//! IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic number, then
//! one `u32` per dimension) followed by the raw `u8` elements.
//!
//! Files may be plain or gzip-compressed; which one is decided from the content (a gzip
//! stream starts with `1f 8b`, an IDX file with two zero bytes), not from the name, so a
//! `.gz` that was decompressed in place without renaming still reads. Everything in the
//! header is checked against the data: magic, dimension count, and the exact byte count, so
//! a truncated download and a file with trailing garbage are both errors naming the file.

use std::fs;
use std::io::Read;
use std::path::Path;

use adamant_tensor::Tensor;
use flate2::read::MultiGzDecoder;

use crate::{DataError, Dataset};

/// Magic number of an idx3 file of `u8` elements (images: count, rows, columns).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an idx1 file of `u8` elements (labels: count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Number of classes of MNIST and Fashion-MNIST; labels must be below it.
pub const NUM_CLASSES: usize = 10;

/// Images read from an idx3 file.
#[derive(Clone, Debug)]
pub struct IdxImages {
    /// `[N, rows * cols]`, each pixel `x / 255` in [0, 1].
    pub images: Tensor,
    /// Image height from the header.
    pub rows: usize,
    /// Image width from the header.
    pub cols: usize,
}

/// The bytes of `path`, gunzipped if the content is a gzip stream.
///
/// Reads the whole file first: one `read` syscall sequence and then an in-memory inflate is
/// much faster than inflating through a buffered file reader, and the data is needed whole.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    decompress(fs::read(path).map_err(|e| DataError::io(path, e))?, path)
}

/// `raw` gunzipped if it is a gzip stream (it starts with `1f 8b`), otherwise `raw` itself:
/// what the IDX and CIFAR-10 readers do with a file's bytes before parsing them. `path` is
/// only named in errors.
pub fn decompress(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    if raw.len() < 2 || raw[..2] != [0x1f, 0x8b] {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(inflated_size_hint(&raw));
    // MultiGzDecoder: concatenated gzip members (as `cat a.gz b.gz` or some tools write) are
    // one valid stream; the plain GzDecoder would silently stop after the first member.
    MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| {
        DataError::format(path, "a complete gzip stream", format!("corrupt or truncated gzip data ({e})"))
    })?;
    Ok(out)
}

/// Deflate's best case: one compressed byte never inflates to more than 1,032 bytes (a
/// 258-byte match costs at least 2 bits), so a gzip stream of `n` bytes holds at most `1032 n`.
const MAX_INFLATE_RATIO: usize = 1032;

/// A capacity for the inflated bytes of gzip stream `raw`: the trailer's ISIZE, the
/// uncompressed size mod 2^32 (of the last member), which avoids repeated reallocation of a
/// 47 MB buffer. It is never trusted further: a corrupt trailer (found by fuzzing: 21 bytes
/// claiming 2 GB) cannot reserve more than the stream could inflate to, nor more than 2 GB.
fn inflated_size_hint(raw: &[u8]) -> usize {
    let trailer = raw
        .len()
        .checked_sub(4)
        .map_or(0, |at| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize);
    trailer.min(raw.len().saturating_mul(MAX_INFLATE_RATIO)).min(1 << 31)
}

/// Describes a magic number for error messages: what kind of IDX file it would be, if any.
fn describe_magic(magic: u32) -> String {
    let [z0, z1, kind, ndim] = magic.to_be_bytes();
    let kind_name = match kind {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "",
    };
    if z0 != 0 || z1 != 0 || kind_name.is_empty() {
        format!("magic 0x{magic:08X} (not an IDX file)")
    } else {
        format!("magic 0x{magic:08X} (idx{ndim} {kind_name})")
    }
}

/// Checks the header of IDX `bytes` against `magic` and returns its dimensions and the element
/// bytes, which must be exactly as many as the dimensions say.
fn parse_header<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let ndim = (magic & 0xFF) as usize;
    let expected_magic = format!("magic 0x{magic:08X} (idx{ndim} u8 {what})");
    if bytes.len() < 4 {
        return Err(DataError::format(path, expected_magic, format!("a {}-byte file", bytes.len())));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        let [_, _, kind, found_ndim] = found.to_be_bytes();
        // Same element type, other rank: say so in terms of dimensions, the likelier mix-up
        // (a labels file given as images, or the reverse).
        let found = if found >> 16 == 0 && kind == 0x08 {
            let unit = if found_ndim == 1 { "dimension" } else { "dimensions" };
            format!("{}: {found_ndim} {unit} instead of {ndim}", describe_magic(found))
        } else {
            describe_magic(found)
        };
        return Err(DataError::format(path, expected_magic, found));
    }
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(DataError::format(
            path,
            format!("a {header_len}-byte header ({ndim} dimension sizes after the magic)"),
            format!("a {}-byte file (truncated)", bytes.len()),
        ));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data = &bytes[header_len..];
    // u32 dimensions multiply to at most 2^96: checked, so a corrupt header cannot wrap
    // around to a size that happens to match.
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let dims_text = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ");
    match expected {
        Some(n) if n == data.len() => Ok((dims, data)),
        Some(n) if n > data.len() => Err(DataError::format(
            path,
            format!("{n} bytes of data after the {header_len}-byte header (dimensions {dims_text})"),
            format!("{} bytes (file truncated?)", data.len()),
        )),
        Some(n) => Err(DataError::format(
            path,
            format!("{n} bytes of data after the {header_len}-byte header (dimensions {dims_text})"),
            format!("{} bytes ({} bytes of trailing garbage)", data.len(), data.len() - n),
        )),
        None => Err(DataError::format(
            path,
            format!("dimensions whose product fits in memory after the {header_len}-byte header"),
            format!("dimensions {dims_text}"),
        )),
    }
}

/// Appends `u8` pixels scaled to `x / 255` in [0, 1] to `out`.
pub(crate) fn extend_scaled(out: &mut Vec<f32>, pixels: &[u8]) {
    // Through a 256-entry table: identical values to `x as f32 / 255.0` (the table is filled
    // with that expression) at the cost of a load instead of a division per pixel.
    let table: [f32; 256] = std::array::from_fn(|x| x as f32 / 255.0);
    out.extend(pixels.iter().map(|&x| table[x as usize]));
}

/// `u8` pixels scaled to `x / 255` in [0, 1].
fn scale_pixels(pixels: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(pixels.len());
    extend_scaled(&mut out, pixels);
    out
}

/// Parses idx3 `u8` images from bytes already read from `path` (named in errors).
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let (dims, data) = parse_header(bytes, path, IMAGES_MAGIC, "images")?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    // An empty split would train for 0 steps and report a loss of 0: refuse it here.
    if count == 0 {
        return Err(DataError::format(path, "at least 1 image", "a header that declares 0 images"));
    }
    if rows == 0 || cols == 0 {
        return Err(DataError::format(path, "images of at least 1 x 1 pixels", format!("{rows} x {cols}")));
    }
    Ok(IdxImages { images: Tensor::from_vec(scale_pixels(data), &[count, rows * cols]), rows, cols })
}

/// Parses idx1 `u8` labels from bytes already read from `path`; every label must be in
/// `0..num_classes`.
///
/// # Panics
/// If `num_classes` is 0 (a caller's mistake, not a property of the file).
pub fn parse_labels(bytes: &[u8], path: &Path, num_classes: usize) -> Result<Vec<usize>, DataError> {
    assert!(num_classes > 0, "parse_labels: num_classes must be at least 1");
    let (_, data) = parse_header(bytes, path, LABELS_MAGIC, "labels")?;
    if data.is_empty() {
        return Err(DataError::format(path, "at least 1 label", "a header that declares 0 labels"));
    }
    if let Some(i) = data.iter().position(|&l| l as usize >= num_classes) {
        return Err(DataError::format(
            path,
            format!("labels in 0..={}", num_classes - 1),
            format!("label {} at index {i}", data[i]),
        ));
    }
    Ok(data.iter().map(|&l| l as usize).collect())
}

/// Reads an idx3 `u8` image file (plain or gzip): `[N, rows * cols]` in [0, 1].
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    parse_images(&read_bytes(path)?, path)
}

/// Reads an idx1 `u8` label file (plain or gzip); labels must be in `0..=9`.
pub fn read_labels(path: &Path) -> Result<Vec<usize>, DataError> {
    parse_labels(&read_bytes(path)?, path, NUM_CLASSES)
}

/// Reads one split from an image file and a label file, which must hold as many examples;
/// returns it with the images' `[rows, cols]`.
///
/// The two files are read and decompressed on two threads: inflating is most of the time.
pub fn read_split(images: &Path, labels: &Path) -> Result<(Dataset, [usize; 2]), DataError> {
    let (x, y) = std::thread::scope(|s| {
        let y = s.spawn(|| read_labels(labels));
        (read_images(images), y.join())
    });
    let x = x?;
    // A panic in the label reader would be a bug in this module, not bad input: re-raise it.
    let y = y.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let n = x.images.shape()[0];
    if n != y.len() {
        return Err(DataError::Mismatch {
            path: images.to_path_buf(),
            other: labels.to_path_buf(),
            message: format!("{n} images but {} labels", y.len()),
        });
    }
    Ok((Dataset { images: x.images, labels: y }, [x.rows, x.cols]))
}

/// The bytes of an IDX file with `u8` elements: header for `dims`, then `data`. For writing
/// test fixtures and subsets; `data.len()` must equal the product of `dims`.
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "idx::encode: dims {dims:?} vs {} bytes",
        data.len()
    );
    assert!(
        dims.len() <= 255 && dims.iter().all(|&d| u32::try_from(d).is_ok()),
        "idx::encode: dims {dims:?} do not fit an IDX header"
    );
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.idx")
    }

    #[test]
    fn images_round_trip_and_scale() {
        let bytes = encode(&[2, 1, 3], &[0, 255, 51, 1, 2, 3]);
        let x = parse_images(&bytes, p()).unwrap();
        assert_eq!(x.images.shape(), &[2, 3]);
        assert_eq!((x.rows, x.cols), (1, 3));
        assert_eq!(x.images.data()[..3], [0.0, 1.0, 0.2]);
        assert_eq!(x.images.data()[3], 1.0 / 255.0);
    }

    #[test]
    fn describe_magic_names_kind_and_rank() {
        assert_eq!(describe_magic(0x0000_0801), "magic 0x00000801 (idx1 u8)");
        assert_eq!(describe_magic(0x0000_0D03), "magic 0x00000D03 (idx3 f32)");
        assert_eq!(describe_magic(0x1F8B_0800), "magic 0x1F8B0800 (not an IDX file)");
    }

    #[test]
    fn labels_given_as_images_say_dimensions() {
        let e = parse_images(&encode(&[2], &[1, 2]), p()).unwrap_err().to_string();
        assert_eq!(
            e,
            "x.idx: expected magic 0x00000803 (idx3 u8 images), found magic 0x00000801 (idx1 u8): 1 dimension instead of 3"
        );
    }

    #[test]
    fn header_overflow_is_an_error_not_a_panic() {
        let mut bytes = vec![0, 0, 8, 3];
        for _ in 0..3 {
            bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        let e = parse_images(&bytes, p()).unwrap_err().to_string();
        assert!(e.contains("4294967295 x 4294967295 x 4294967295"), "{e}");
    }

    /// Found by fuzzing (`fuzz/corpus/idx`): a 21-byte gzip stream whose trailer claims
    /// 2^31 inflated bytes made the reader reserve 2 GB before finding the stream corrupt.
    #[test]
    fn forged_gzip_size_reserves_no_more_than_the_stream_can_hold() {
        let bytes = [
            0x1f, 0x8b, 0xd6, 0x08, 0, 0, 0, 0, 0, 0, 0x01, 0xa2, 0x60, 0xdf, 0x60, 0x64, 0x60, 0x04, 0x1f,
            0x8b, 0x80,
        ];
        assert_eq!(u32::from_le_bytes([0x04, 0x1f, 0x8b, 0x80]), 0x808b_1f04);
        assert_eq!(inflated_size_hint(&bytes), 21 * MAX_INFLATE_RATIO);
        let e = decompress(bytes.to_vec(), p()).unwrap_err().to_string();
        assert!(e.starts_with("x.idx: expected a complete gzip stream, found corrupt or truncated"), "{e}");
        // An honest trailer is used as it is.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &[7; 5000]).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(inflated_size_hint(&gz), 5000);
        assert_eq!(decompress(gz, p()).unwrap(), [7; 5000]);
    }

    #[test]
    fn short_files_are_errors() {
        for n in 0..16 {
            let bytes = &encode(&[1, 1, 1], &[7])[..n];
            assert!(parse_images(bytes, p()).is_err(), "{n} bytes");
        }
        assert!(parse_images(&encode(&[0, 0, 5], &[]), p()).is_err(), "zero rows");
    }
}
