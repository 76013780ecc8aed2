//! IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic number, then
//! one `u32` per dimension) followed by the raw `u8` elements.
//!
//! Files may be plain or gzip-compressed; which one is decided from the content (a gzip
//! stream starts with `1f 8b`, an IDX file with two zero bytes), not from the name, so a
//! `.gz` that was decompressed in place without renaming still reads. Everything in the
//! header is checked against the data: magic, dimension count, and the exact byte count, so
//! a truncated download and a file with trailing garbage are both errors naming the file.
//!
//! A file is read as a stream, header first, so that its size is checked before its data is
//! read: the dimensions must declare at most [`MAX_DATA_BYTES`] (checked before anything is
//! allocated for them), a plain file's length must match them (checked from its metadata,
//! before reading its data), and a gzip stream is inflated only up to the declared size and
//! a little past it (to say how much trailing garbage there is). A decompression bomb, a few
//! megabytes of gzip holding a valid header and then gigabytes of zeros, is thus refused with
//! memory for the declared data only (issue 18; `tests/size_bombs.rs` holds it).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use adamant_tensor::Tensor;
use flate2::bufread::MultiGzDecoder;

use crate::{DataError, Dataset};

/// Magic number of an idx3 file of `u8` elements (images: count, rows, columns).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an idx1 file of `u8` elements (labels: count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Number of classes of MNIST and Fashion-MNIST; labels must be below it.
pub const NUM_CLASSES: usize = 10;
/// The most data bytes an IDX header may declare: 2 GiB, 45 times MNIST's training images
/// (8 GiB once scaled to `f32`). A header that declares more is an error before anything is
/// allocated: a corrupt or forged header must not decide how much memory the reader takes.
pub const MAX_DATA_BYTES: usize = 1 << 31;
/// The longest IDX header: the magic and 255 dimension sizes.
const MAX_HEADER_BYTES: usize = 4 + 4 * 255;

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

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate's best case: one compressed byte never inflates to more than 1,032 bytes (a
/// 258-byte match costs at least 2 bits), so a gzip stream of `n` bytes holds at most `1032 n`.
const MAX_INFLATE_RATIO: u64 = 1032;

/// The buffer between a file and the gzip decoder (or the caller, for a plain file): large,
/// so that a file of tens of megabytes takes few system calls. Loading MNIST or CIFAR-10
/// through it takes as long as reading each file whole and inflating it in memory did.
const READ_BUFFER: usize = 1 << 20;

/// How much of the data past what a header declares is read, without being stored, to say
/// how much trailing garbage there is; beyond it the error says "more than".
const TRAILING_COUNTED: u64 = 1 << 20;

/// A reader that remembers whether it failed: the gzip decoder passes the file's read errors
/// up as its own, and this tells them (an I/O error) from corrupt data (a format error).
struct Watched<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        if matches!(&result, Err(e) if e.kind() != io::ErrorKind::Interrupted) {
            self.failed = true;
        }
        result
    }
}

/// A file's bytes behind a buffer; the first two, already read to tell gzip from plain, are
/// chained back in front.
type Buffered<R> = BufReader<io::Chain<io::Cursor<Vec<u8>>, Watched<R>>>;

/// A file's content: its bytes, or their inflation if they are a gzip stream.
enum Stream<R: Read> {
    Plain(Buffered<R>),
    // MultiGzDecoder: concatenated gzip members (as `cat a.gz b.gz` or some tools write) are
    // one valid stream; the plain GzDecoder would silently stop after the first member.
    // Boxed: the decoder's state is several times the size of the plain variant.
    Gzip(Box<MultiGzDecoder<Buffered<R>>>),
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(r) => r.read(buf),
            Stream::Gzip(r) => r.read(buf),
        }
    }
}

/// The content of a file (plain, or gunzipped on the fly), which the IDX and CIFAR-10
/// readers take a piece at a time: a header, then at most the size it declares or the format
/// allows, then a check that nothing follows. Nothing past that is inflated or stored, so
/// the memory a file can make the reader take is set by the format, not by the file.
pub(crate) struct Content<'p, R: Read> {
    stream: Stream<R>,
    /// The file, named in errors.
    path: &'p Path,
    /// The content's length when it is known without reading it: a plain regular file's.
    known_len: Option<u64>,
    /// How long the content may be, when the raw length is known (for gzip, at most 1,032
    /// times it): a first capacity for what is read, never trusted as the content's length.
    size_hint: Option<u64>,
}

impl<'p> Content<'p, File> {
    /// The content of the file at `path`.
    pub(crate) fn open(path: &'p Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let metadata = file.metadata().map_err(|e| DataError::io(path, e))?;
        // A pipe or a device has no meaningful length: read it as a stream of unknown size.
        let len = metadata.is_file().then_some(metadata.len());
        Content::new(file, len, path)
    }
}

impl<'p, R: Read> Content<'p, R> {
    /// The content of the bytes `raw` yields, `raw_len` of them if known; `path` is only named
    /// in errors. Reads the first two bytes, to tell a gzip stream from plain content.
    pub(crate) fn new(raw: R, raw_len: Option<u64>, path: &'p Path) -> Result<Self, DataError> {
        let mut raw = Watched { inner: raw, failed: false };
        let mut head = Vec::with_capacity(GZIP_MAGIC.len());
        (&mut raw)
            .take(GZIP_MAGIC.len() as u64)
            .read_to_end(&mut head)
            .map_err(|e| DataError::io(path, e))?;
        let gzip = head == GZIP_MAGIC;
        // No bigger than a small file, which the buffer would otherwise dwarf.
        let buffer = raw_len.map_or(READ_BUFFER, |len| len.clamp(8 << 10, READ_BUFFER as u64) as usize);
        let buffered = BufReader::with_capacity(buffer, io::Cursor::new(head).chain(raw));
        Ok(if gzip {
            Content {
                stream: Stream::Gzip(Box::new(MultiGzDecoder::new(buffered))),
                path,
                known_len: None,
                size_hint: raw_len.map(|len| len.saturating_mul(MAX_INFLATE_RATIO)),
            }
        } else {
            Content { stream: Stream::Plain(buffered), path, known_len: raw_len, size_hint: raw_len }
        })
    }

    /// The error for a failed read: the file's own (an I/O error), or the gzip decoder's
    /// (corrupt or truncated data).
    fn error(&self, e: io::Error) -> DataError {
        match &self.stream {
            Stream::Gzip(decoder) if !decoder.get_ref().get_ref().get_ref().1.failed => DataError::format(
                self.path,
                "a complete gzip stream",
                format!("corrupt or truncated gzip data ({e})"),
            ),
            _ => DataError::io(self.path, e),
        }
    }

    /// The next `n` bytes of the content, or all that is left if fewer. The buffer grows with
    /// what is read (from the size hint, or 1 MiB), so a size a header declares costs memory
    /// only as the data is actually there.
    pub(crate) fn read_up_to(&mut self, n: usize) -> Result<Vec<u8>, DataError> {
        let first = self.size_hint.unwrap_or(READ_BUFFER as u64).min(n as u64) as usize;
        // Zeroed by the allocator (fresh pages for a large buffer), so filling it is the only
        // pass over its memory.
        let mut data = vec![0; first];
        let mut filled = 0;
        while filled < n {
            if filled == data.len() {
                // Doubling, never past `n`.
                let more = filled.max(READ_BUFFER).min(n - filled);
                data.resize(filled + more, 0);
            }
            match self.stream.read(&mut data[filled..]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        data.truncate(filled);
        Ok(data)
    }

    /// Reads and drops up to `limit` more bytes of the content; returns how many there were.
    pub(crate) fn skip_up_to(&mut self, limit: u64) -> Result<u64, DataError> {
        io::copy(&mut (&mut self.stream).take(limit), &mut io::sink()).map_err(|e| self.error(e))
    }

    /// The file, for errors.
    pub(crate) fn path(&self) -> &'p Path {
        self.path
    }

    /// The content's length if it is known without reading it (a plain regular file).
    pub(crate) fn known_len(&self) -> Option<u64> {
        self.known_len
    }
}

/// `raw` gunzipped if it is a gzip stream (it starts with `1f 8b`), otherwise `raw` itself:
/// the content of a file held in memory, as the IDX and CIFAR-10 readers see it (they read it
/// from the file a piece at a time instead). `path` is only named in errors.
///
/// The content may be at most [`MAX_DATA_BYTES`] and the longest IDX header (what the IDX
/// reader accepts, and more than the CIFAR-10 reader does); see [`decompress_capped`].
pub fn decompress(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    decompress_capped(raw, MAX_DATA_BYTES + MAX_HEADER_BYTES, path)
}

/// [`decompress`] with a cap of `max_bytes` on the content: more is an error naming the
/// cap, found after inflating at most one byte past it.
pub fn decompress_capped(raw: Vec<u8>, max_bytes: usize, path: &Path) -> Result<Vec<u8>, DataError> {
    let too_long =
        |found: String| DataError::format(path, format!("at most {max_bytes} bytes of content"), found);
    if raw.len() < 2 || raw[..2] != GZIP_MAGIC {
        return if raw.len() > max_bytes { Err(too_long(format!("{} bytes", raw.len()))) } else { Ok(raw) };
    }
    let mut content = Content::new(&raw[..], Some(raw.len() as u64), path)?;
    // The trailer's size, more precise than the ratio bound, avoids reallocating a 47 MB buffer.
    content.size_hint = Some(inflated_size_hint(&raw) as u64);
    let out = content.read_up_to(max_bytes)?;
    if out.len() == max_bytes && content.skip_up_to(1)? > 0 {
        return Err(too_long(format!("more than {max_bytes} bytes once gunzipped (not inflated further)")));
    }
    Ok(out)
}

/// A capacity for the inflated bytes of gzip stream `raw`: the trailer's ISIZE, the
/// uncompressed size mod 2^32 (of the last member), which avoids repeated reallocation of a
/// 47 MB buffer. It is never trusted further: a corrupt trailer (found by fuzzing: 21 bytes
/// claiming 2 GB) cannot reserve more than the stream could inflate to, nor more than 2 GB.
fn inflated_size_hint(raw: &[u8]) -> usize {
    let trailer = raw
        .len()
        .checked_sub(4)
        .map_or(0, |at| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize);
    trailer.min(raw.len().saturating_mul(MAX_INFLATE_RATIO as usize)).min(1 << 31)
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

/// The header's length for `magic`: the magic and one `u32` per dimension.
fn header_len(magic: u32) -> usize {
    4 + 4 * (magic & 0xFF) as usize
}

/// Checks the start of an IDX file, `head` (its header, or less if the file is shorter),
/// against `magic` and returns the dimensions it declares.
fn check_header(head: &[u8], path: &Path, magic: u32, what: &str) -> Result<Vec<usize>, DataError> {
    let ndim = (magic & 0xFF) as usize;
    let expected_magic = format!("magic 0x{magic:08X} (idx{ndim} u8 {what})");
    if head.len() < 4 {
        return Err(DataError::format(path, expected_magic, format!("a {}-byte file", head.len())));
    }
    let found = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
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
    let header_len = header_len(magic);
    if head.len() < header_len {
        return Err(DataError::format(
            path,
            format!("a {header_len}-byte header ({ndim} dimension sizes after the magic)"),
            format!("a {}-byte file (truncated)", head.len()),
        ));
    }
    Ok(head[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect())
}

/// `dims` as the errors show them: `60000 x 28 x 28`.
fn dims_text(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ")
}

/// What the data after a header declaring `dims` must be, for errors.
fn expected_data(n: usize, header_len: usize, dims: &[usize]) -> String {
    format!("{n} bytes of data after the {header_len}-byte header (dimensions {})", dims_text(dims))
}

/// The number of data bytes `dims` declare, which must be at most [`MAX_DATA_BYTES`]: checked
/// before anything is allocated or read for them.
fn declared_len(dims: &[usize], header_len: usize, path: &Path) -> Result<usize, DataError> {
    // u32 dimensions multiply to at most 2^96 (idx3): checked, so a corrupt header cannot wrap
    // around to a size that happens to match.
    let product = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match product {
        Some(n) if n <= MAX_DATA_BYTES => Ok(n),
        _ => Err(DataError::format(
            path,
            format!("at most {MAX_DATA_BYTES} bytes of data after the {header_len}-byte header"),
            match product {
                Some(n) => format!("dimensions {} ({n} bytes)", dims_text(dims)),
                None => format!("dimensions {} (more than {} bytes)", dims_text(dims), usize::MAX),
            },
        )),
    }
}

/// The error for `found` data bytes where a header declaring `dims` needs `n` (not `found`).
fn wrong_data_len(path: &Path, header_len: usize, dims: &[usize], n: usize, found: u64) -> DataError {
    let expected = expected_data(n, header_len, dims);
    if found < n as u64 {
        DataError::format(path, expected, format!("{found} bytes (file truncated?)"))
    } else {
        DataError::format(
            path,
            expected,
            format!("{found} bytes ({} bytes of trailing garbage)", found - n as u64),
        )
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
    let dims = check_header(bytes, path, magic, what)?;
    let header_len = header_len(magic);
    let n = declared_len(&dims, header_len, path)?;
    let data = &bytes[header_len..];
    if data.len() != n {
        return Err(wrong_data_len(path, header_len, &dims, n, data.len() as u64));
    }
    Ok((dims, data))
}

/// Reads an IDX file with `magic` from `content`, header first, and returns its dimensions and
/// element bytes, which must be exactly as many as the dimensions say. Nothing is allocated
/// for the data before its size has been checked against [`MAX_DATA_BYTES`] (and, for a
/// plain file, against the file's length), and nothing past it is inflated but enough to say
/// how much trailing garbage there is.
fn read_idx<R: Read>(
    mut content: Content<'_, R>,
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let path = content.path();
    let header_len = header_len(magic);
    let dims = check_header(&content.read_up_to(header_len)?, path, magic, what)?;
    let n = declared_len(&dims, header_len, path)?;
    // A plain file's length says at once whether the data is all there and no more: a
    // terabyte of trailing garbage is refused as fast as one byte of it, and unread.
    if let Some(len) = content.known_len() {
        let found = len.saturating_sub(header_len as u64);
        if found != n as u64 {
            return Err(wrong_data_len(path, header_len, &dims, n, found));
        }
    }
    let data = content.read_up_to(n)?;
    if data.len() < n {
        return Err(wrong_data_len(path, header_len, &dims, n, data.len() as u64));
    }
    let trailing = content.skip_up_to(TRAILING_COUNTED + 1)?;
    if trailing > TRAILING_COUNTED {
        return Err(DataError::format(
            path,
            expected_data(n, header_len, &dims),
            format!(
                "more than {} bytes (trailing data after the {n} bytes its header declares; \
                 not read further)",
                n as u64 + TRAILING_COUNTED
            ),
        ));
    }
    if trailing > 0 {
        return Err(wrong_data_len(path, header_len, &dims, n, n as u64 + trailing));
    }
    Ok((dims, data))
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

/// Images from the checked dimensions and data of an idx3 file.
fn to_images(dims: &[usize], data: &[u8], path: &Path) -> Result<IdxImages, DataError> {
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

/// Labels from the checked data of an idx1 file; every label must be in `0..num_classes`.
fn to_labels(data: &[u8], path: &Path, num_classes: usize) -> Result<Vec<usize>, DataError> {
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

/// Parses idx3 `u8` images from bytes already read (and decompressed) from `path` (named in
/// errors).
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let (dims, data) = parse_header(bytes, path, IMAGES_MAGIC, "images")?;
    to_images(&dims, data, path)
}

/// Parses idx1 `u8` labels from bytes already read (and decompressed) from `path`; every
/// label must be in `0..num_classes`.
///
/// # Panics
/// If `num_classes` is 0 (a caller's mistake, not a property of the file).
pub fn parse_labels(bytes: &[u8], path: &Path, num_classes: usize) -> Result<Vec<usize>, DataError> {
    assert!(num_classes > 0, "parse_labels: num_classes must be at least 1");
    let (_, data) = parse_header(bytes, path, LABELS_MAGIC, "labels")?;
    to_labels(data, path, num_classes)
}

/// Reads an idx3 `u8` image file (plain or gzip): `[N, rows * cols]` in [0, 1].
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let (dims, data) = read_idx(Content::open(path)?, IMAGES_MAGIC, "images")?;
    to_images(&dims, &data, path)
}

/// [`read_images`] from the bytes of an image file (plain or gzip) as `input` yields them,
/// read as from a file; `path` is only named in errors.
pub fn read_images_from(input: impl Read, path: &Path) -> Result<IdxImages, DataError> {
    let (dims, data) = read_idx(Content::new(input, None, path)?, IMAGES_MAGIC, "images")?;
    to_images(&dims, &data, path)
}

/// Reads an idx1 `u8` label file (plain or gzip); labels must be in `0..=9`.
pub fn read_labels(path: &Path) -> Result<Vec<usize>, DataError> {
    let (_, data) = read_idx(Content::open(path)?, LABELS_MAGIC, "labels")?;
    to_labels(&data, path, NUM_CLASSES)
}

/// [`read_labels`] from the bytes of a label file (plain or gzip) as `input` yields them,
/// read as from a file; `path` is only named in errors.
pub fn read_labels_from(input: impl Read, path: &Path) -> Result<Vec<usize>, DataError> {
    let (_, data) = read_idx(Content::new(input, None, path)?, LABELS_MAGIC, "labels")?;
    to_labels(&data, path, NUM_CLASSES)
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
        assert_eq!(inflated_size_hint(&bytes), 21 * MAX_INFLATE_RATIO as usize);
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
