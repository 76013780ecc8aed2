//! Saving and loading parameters in the safetensors format.
//!
//! A file maps parameter names to little-endian `F32` tensors, so Python's `safetensors`
//! and PyTorch's `load_state_dict` read what adamant writes, and the other way round.
//! Loading checks everything before changing anything: a missing name, an extra name, a
//! wrong shape or a wrong dtype is an error naming the parameter, and the model is left as
//! it was. Writing goes to a temporary file that is synced and then renamed over the target,
//! so a crash never leaves a half-written file under the final name.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use adamant_tensor::Tensor;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::module::Params;

/// Why a safetensors file could not be written or read into a model.
#[derive(Debug)]
pub enum SerializeError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a valid safetensors file.
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// The model has a parameter the file lacks.
    Missing {
        /// The file.
        path: PathBuf,
        /// The parameter name.
        name: String,
    },
    /// The file has a tensor the model does not.
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor's shape differs from the parameter's.
    Shape {
        /// The file.
        path: PathBuf,
        /// The parameter name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is not `F32`.
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype in the file.
        found: String,
    },
    /// Two parameters (or tensors to write) have the same name, so one would be lost.
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The name used twice.
        name: String,
    },
}

impl fmt::Display for SerializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerializeError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SerializeError::Format { path, message } => {
                write!(f, "{}: not a valid safetensors file: {message}", path.display())
            }
            SerializeError::Missing { path, name } => {
                write!(f, "{}: parameter '{name}' of the model is missing from the file", path.display())
            }
            SerializeError::Unexpected { path, name } => {
                write!(f, "{}: tensor '{name}' in the file is not a parameter of the model", path.display())
            }
            SerializeError::Shape { path, name, expected, found } => write!(
                f,
                "{}: parameter '{name}' has shape {found:?} in the file, the model expects {expected:?}",
                path.display()
            ),
            SerializeError::Dtype { path, name, found } => {
                write!(f, "{}: tensor '{name}' has dtype {found} in the file, expected F32", path.display())
            }
            SerializeError::Duplicate { path, name } => write!(
                f,
                "{}: two parameters are named '{name}'; each needs its own name (a container \
                 must give its children distinct prefixes, as #[derive(Module)] does)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SerializeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SerializeError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SerializeError + '_ {
    move |source| SerializeError::Io { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, and a
/// sync of the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
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

/// The start of the names of [`write_atomic`]'s temporary files for `file_name`
/// (`.NAME.tmp<pid>`).
fn temp_prefix(file_name: &std::ffi::OsStr) -> String {
    format!(".{}.tmp", file_name.to_string_lossy())
}

/// Deletes the temporary files that [`write_atomic`] calls for `path` left behind when their
/// process was killed mid-write: they never hold a finished file, and repeated kills would
/// pile them up. Call it before writing `path` again; no other process may be writing it.
pub fn remove_interrupted_writes(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name() else { return Ok(()) };
    let prefix = temp_prefix(file_name);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
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

/// Encodes named `f32` tensors as safetensors bytes.
pub fn encode_tensors(tensors: &[(String, &Tensor)]) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            (name.clone(), t.data().iter().flat_map(|x| x.to_le_bytes()).collect(), t.shape().to_vec())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize(views, None)
}

/// The first name that occurs a second time, if any.
fn first_duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

/// Writes named tensors to a safetensors file, atomically. Two tensors of the same name are
/// an error ([`SerializeError::Duplicate`]), and nothing is written.
pub fn save_tensors(tensors: &[(String, &Tensor)], path: impl AsRef<Path>) -> Result<(), SerializeError> {
    let path = path.as_ref();
    if let Some(name) = first_duplicate(tensors.iter().map(|(name, _)| name.as_str())) {
        return Err(SerializeError::Duplicate { path: path.to_path_buf(), name: name.to_string() });
    }
    let bytes = encode_tensors(tensors)
        .map_err(|e| SerializeError::Format { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomic(path, &bytes).map_err(io_err(path))
}

/// Decodes safetensors bytes into named `f32` tensors, sorted by name; `path` is only used
/// in error messages.
pub fn decode_tensors(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>, SerializeError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| SerializeError::Format { path: path.to_path_buf(), message: e.to_string() })?;
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let view = st
            .tensor(name)
            .map_err(|e| SerializeError::Format { path: path.to_path_buf(), message: e.to_string() })?;
        if view.dtype() != Dtype::F32 {
            return Err(SerializeError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: format!("{:?}", view.dtype()),
            });
        }
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.push((name.to_string(), Tensor::from_vec(data, view.shape())));
    }
    Ok(out)
}

/// Reads every tensor of a safetensors file (all must be `F32`), sorted by name.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, SerializeError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(io_err(path))?;
    decode_tensors(&bytes, path)
}

/// Saves a model's parameters under their paths (`named_params`), atomically; two
/// parameters with the same path are an error naming it ([`SerializeError::Duplicate`]).
pub fn save<M: Params + ?Sized>(model: &M, path: impl AsRef<Path>) -> Result<(), SerializeError> {
    let named: Vec<(String, &Tensor)> =
        model.named_params().into_iter().map(|(n, p)| (n, p.value())).collect();
    save_tensors(&named, path)
}

/// Loads a model's parameters from a file holding exactly the model's names and shapes.
/// On any error the model is unchanged.
pub fn load<M: Params + ?Sized>(model: &mut M, path: impl AsRef<Path>) -> Result<(), SerializeError> {
    let path = path.as_ref();
    let loaded = load_tensors(path)?;
    assign(model, loaded, path)
}

/// Assigns named tensors to a model's parameters after checking names and shapes; on any
/// error the model is unchanged. `path` is only used in error messages.
pub fn assign<M: Params + ?Sized>(
    model: &mut M,
    tensors: Vec<(String, Tensor)>,
    path: &Path,
) -> Result<(), SerializeError> {
    let mut by_name: HashMap<String, Tensor> = tensors.into_iter().collect();
    let expected: Vec<(String, Vec<usize>)> =
        model.named_params().into_iter().map(|(n, p)| (n, p.shape().to_vec())).collect();
    if let Some(name) = first_duplicate(expected.iter().map(|(name, _)| name.as_str())) {
        return Err(SerializeError::Duplicate { path: path.to_path_buf(), name: name.to_string() });
    }
    // Check everything first ...
    for (name, shape) in &expected {
        match by_name.get(name) {
            None => return Err(SerializeError::Missing { path: path.to_path_buf(), name: name.clone() }),
            Some(t) if t.shape() != shape.as_slice() => {
                return Err(SerializeError::Shape {
                    path: path.to_path_buf(),
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
        return Err(SerializeError::Unexpected { path: path.to_path_buf(), name: extra[0].clone() });
    }
    // ... then change the model (`params_mut` names each parameter by its path).
    for p in model.params_mut() {
        let value = by_name.remove(p.name()).expect("checked above");
        p.set_value(value);
    }
    Ok(())
}
