//! Saving and loading a model's parameters and buffers.
//!
//! A file maps parameter and buffer names (`Params::named_params` and
//! `Params::named_buffers`, PyTorch's `state_dict` keys) to little-endian `F32` tensors (`I64`
//! for counters such as `num_batches_tracked`, as PyTorch writes them) in the safetensors
//! format of [`adamant_tensor::io`], so
//! Python's `safetensors` and PyTorch's `load_state_dict` read what adamant writes, and the
//! other way round. Loading checks everything before changing anything: a missing name, an
//! extra name, a wrong shape or a wrong dtype is an error naming the parameter, and the model
//! is left as it was. Saving refuses two parameters with one name (a struct of modules whose
//! fields are not named apart) with an error naming it. Files are written atomically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use adamant_tensor::io::{decode, encode, encode_typed, write_atomic, CodecError, Stored};
use adamant_tensor::Tensor;

use crate::buffer::{Buffer, BufferKind};
use crate::module::Params;

/// Why a safetensors file could not be written, or read into a model.
#[derive(Debug)]
pub enum SerializeError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a safetensors file of `F32` tensors, or (when saving) two parameters
    /// have one name.
    Codec {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: CodecError,
    },
    /// The file's tensors do not fit the model.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Which parameter does not fit, and how.
        source: AssignError,
    },
}

impl fmt::Display for SerializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerializeError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SerializeError::Codec { path, source } => write!(f, "{}: {source}", path.display()),
            SerializeError::Mismatch { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for SerializeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SerializeError::Io { source, .. } => Some(source),
            SerializeError::Codec { source, .. } => Some(source),
            SerializeError::Mismatch { source, .. } => Some(source),
        }
    }
}

/// Why named tensors do not fit a model's parameters ([`assign`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssignError {
    /// The model has a parameter the tensors lack.
    Missing {
        /// The parameter name.
        name: String,
    },
    /// A tensor is not a parameter of the model.
    Unexpected {
        /// The tensor name.
        name: String,
    },
    /// Two parameters of the model have the same path, so one would be lost.
    Duplicate {
        /// The name used twice.
        name: String,
    },
    /// A tensor's shape differs from the parameter's.
    Shape {
        /// The parameter name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The tensor's shape.
        found: Vec<usize>,
    },
}

impl fmt::Display for AssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssignError::Missing { name } => {
                write!(f, "'{name}' of the model is missing from the file")
            }
            AssignError::Unexpected { name } => {
                write!(f, "tensor '{name}' in the file is not a parameter or buffer of the model")
            }
            AssignError::Duplicate { name } => write!(
                f,
                "two parameters are named '{name}'; each needs its own name (a container must give \
                 its children distinct prefixes, as #[derive(Module)] does)"
            ),
            AssignError::Shape { name, expected, found } => {
                write!(f, "'{name}' has shape {found:?} in the file, the model expects {expected:?}")
            }
        }
    }
}

impl std::error::Error for AssignError {}

/// Encodes named `f32` tensors as safetensors bytes (no metadata); two tensors with one name
/// are an error naming it.
pub fn encode_tensors(tensors: &[(String, &Tensor)]) -> Result<Vec<u8>, CodecError> {
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    encode(&named, &BTreeMap::new())
}

/// Writes named tensors to a safetensors file, atomically.
pub fn save_tensors(tensors: &[(String, &Tensor)], path: impl AsRef<Path>) -> Result<(), SerializeError> {
    let path = path.as_ref();
    let bytes = encode_tensors(tensors)
        .map_err(|source| SerializeError::Codec { path: path.to_path_buf(), source })?;
    write_atomic(path, &bytes).map_err(|source| SerializeError::Io { path: path.to_path_buf(), source })
}

/// Decodes safetensors bytes into named `f32` tensors, sorted by name.
pub fn decode_tensors(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, CodecError> {
    Ok(decode(bytes)?.tensors)
}

/// Reads every tensor of a safetensors file (all must be `F32`), sorted by name.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, SerializeError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| SerializeError::Io { path: path.to_path_buf(), source })?;
    decode_tensors(&bytes).map_err(|source| SerializeError::Codec { path: path.to_path_buf(), source })
}

/// The first name that occurs twice.
fn first_duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

/// Every tensor a model saves, with how it is stored: its parameters (`named_params`), then
/// its buffers (`named_buffers`; counters as `I64`).
pub fn state_dict<M: Params + ?Sized>(model: &M) -> Vec<(String, Tensor, Stored)> {
    let params = model.named_params().into_iter().map(|(n, p)| (n, p.value().clone(), Stored::F32));
    let buffers = model.named_buffers().into_iter().map(|(n, b)| (n, b.value(), stored_as(b)));
    params.chain(buffers).collect()
}

fn stored_as(buffer: &Buffer) -> Stored {
    match buffer.kind() {
        BufferKind::Float => Stored::F32,
        BufferKind::Count => Stored::I64,
    }
}

/// Saves a model's parameters and buffers under their names ([`state_dict`]), atomically.
/// Two tensors with one name are an error naming it ([`AssignError::Duplicate`]), and nothing
/// is written.
pub fn save<M: Params + ?Sized>(model: &M, path: impl AsRef<Path>) -> Result<(), SerializeError> {
    let path = path.as_ref();
    let named = state_dict(model);
    if let Some(name) = first_duplicate(named.iter().map(|(n, _, _)| n.as_str())) {
        let source = AssignError::Duplicate { name: name.to_string() };
        return Err(SerializeError::Mismatch { path: path.to_path_buf(), source });
    }
    let typed: Vec<(&str, &Tensor, Stored)> = named.iter().map(|(n, t, s)| (n.as_str(), t, *s)).collect();
    let bytes = encode_typed(&typed, &BTreeMap::new())
        .map_err(|source| SerializeError::Codec { path: path.to_path_buf(), source })?;
    write_atomic(path, &bytes).map_err(|source| SerializeError::Io { path: path.to_path_buf(), source })
}

/// Loads a model's parameters from a file holding exactly the model's names and shapes.
/// On any error the model is unchanged.
pub fn load<M: Params + ?Sized>(model: &mut M, path: impl AsRef<Path>) -> Result<(), SerializeError> {
    let path = path.as_ref();
    let loaded = load_tensors(path)?;
    assign(model, loaded).map_err(|source| SerializeError::Mismatch { path: path.to_path_buf(), source })
}

/// Assigns named tensors to a model's parameters and buffers after checking names and
/// shapes; on any error the model is unchanged. Two tensors of the model with one path are an
/// error naming it.
pub fn assign<M: Params + ?Sized>(model: &mut M, tensors: Vec<(String, Tensor)>) -> Result<(), AssignError> {
    let mut by_name: HashMap<String, Tensor> = tensors.into_iter().collect();
    let expected: Vec<(String, Vec<usize>)> = model
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.shape().to_vec()))
        .chain(model.named_buffers().into_iter().map(|(n, b)| (n, b.shape())))
        .collect();
    if let Some(name) = first_duplicate(expected.iter().map(|(name, _)| name.as_str())) {
        return Err(AssignError::Duplicate { name: name.to_string() });
    }
    // Check everything first ...
    for (name, shape) in &expected {
        match by_name.get(name) {
            None => return Err(AssignError::Missing { name: name.clone() }),
            Some(t) if t.shape() != shape.as_slice() => {
                return Err(AssignError::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: t.shape().to_vec(),
                })
            }
            Some(_) => {}
        }
    }
    if by_name.len() > expected.len() {
        let mut extra: Vec<&String> =
            by_name.keys().filter(|k| !expected.iter().any(|(n, _)| n == *k)).collect();
        extra.sort();
        return Err(AssignError::Unexpected { name: extra[0].clone() });
    }
    // ... then change the model (`params_mut` names each parameter by its path).
    for (name, b) in model.named_buffers() {
        b.set(by_name.remove(&name).expect("checked above"));
    }
    for p in model.params_mut() {
        let value = by_name.remove(p.name()).expect("checked above");
        p.set_value(value);
    }
    Ok(())
}
