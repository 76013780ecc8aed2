//! The one file format of adamant and the one way it writes files.
//!
//! Weights, optimizer state and checkpoints are all *named `f32` tensors plus string
//! metadata* in the [safetensors](https://huggingface.co/docs/safetensors) format, so Python's
//! `safetensors` and PyTorch's `load_state_dict` read what adamant writes. [`encode`] and
//! [`decode`] are the only codec; the layers, the optimizers and the training loop each add
//! their own names and metadata keys on top of it. The one exception to `f32`: whole-number
//! counters (batch norm's `num_batches_tracked`) are stored as `I64`, as PyTorch stores them
//! ([`encode_typed`]), and read back into `f32` when they fit exactly.
//!
//! Every file is written with [`write_atomic`] (a temporary file beside the target, fsync,
//! rename, fsync of the directory), so a crash leaves the old file or the new one, never a
//! mix; [`remove_interrupted_writes`] deletes the temporary files of writers that were killed.
//!
//! ```
//! use std::collections::BTreeMap;
//! use adamant_tensor::{io, Tensor};
//!
//! let w = Tensor::from_vec(vec![1.0, -2.0, 0.5, 4.0], &[2, 2]);
//! let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
//! let bytes = io::encode(&[("fc.weight", &w)], &meta).unwrap();
//! let file = io::decode(&bytes).unwrap();
//! assert_eq!(file.tensors, [("fc.weight".to_string(), w)]);
//! assert_eq!(file.metadata["epoch"], "3");
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self as stdio, Write};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::Tensor;

/// What a safetensors file holds: named `f32` tensors (sorted by name) and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    /// The tensors, sorted by name.
    pub tensors: Vec<(String, Tensor)>,
    /// The metadata (`__metadata__` of the header).
    pub metadata: BTreeMap<String, String>,
}

/// Why bytes could not be encoded or decoded as a [`TensorFile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Two tensors were given the same name (a model whose parameters are not named apart).
    DuplicateName(String),
    /// The bytes are not a valid safetensors file (the parser's message).
    Format(String),
    /// An `I64` tensor holds a value that `f32` cannot represent exactly (beyond 2^24), or
    /// a counter to be written as `I64` is not a whole number.
    NotACount {
        /// The tensor.
        name: String,
        /// The offending value.
        value: String,
    },
    /// A tensor is neither `F32` nor `I64`.
    Dtype {
        /// The tensor.
        name: String,
        /// Its dtype in the file.
        found: String,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::DuplicateName(name) => {
                write!(f, "two tensors are named '{name}'; every name must be unique")
            }
            CodecError::Format(message) => write!(f, "not a valid safetensors file: {message}"),
            CodecError::NotACount { name, value } => {
                write!(f, "tensor '{name}' holds {value}, not a whole number within f32's exact range (2^24)")
            }
            CodecError::Dtype { name, found } => {
                write!(f, "tensor '{name}' has dtype {found}, expected F32 (or I64 for a counter)")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// Encodes named `f32` tensors (in any order; the file sorts them) and metadata as
/// safetensors bytes. Two tensors with one name are an error naming it.
pub fn encode(
    tensors: &[(&str, &Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CodecError> {
    let typed: Vec<(&str, &Tensor, Stored)> = tensors.iter().map(|&(n, t)| (n, t, Stored::F32)).collect();
    encode_typed(&typed, metadata)
}

/// How [`encode_typed`] writes a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// As `F32`, every value as it is.
    F32,
    /// As `I64`: a counter, whose values must be whole numbers.
    I64,
}

/// Whether `x` is a whole number that `f32` holds exactly (|x| <= 2^24).
fn is_exact_count(x: f64) -> bool {
    x.fract() == 0.0 && x.abs() <= (1u32 << 24) as f64
}

/// [`encode`], with each tensor's stored type given: `I64` for counters, as PyTorch writes
/// `num_batches_tracked`. A counter holding a fraction is an error naming it.
pub fn encode_typed(
    tensors: &[(&str, &Tensor, Stored)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CodecError> {
    let mut seen = HashSet::with_capacity(tensors.len());
    if let Some((name, _, _)) = tensors.iter().find(|(name, _, _)| !seen.insert(*name)) {
        return Err(CodecError::DuplicateName(name.to_string()));
    }
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(name, t, stored)| match stored {
            Stored::F32 => Ok(t.data().iter().flat_map(|x| x.to_le_bytes()).collect()),
            Stored::I64 => t
                .data()
                .iter()
                .map(|&x| {
                    if is_exact_count(x as f64) {
                        Ok((x as i64).to_le_bytes())
                    } else {
                        Err(CodecError::NotACount { name: name.to_string(), value: x.to_string() })
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|counts| counts.concat()),
        })
        .collect::<Result<_, _>>()?;
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t, stored), data)| {
            let dtype = match stored {
                Stored::F32 => Dtype::F32,
                Stored::I64 => Dtype::I64,
            };
            let view = TensorView::new(dtype, t.shape().to_vec(), data)
                .map_err(|e| CodecError::Format(e.to_string()))?;
            Ok((*name, view))
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    let metadata: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize(views, Some(metadata).filter(|m| !m.is_empty()))
        .map_err(|e| CodecError::Format(e.to_string()))
}

/// Decodes safetensors bytes whose tensors are all `F32`, or `I64` counters whose values
/// `f32` holds exactly (PyTorch's `num_batches_tracked`). Every defect is an error, never a
/// panic: a truncated or oversized header, offsets outside the data, a wrong dtype.
pub fn decode(bytes: &[u8]) -> Result<TensorFile, CodecError> {
    let format = |e: safetensors::SafeTensorError| CodecError::Format(e.to_string());
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format)?;
    let st = SafeTensors::deserialize(bytes).map_err(format)?;
    let mut names = st.names();
    names.sort_unstable();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let view = st.tensor(name).map_err(format)?;
        let values = match view.dtype() {
            Dtype::F32 => {
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            Dtype::I64 => view
                .data()
                .chunks_exact(8)
                .map(|b| {
                    let n = i64::from_le_bytes(b.try_into().expect("chunks of 8"));
                    if is_exact_count(n as f64) && n.unsigned_abs() <= 1 << 24 {
                        Ok(n as f32)
                    } else {
                        Err(CodecError::NotACount { name: name.to_string(), value: n.to_string() })
                    }
                })
                .collect::<Result<Vec<f32>, _>>()?,
            other => return Err(CodecError::Dtype { name: name.to_string(), found: format!("{other:?}") }),
        };
        tensors.push((name.to_string(), Tensor::from_vec(values, view.shape())));
    }
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(TensorFile { tensors, metadata })
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, and a
/// sync of the directory so the rename itself is durable. On error the temporary file is
/// removed and `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> stdio::Result<()> {
    let dir = parent_dir(path);
    let file_name = path.file_name().ok_or_else(|| stdio::Error::other("path has no file name"))?;
    let tmp = dir.join(format!("{}{}", temp_prefix(file_name), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Persist the directory entry too (not possible on every platform: best effort).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Deletes the temporary files that [`write_atomic`] calls for `path` left behind when their
/// process was killed mid-write: they never hold a finished file, and repeated kills would
/// pile them up. Call it before writing `path` again; no other process may be writing it.
pub fn remove_interrupted_writes(path: &Path) -> stdio::Result<()> {
    let Some(file_name) = path.file_name() else { return Ok(()) };
    let prefix = temp_prefix(file_name);
    let entries = match fs::read_dir(parent_dir(path)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == stdio::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The start of the names of [`write_atomic`]'s temporary files for `file_name`
/// (`.NAME.tmp<pid>`).
fn temp_prefix(file_name: &OsStr) -> String {
    format!(".{}.tmp", file_name.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sorts_by_name_and_keeps_metadata() {
        let a = Tensor::from_vec(vec![1.5, -0.0, f32::MIN_POSITIVE], &[3]);
        let b = Tensor::from_vec(vec![7.0; 6], &[2, 1, 3]);
        let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let file = decode(&encode(&[("b", &b), ("a", &a)], &meta).unwrap()).unwrap();
        assert_eq!(file.tensors, [("a".to_string(), a.clone()), ("b".to_string(), b)]);
        assert_eq!(file.metadata, meta);
        // Bit-exact, signed zero included.
        assert_eq!(file.tensors[0].1.data()[1].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn duplicate_names_are_an_error_naming_them() {
        let t = Tensor::ones(&[2]);
        let e = encode(&[("w", &t), ("v", &t), ("w", &t)], &BTreeMap::new()).unwrap_err();
        assert_eq!(e, CodecError::DuplicateName("w".to_string()));
        assert_eq!(e.to_string(), "two tensors are named 'w'; every name must be unique");
    }

    #[test]
    fn counters_are_stored_as_i64_and_read_back_exactly() {
        let count = Tensor::scalar(12345.0);
        let w = Tensor::from_vec(vec![0.5, -1.0], &[2]);
        let bytes =
            encode_typed(&[("n", &count, Stored::I64), ("w", &w, Stored::F32)], &BTreeMap::new()).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("n").unwrap().dtype(), Dtype::I64);
        assert_eq!(st.tensor("n").unwrap().data(), 12345i64.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap().tensors, [("n".to_string(), count), ("w".to_string(), w)]);
        // A fraction is no counter; an I64 beyond f32's exact range is refused on reading.
        let half = Tensor::scalar(0.5);
        assert_eq!(
            encode_typed(&[("n", &half, Stored::I64)], &BTreeMap::new()).unwrap_err(),
            CodecError::NotACount { name: "n".to_string(), value: "0.5".to_string() }
        );
        let big = ((1i64 << 24) + 1).to_le_bytes();
        let bytes = safetensors::serialize([("n", TensorView::new(Dtype::I64, vec![], &big).unwrap())], None)
            .unwrap();
        assert_eq!(
            decode(&bytes).unwrap_err(),
            CodecError::NotACount { name: "n".to_string(), value: "16777217".to_string() }
        );
    }

    #[test]
    fn defects_are_errors() {
        let t = Tensor::ones(&[4]);
        let bytes = encode(&[("w", &t)], &BTreeMap::new()).unwrap();
        for cut in [0, 7, 8, bytes.len() - 1] {
            assert!(matches!(decode(&bytes[..cut]), Err(CodecError::Format(_))), "cut at {cut}");
        }
        let data = [0u8; 4];
        let i32_file =
            safetensors::serialize([("n", TensorView::new(Dtype::I32, vec![1], &data).unwrap())], None)
                .unwrap();
        assert_eq!(
            decode(&i32_file).unwrap_err(),
            CodecError::Dtype { name: "n".to_string(), found: "I32".to_string() }
        );
    }
}
