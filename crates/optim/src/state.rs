//! Saved optimizer state: keyed by parameter name (ids do not survive the process), exact to
//! the bit, and serialisable as a safetensors file whose metadata holds the scalars.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use adamant_autodiff::Param;
use adamant_tensor::io::{self, TensorFile};
use adamant_tensor::Tensor;

/// One parameter's saved state.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedParamState {
    /// Number of updates the parameter received.
    pub step: u64,
    /// Named buffers (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...).
    pub buffers: BTreeMap<String, Tensor>,
    /// Named scalars (NAdam's `mu_product`).
    pub scalars: BTreeMap<String, f64>,
}

/// The complete state of an optimizer, as [`crate::Optimizer::state_dict`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Which optimizer wrote it (`"adam"`, `"sgd"`, ...).
    pub kind: String,
    /// Optimizer-level scalars: at least `lr`; schedulers add their position.
    pub scalars: BTreeMap<String, f64>,
    /// Per-parameter state by parameter name.
    pub params: BTreeMap<String, SavedParamState>,
}

/// Why saved optimizer state could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum StateError {
    /// The state belongs to another optimizer.
    Kind {
        /// This optimizer's kind.
        expected: String,
        /// The saved kind.
        found: String,
    },
    /// Something the optimizer needs is not in the state.
    Missing {
        /// What is missing.
        what: String,
    },
    /// The state holds something this optimizer does not know.
    Unexpected {
        /// What was unexpected.
        what: String,
    },
    /// A buffer's shape differs from its parameter's.
    Shape {
        /// The parameter and buffer.
        what: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The saved shape.
        found: Vec<usize>,
    },
    /// The bytes are not a valid safetensors file of `f32` tensors.
    Codec(io::CodecError),
    /// The bytes are not a valid saved state.
    Format {
        /// What was wrong.
        message: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Kind { expected, found } => {
                write!(f, "optimizer state is for '{found}', this optimizer is '{expected}'")
            }
            StateError::Missing { what } => write!(f, "optimizer state lacks {what}"),
            StateError::Unexpected { what } => write!(f, "optimizer state has unexpected {what}"),
            StateError::Shape { what, expected, found } => {
                write!(f, "optimizer state: {what} has shape {found:?}, the parameter {expected:?}")
            }
            StateError::Codec(e) => write!(f, "invalid optimizer state: {e}"),
            StateError::Format { message } => write!(f, "invalid optimizer state: {message}"),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Codec(e) => Some(e),
            _ => None,
        }
    }
}

fn format_err(message: impl Into<String>) -> StateError {
    StateError::Format { message: message.into() }
}

/// Scalars go into the safetensors metadata as the hex of their bits: exact, and readable.
fn f64_to_hex(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn hex_to_f64(s: &str) -> Result<f64, StateError> {
    u64::from_str_radix(s, 16).map(f64::from_bits).map_err(|_| format_err(format!("bad scalar '{s}'")))
}

fn param_entry<'a>(params: &'a mut BTreeMap<String, SavedParamState>, name: &str) -> &'a mut SavedParamState {
    params.entry(name.to_string()).or_insert_with(|| SavedParamState {
        step: 0,
        buffers: BTreeMap::new(),
        scalars: BTreeMap::new(),
    })
}

impl OptimizerState {
    /// Checks that every saved parameter is among `params` and that its buffers have the
    /// parameter's shape, or that shape with some axes reduced to size 1 (Adafactor's row
    /// and column statistics, kept with their axes as torch keeps them); loading such state
    /// can then not fail later.
    pub fn validate(&self, params: &[&Param]) -> Result<(), StateError> {
        let shapes: HashMap<&str, &[usize]> = params.iter().map(|p| (p.name(), p.shape())).collect();
        for (name, saved) in &self.params {
            let shape = shapes.get(name.as_str()).ok_or_else(|| StateError::Unexpected {
                what: format!("state for parameter '{name}', which the model lacks"),
            })?;
            for (b, t) in &saved.buffers {
                // Every buffer has its parameter's shape, but Adafactor's factored statistics.
                let expected = if self.kind == <crate::Adafactor as crate::FromOptions>::NAME {
                    crate::adafactor::saved_buffer_shape(b, shape).ok_or_else(|| StateError::Unexpected {
                        what: format!("buffer '{b}' of parameter '{name}' (shape {shape:?})"),
                    })?
                } else {
                    shape.to_vec()
                };
                if t.shape() != expected {
                    return Err(StateError::Shape {
                        what: format!("buffer '{b}' of parameter '{name}'"),
                        expected,
                        found: t.shape().to_vec(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Adds the state to a file being assembled: each buffer as the tensor
    /// `"{prefix}{param}/{buffer}"`, and the kind, the steps and the scalars as metadata keys
    /// starting with `prefix`. A checkpoint puts the optimizer beside the model this way,
    /// in one file with one codec ([`adamant_tensor::io`]).
    pub fn write_into(
        &self,
        prefix: &str,
        tensors: &mut Vec<(String, Tensor)>,
        metadata: &mut BTreeMap<String, String>,
    ) {
        metadata.insert(format!("{prefix}adamant.kind"), self.kind.clone());
        for (k, v) in &self.scalars {
            metadata.insert(format!("{prefix}scalar.{k}"), f64_to_hex(*v));
        }
        for (name, p) in &self.params {
            metadata.insert(format!("{prefix}step.{name}"), p.step.to_string());
            for (k, v) in &p.scalars {
                metadata.insert(format!("{prefix}pscalar.{name}/{k}"), f64_to_hex(*v));
            }
            for (b, t) in &p.buffers {
                tensors.push((format!("{prefix}{name}/{b}"), t.clone()));
            }
        }
    }

    /// Reads back what [`OptimizerState::write_into`] added under `prefix`, taking its
    /// tensors out of `tensors` (the rest stay, for the caller to read). Every malformed
    /// entry is an error, not a panic.
    pub fn read_from(
        prefix: &str,
        tensors: &mut Vec<(String, Tensor)>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<OptimizerState, StateError> {
        let kind = metadata
            .get(&format!("{prefix}adamant.kind"))
            .ok_or_else(|| format_err(format!("no '{prefix}adamant.kind' in the metadata")))?
            .clone();
        let mut scalars = BTreeMap::new();
        let mut params: BTreeMap<String, SavedParamState> = BTreeMap::new();
        for (k, v) in metadata.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, v))) {
            if let Some(name) = k.strip_prefix("scalar.") {
                scalars.insert(name.to_string(), hex_to_f64(v)?);
            } else if let Some(name) = k.strip_prefix("step.") {
                let step = v.parse().map_err(|_| format_err(format!("bad step '{v}' for '{name}'")))?;
                param_entry(&mut params, name).step = step;
            } else if let Some(rest) = k.strip_prefix("pscalar.") {
                let (name, s) = rest.rsplit_once('/').ok_or_else(|| format_err(format!("bad key '{k}'")))?;
                let value = hex_to_f64(v)?;
                param_entry(&mut params, name).scalars.insert(s.to_string(), value);
            }
        }
        let (mine, others): (Vec<_>, Vec<_>) =
            std::mem::take(tensors).into_iter().partition(|(name, _)| name.starts_with(prefix));
        *tensors = others;
        for (name, t) in mine {
            let key = &name[prefix.len()..];
            let (pname, b) =
                key.rsplit_once('/').ok_or_else(|| format_err(format!("bad tensor name '{name}'")))?;
            let p = params
                .get_mut(pname)
                .ok_or_else(|| format_err(format!("tensor '{name}' has no step for its parameter")))?;
            p.buffers.insert(b.to_string(), t);
        }
        Ok(OptimizerState { kind, scalars, params })
    }

    /// Encodes the state as a safetensors file of its own: tensors named
    /// `"{param}/{buffer}"`, and the kind, steps and scalars in the metadata.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (mut tensors, mut metadata) = (Vec::new(), BTreeMap::new());
        self.write_into("", &mut tensors, &mut metadata);
        let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        // The names are unique: `param/buffer` pairs come from two maps.
        io::encode(&named, &metadata).expect("optimizer state is always encodable")
    }

    /// Decodes [`OptimizerState::to_bytes`]. Every malformed input is an error, not a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<OptimizerState, StateError> {
        let TensorFile { mut tensors, metadata } = io::decode(bytes).map_err(StateError::Codec)?;
        OptimizerState::read_from("", &mut tensors, &metadata)
    }
}
