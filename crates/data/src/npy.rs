//! NumPy's `.npy` files (`numpy.save`): a user's own arrays, read into a [`Tensor`] or into
//! class labels.
//!
//! The format: the magic `\x93NUMPY`, a version (1.0, 2.0 or 3.0), the header's length
//! (`u16` little-endian in 1.0, `u32` in 2.0 and 3.0), then the header, a Python dict literal
//! such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, then the raw
//! elements. Read here: little-endian `<f4` (f32), `<f8` (f64), `|u1` (u8) and `<i8` (i64) in
//! C order, the dtypes `numpy.save` writes for `float32`, `float64`, `uint8` and `int64` arrays
//! on every common machine. Big-endian data and Fortran order are refused with an error saying
//! how to convert the array in NumPy.
//!
//! Everything is checked as in the IDX reader ([`crate::idx`]): the header is at most
//! [`MAX_HEADER_BYTES`], the shape declares at most [`idx::MAX_DATA_BYTES`] of data (checked
//! before anything is allocated for it), and the data must be exactly that long (a truncated
//! file and trailing bytes are both errors). Every error names the file; nothing here panics
//! on bad input. A gzip-compressed `.npy` (`x.npy.gz`) reads too.
//!
//! ```
//! use std::path::Path;
//! use adamant_data::npy::{self, NpyArray, NpyData};
//!
//! let bytes = npy::encode(&NpyArray { shape: vec![2, 2], data: NpyData::F32(vec![1.0, 2.0, 3.0, 4.0]) });
//! let tensor = npy::parse(&bytes, Path::new("x.npy")).unwrap().into_tensor();
//! assert_eq!(tensor.shape(), &[2, 2]);
//! assert_eq!(tensor.data(), &[1.0, 2.0, 3.0, 4.0]);
//! ```

use std::io::Read;
use std::path::Path;

use adamant_tensor::Tensor;

use crate::idx::{self, Content};
use crate::{DataError, Dataset, DatasetError};

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header read: 64 KiB. NumPy itself refuses headers over 10,000 bytes by
/// default (`max_header_size`); a header for the dtypes read here is under 200 bytes, so a
/// longer one is corrupt or hostile and is refused before it is read.
pub const MAX_HEADER_BYTES: usize = 1 << 16;

/// The elements of an array, in C (row-major) order, in the dtype the file holds.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `<f4`: NumPy's `float32`.
    F32(Vec<f32>),
    /// `<f8`: NumPy's `float64`.
    F64(Vec<f64>),
    /// `|u1`: NumPy's `uint8` (images as bytes).
    U8(Vec<u8>),
    /// `<i8`: NumPy's `int64` (labels, token ids).
    I64(Vec<i64>),
}

impl NpyData {
    /// The dtype's `descr` as NumPy writes it: `<f4`, `<f8`, `|u1` or `<i8`.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::U8(_) => "|u1",
            NpyData::I64(_) => "<i8",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array read from a `.npy` file: its shape and elements (`numpy.load`'s result).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The array's shape (`[]` for a 0-d array).
    pub shape: Vec<usize>,
    /// The elements, `shape`'s product of them, in C order.
    pub data: NpyData,
}

impl NpyArray {
    /// The array as an f32 [`Tensor`] of the same shape: `f32` as is, `f64` rounded to the
    /// nearest `f32`, `u8` and `i64` as their values (not scaled: divide `u8` pixels by 255
    /// yourself if the model wants [0, 1]). PyTorch's `torch.from_numpy(a).float()`.
    pub fn into_tensor(self) -> Tensor {
        let data: Vec<f32> = match self.data {
            NpyData::F32(v) => v,
            NpyData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            NpyData::U8(v) => v.into_iter().map(f32::from).collect(),
            NpyData::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        };
        Tensor::from_vec(data, &self.shape)
    }

    /// The array as class labels: it must be 1-D and of an integer dtype (`|u1` or `<i8`)
    /// with no negative value. `path` is named in the error.
    ///
    /// # Errors
    /// [`DataError::Format`] for another shape, a float dtype, or a negative label.
    pub fn into_labels(self, path: &Path) -> Result<Vec<usize>, DataError> {
        if self.shape.len() != 1 {
            return Err(DataError::format(
                path,
                "labels as a 1-d array [N]",
                format!("shape {:?} (flatten it in NumPy with a.reshape(-1))", self.shape),
            ));
        }
        match self.data {
            NpyData::U8(v) => Ok(v.into_iter().map(usize::from).collect()),
            NpyData::I64(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    usize::try_from(x).map_err(|_| {
                        DataError::format(path, "labels of at least 0", format!("label {x} at position {i}"))
                    })
                })
                .collect(),
            other => Err(DataError::format(
                path,
                "labels of an integer dtype (|u1 or <i8)",
                format!("dtype {} (convert in NumPy with a.astype(np.int64))", other.descr()),
            )),
        }
    }
}

/// Reads the `.npy` file at `path` (plain or gzip-compressed).
///
/// # Errors
/// [`DataError::Io`] if it cannot be read, [`DataError::Format`] if it is not a complete
/// `.npy` file of a dtype and order read here (the module's documentation lists them).
pub fn read(path: &Path) -> Result<NpyArray, DataError> {
    read_content(Content::open(path)?)
}

/// Reads a `.npy` file's bytes from `input`; `path` is only named in errors.
///
/// # Errors
/// As [`read`].
pub fn read_from(input: impl Read, path: &Path) -> Result<NpyArray, DataError> {
    read_content(Content::new(input, None, path)?)
}

/// Parses the bytes of a `.npy` file held in memory; `path` is only named in errors.
///
/// # Errors
/// As [`read`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray, DataError> {
    read_content(Content::new(bytes, Some(bytes.len() as u64), path)?)
}

/// Reads the `.npy` file at `path` as an f32 tensor ([`NpyArray::into_tensor`]).
///
/// # Errors
/// As [`read`].
pub fn read_tensor(path: &Path) -> Result<Tensor, DataError> {
    read(path).map(NpyArray::into_tensor)
}

/// Reads the `.npy` file at `path` as class labels ([`NpyArray::into_labels`]).
///
/// # Errors
/// As [`read`], and as [`NpyArray::into_labels`].
pub fn read_labels(path: &Path) -> Result<Vec<usize>, DataError> {
    read(path)?.into_labels(path)
}

/// A [`Dataset`] from two `.npy` files: `features` (`[N, ...]`, any dtype read here, as
/// [`NpyArray::into_tensor`]) and `labels` (`[N]`, integers).
///
/// # Errors
/// As [`read`] for either file, and [`DataError::Mismatch`] naming both if they do not hold
/// the same number of examples.
pub fn read_dataset(features: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let x = read_tensor(features)?;
    let y = read_labels(labels)?;
    Dataset::from_tensors(x, y).map_err(|e| match e {
        DatasetError::Scalar => {
            DataError::format(features, "features with a first axis of examples ([N, ...])", "a 0-d array")
        }
        other => DataError::Mismatch {
            path: features.to_path_buf(),
            other: labels.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// The bytes of a version 1.0 `.npy` file holding `array`, as `numpy.save` writes them
/// (header padded with spaces to a multiple of 64 bytes, ending in a newline).
///
/// # Panics
/// If `array.data` does not hold `array.shape`'s product of elements (a programmer error).
pub fn encode(array: &NpyArray) -> Vec<u8> {
    let numel: usize = array.shape.iter().product();
    assert_eq!(
        array.data.len(),
        numel,
        "npy::encode: {} elements do not fill shape {:?}",
        array.data.len(),
        array.shape
    );
    let shape = match array.shape.as_slice() {
        [d] => format!("({d},)"),
        dims => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header =
        format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", array.data.descr())
            .into_bytes();
    // Magic, version and length take 10 bytes; the newline ends the padding.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - 10 - 1, b' ');
    header.push(b'\n');
    let mut out = Vec::with_capacity(total + numel * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    match &array.data {
        NpyData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    out
}

/// The dtypes read here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    U8,
    I64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::U8 => 1,
            Dtype::I64 => 8,
        }
    }
}

const SUPPORTED: &str = "dtype <f4, <f8, |u1 or <i8";

fn read_content<R: Read>(mut content: Content<'_, R>) -> Result<NpyArray, DataError> {
    let path = content.path();
    let head = content.read_up_to(10)?;
    if head.len() < 8 || &head[..6] != MAGIC {
        let found =
            if head.len() >= 6 { format!("{:02x?}", &head[..6]) } else { format!("{} bytes", head.len()) };
        return Err(DataError::format(path, "the .npy magic \\x93NUMPY", found));
    }
    let (major, minor) = (head[6], head[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(DataError::format(
                path,
                ".npy version 1.0, 2.0 or 3.0",
                format!("version {major}.{minor}"),
            ))
        }
    };
    let mut len_field = head[8..].to_vec();
    len_field.extend(content.read_up_to(len_bytes - len_field.len().min(len_bytes))?);
    if len_field.len() < len_bytes {
        return Err(DataError::format(path, "a complete .npy header", "the file ends inside the preamble"));
    }
    let header_len = len_field.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    if header_len > MAX_HEADER_BYTES as u64 {
        return Err(DataError::format(
            path,
            format!("a header of at most {MAX_HEADER_BYTES} bytes"),
            format!("a header of {header_len} bytes"),
        ));
    }
    let header_len = header_len as usize;
    let header = content.read_up_to(header_len)?;
    if header.len() < header_len {
        return Err(DataError::format(
            path,
            format!("a header of {header_len} bytes"),
            format!("the file ends after {} of them", header.len()),
        ));
    }
    // Version 3.0 allows UTF-8 in the header (field names); 1.0 and 2.0 are latin-1. The keys
    // and values read here are ASCII in all three.
    let header = String::from_utf8_lossy(&header);
    let (dtype, shape) =
        parse_header(&header).map_err(|(expected, found)| DataError::format(path, expected, found))?;

    let offset = 6 + 2 + len_bytes + header_len;
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let bytes = match numel.and_then(|n| n.checked_mul(dtype.size())) {
        Some(n) if n <= idx::MAX_DATA_BYTES => n,
        _ => {
            return Err(DataError::format(
                path,
                format!("at most {} bytes of data", idx::MAX_DATA_BYTES),
                format!("shape {shape:?} of {} bytes per element", dtype.size()),
            ))
        }
    };
    let expected = || format!("{bytes} bytes of data after the {offset}-byte header (shape {shape:?})");
    // A plain file's length is known: checked before its data is read.
    if let Some(len) = content.known_len() {
        if len != (offset + bytes) as u64 {
            return Err(DataError::format(
                path,
                expected(),
                format!("{} bytes", len.saturating_sub(offset as u64)),
            ));
        }
    }
    let raw = content.read_up_to(bytes)?;
    if raw.len() < bytes {
        return Err(DataError::format(
            path,
            expected(),
            format!("{} bytes (the file is truncated)", raw.len()),
        ));
    }
    let extra = content.skip_up_to(1 << 20)?;
    if extra > 0 {
        return Err(DataError::format(path, expected(), format!("{extra} more bytes after them")));
    }
    let data = match dtype {
        Dtype::U8 => NpyData::U8(raw),
        Dtype::F32 => {
            NpyData::F32(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
        }
        Dtype::F64 => {
            NpyData::F64(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
        }
        Dtype::I64 => {
            NpyData::I64(raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
        }
    };
    Ok(NpyArray { shape, data })
}

/// `(expected, found)` for a [`DataError::Format`].
type HeaderError = (String, String);

fn header_err(expected: &str, found: impl Into<String>) -> HeaderError {
    (expected.to_string(), found.into())
}

/// The dtype and shape of a header: a Python dict literal with the keys `descr`,
/// `fortran_order` and `shape`, as `numpy.lib.format` writes it.
fn parse_header(header: &str) -> Result<(Dtype, Vec<usize>), HeaderError> {
    let mut p = Parser { s: header.as_bytes(), at: 0 };
    let dict = p.dict().map_err(|at| {
        let shown: String = header.chars().take(120).collect();
        header_err(
            "a header dict {'descr': ..., 'fortran_order': ..., 'shape': (...)}",
            format!("{shown:?} (unreadable at byte {at})"),
        )
    })?;
    let get = |key: &str| dict.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(Value::Str(s)) => s.as_str(),
        _ => return Err(header_err("a header with a 'descr' string", format!("{header:?}"))),
    };
    let dtype = match descr {
        "<f4" => Dtype::F32,
        "<f8" => Dtype::F64,
        // One byte has no byte order: NumPy writes '|u1', but '<u1' and '>u1' mean the same.
        "|u1" | "<u1" | ">u1" => Dtype::U8,
        "<i8" => Dtype::I64,
        ">f4" | ">f8" | ">i8" => {
            return Err(header_err(
                "little-endian data",
                format!(
                    "big-endian dtype {descr} (convert in NumPy with a.astype(a.dtype.newbyteorder('<')))"
                ),
            ))
        }
        other => {
            return Err(header_err(
                SUPPORTED,
                format!("dtype {other} (convert in NumPy with a.astype(np.float32) or a.astype(np.int64))"),
            ))
        }
    };
    match get("fortran_order") {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(header_err(
                "C order (fortran_order False)",
                "Fortran order (save np.ascontiguousarray(a) instead)",
            ))
        }
        _ => return Err(header_err("a header with 'fortran_order' True or False", format!("{header:?}"))),
    }
    let shape = match get("shape") {
        Some(Value::Tuple(dims)) => dims.clone(),
        _ => return Err(header_err("a header with a 'shape' tuple of sizes", format!("{header:?}"))),
    };
    Ok((dtype, shape))
}

/// A value of the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// A reader of the small subset of Python literals a `.npy` header uses; errors are the byte
/// position where reading failed.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    /// Skips spaces, then consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        let found = self.s.get(self.at) == Some(&c);
        self.at += usize::from(found);
        found
    }

    fn expect(&mut self, c: u8) -> Result<(), usize> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.at)
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, Value)>, usize> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            entries.push((key, value));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        // Only padding may follow.
        self.skip_space();
        if self.at != self.s.len() {
            return Err(self.at);
        }
        Ok(entries)
    }

    fn string(&mut self) -> Result<String, usize> {
        self.skip_space();
        let quote = match self.s.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.at),
        };
        let start = self.at + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or(self.at)?;
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> Result<Value, usize> {
        self.skip_space();
        let rest = &self.s[self.at..];
        if rest.starts_with(b"True") {
            self.at += 4;
            Ok(Value::Bool(true))
        } else if rest.starts_with(b"False") {
            self.at += 5;
            Ok(Value::Bool(false))
        } else if self.eat(b'(') {
            let mut dims = Vec::new();
            loop {
                if self.eat(b')') {
                    break;
                }
                dims.push(self.int()?);
                if !self.eat(b',') {
                    self.expect(b')')?;
                    break;
                }
            }
            Ok(Value::Tuple(dims))
        } else {
            self.string().map(Value::Str)
        }
    }

    /// A non-negative integer (Python 2's NumPy wrote a trailing `L` on longs).
    fn int(&mut self) -> Result<usize, usize> {
        self.skip_space();
        let start = self.at;
        let mut n: usize = 0;
        while let Some(&c) = self.s.get(self.at).filter(|c| c.is_ascii_digit()) {
            n = n.checked_mul(10).and_then(|n| n.checked_add(usize::from(c - b'0'))).ok_or(start)?;
            self.at += 1;
        }
        if self.at == start {
            return Err(start);
        }
        if self.s.get(self.at) == Some(&b'L') {
            self.at += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.npy")
    }

    fn err(bytes: &[u8]) -> String {
        parse(bytes, p()).unwrap_err().to_string()
    }

    /// A version-1.0 file with `header` (padded by the caller or not) and `data`.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn every_dtype_round_trips_through_encode() {
        for data in [
            NpyData::F32(vec![1.5, -2.0, 0.0, 3.25, 7.0, 8.0]),
            NpyData::F64(vec![1e-300, -2.0, 0.5, 3.0, 4.0, 5.0]),
            NpyData::U8(vec![0, 1, 2, 253, 254, 255]),
            NpyData::I64(vec![-1, 0, 1, i64::MAX, i64::MIN, 9]),
        ] {
            let array = NpyArray { shape: vec![2, 3], data };
            let bytes = encode(&array);
            let item = match array.data {
                NpyData::U8(_) => 1,
                NpyData::F32(_) => 4,
                _ => 8,
            };
            assert_eq!((bytes.len() - 6 * item) % 64, 0, "header padded to 64 bytes as numpy.save does");
            assert_eq!(parse(&bytes, p()).unwrap(), array);
        }
    }

    #[test]
    fn shapes_of_every_rank_parse() {
        for shape in [vec![], vec![0], vec![5], vec![2, 0, 3], vec![1, 2, 1, 2]] {
            let n = shape.iter().product();
            let array = NpyArray { shape: shape.clone(), data: NpyData::U8(vec![7; n]) };
            let read = parse(&encode(&array), p()).unwrap();
            assert_eq!(read.shape, shape);
            assert_eq!(read.into_tensor().shape(), &shape[..]);
        }
    }

    #[test]
    fn versions_two_and_three_have_a_four_byte_length() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
        for major in [2u8, 3] {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[major, 0]);
            bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&2.5f32.to_le_bytes());
            assert_eq!(parse(&bytes, p()).unwrap().data, NpyData::F32(vec![2.5]));
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[4, 0, 0, 0]);
        assert!(err(&bytes).contains("version 4.0"), "{}", err(&bytes));
    }

    #[test]
    fn header_spellings_numpy_has_written_are_read() {
        // Double quotes, no trailing comma, keys in another order, Python 2's `L`.
        let h = "{\"shape\": (2L, 1L), \"fortran_order\": False, \"descr\": \"<i8\"}";
        let mut data = 3i64.to_le_bytes().to_vec();
        data.extend_from_slice(&4i64.to_le_bytes());
        let a = parse(&file(h, &data), p()).unwrap();
        assert_eq!((a.shape, a.data), (vec![2, 1], NpyData::I64(vec![3, 4])));
    }

    #[test]
    fn fortran_order_big_endian_and_other_dtypes_are_refused_by_name() {
        let f = err(&file("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", &[0; 4]));
        assert!(f.starts_with("t.npy: ") && f.contains("Fortran order"), "{f}");
        let b = err(&file("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", &[0; 4]));
        assert!(b.contains("big-endian dtype >f4"), "{b}");
        let i = err(&file("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", &[0; 4]));
        assert!(i.contains("dtype <i4"), "{i}");
        let g = err(&file("{'descr': '<f4', 'shape': (1,), }", &[0; 4]));
        assert!(g.contains("fortran_order"), "{g}");
        let junk = err(&file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x", &[0; 4]));
        assert!(junk.contains("unreadable at byte"), "{junk}");
    }

    #[test]
    fn truncated_and_overlong_data_are_errors() {
        let good = encode(&NpyArray { shape: vec![3], data: NpyData::F32(vec![1.0, 2.0, 3.0]) });
        for cut in 0..good.len() {
            let e = parse(&good[..cut], p()).unwrap_err().to_string();
            assert!(e.starts_with("t.npy: "), "{e}");
            // Streamed, with no length known up front: the same refusal.
            assert!(read_from(&good[..cut], p()).is_err());
        }
        let mut long = good.clone();
        long.push(0);
        assert!(err(&long).contains("found 13 bytes"), "{}", err(&long));
        assert!(read_from(&long[..], p()).unwrap_err().to_string().contains("1 more bytes"));
    }

    #[test]
    fn a_huge_shape_is_refused_before_allocating() {
        let huge = file("{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", &[]);
        let e = err(&huge);
        assert!(e.contains("at most 2147483648 bytes"), "{e}");
        let overflow =
            file("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", &[]);
        assert!(err(&overflow).contains("unreadable"), "{}", err(&overflow));
        let wraps =
            file("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }", &[]);
        assert!(err(&wraps).contains("at most"), "{}", err(&wraps));
        // A header length past the cap is refused before the header is read.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(err(&bytes).contains("a header of at most 65536 bytes"), "{}", err(&bytes));
    }

    #[test]
    fn labels_must_be_one_d_non_negative_integers() {
        let labels = |data: NpyData, shape: Vec<usize>| NpyArray { shape, data }.into_labels(p());
        assert_eq!(labels(NpyData::U8(vec![3, 0, 9]), vec![3]).unwrap(), vec![3, 0, 9]);
        assert_eq!(labels(NpyData::I64(vec![3, 0, 9]), vec![3]).unwrap(), vec![3, 0, 9]);
        let neg = labels(NpyData::I64(vec![3, -1]), vec![2]).unwrap_err().to_string();
        assert!(neg.contains("label -1 at position 1"), "{neg}");
        let float = labels(NpyData::F32(vec![1.0]), vec![1]).unwrap_err().to_string();
        assert!(float.contains("dtype <f4"), "{float}");
        let two_d = labels(NpyData::U8(vec![1, 2]), vec![2, 1]).unwrap_err().to_string();
        assert!(two_d.contains("shape [2, 1]"), "{two_d}");
    }

    #[test]
    fn tensors_convert_each_dtype_to_f32_values() {
        let t = NpyArray { shape: vec![2], data: NpyData::U8(vec![0, 255]) }.into_tensor();
        assert_eq!(t.data(), &[0.0, 255.0]);
        let t = NpyArray { shape: vec![2], data: NpyData::F64(vec![0.1, -3.0]) }.into_tensor();
        assert_eq!(t.data(), &[0.1f32, -3.0]);
        let t = NpyArray { shape: vec![1], data: NpyData::I64(vec![-7]) }.into_tensor();
        assert_eq!(t.data(), &[-7.0]);
    }
}
