//! Why a checkpoint could not be written, read or used: the file ([`CheckpointError`]), its
//! contents ([`DecodeError`]), or its fit to the run ([`RestoreError`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use adamant_layers::serialize::AssignError;
use adamant_optim::{AverageError, StateError};
use adamant_tensor::io::CodecError;

/// Why a checkpoint file could not be written, read or used.
#[derive(Debug)]
pub enum CheckpointError {
    /// The file could not be read or written.
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a valid checkpoint.
    Decode {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// The checkpoint does not fit the run's model, optimizer or schedule.
    Restore {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not fit.
        source: RestoreError,
    },
    /// The state to be written holds a NaN or an infinity, so nothing was written.
    NonFinite {
        /// The checkpoint file that was not written.
        path: PathBuf,
        /// Where, e.g. `model/fc1.weight[17] = NaN`.
        what: String,
    },
}

impl CheckpointError {
    /// The checkpoint file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::Io { path, .. }
            | CheckpointError::Decode { path, .. }
            | CheckpointError::Restore { path, .. }
            | CheckpointError::NonFinite { path, .. } => path,
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path().display();
        match self {
            CheckpointError::Io { source, .. } => write!(f, "checkpoint {path}: {source}"),
            CheckpointError::Decode { source, .. } => write!(f, "checkpoint {path}: {source}"),
            CheckpointError::Restore { source, .. } => write!(f, "checkpoint {path}: {source}"),
            CheckpointError::NonFinite { what, .. } => {
                write!(f, "checkpoint {path}: not written, the state holds {what}")
            }
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::Decode { source, .. } => Some(source),
            CheckpointError::Restore { source, .. } => Some(source),
            CheckpointError::NonFinite { .. } => None,
        }
    }
}

/// Why bytes are not a valid checkpoint ([`Checkpoint::from_bytes`](super::Checkpoint::from_bytes)).
#[derive(Clone, Debug, PartialEq)]
pub enum DecodeError {
    /// Not a safetensors file of `f32` tensors.
    Codec(CodecError),
    /// The optimizer's part is malformed.
    OptimizerState(StateError),
    /// The weight average's part is malformed.
    Average(AverageError),
    /// A safetensors file, but not a consistent adamant checkpoint (what is wrong).
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Codec(e) => write!(f, "{e}"),
            DecodeError::OptimizerState(e) => write!(f, "{e}"),
            DecodeError::Average(e) => write!(f, "{e}"),
            DecodeError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Codec(e) => Some(e),
            DecodeError::OptimizerState(e) => Some(e),
            DecodeError::Average(e) => Some(e),
            DecodeError::Invalid(_) => None,
        }
    }
}

/// Why a checkpoint does not fit a run ([`Checkpoint::restore`](super::Checkpoint::restore)).
#[derive(Clone, Debug, PartialEq)]
pub enum RestoreError {
    /// It holds another optimizer's state.
    OptimizerKind {
        /// The optimizer of the checkpoint.
        saved: String,
        /// The optimizer of this run.
        configured: String,
    },
    /// The optimizer state does not fit the model or the optimizer.
    OptimizerState(StateError),
    /// One has a learning-rate schedule and the other not.
    ScheduleMissing {
        /// Whether the checkpoint has one.
        saved: bool,
    },
    /// The scheduler's saved state does not fit the run's scheduler.
    Schedule(StateError),
    /// The saved parameters do not fit the model.
    Model(AssignError),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::OptimizerKind { saved, configured } => {
                write!(f, "it holds the state of optimizer '{saved}', this run uses '{configured}'")
            }
            RestoreError::OptimizerState(e) => write!(f, "{e}"),
            RestoreError::ScheduleMissing { saved: true } => {
                write!(f, "it has a learning-rate schedule, this run has none")
            }
            RestoreError::ScheduleMissing { saved: false } => {
                write!(f, "it has no learning-rate schedule, this run has one")
            }
            RestoreError::Schedule(e) => write!(f, "schedule: {e}"),
            RestoreError::Model(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RestoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RestoreError::OptimizerState(e) | RestoreError::Schedule(e) => Some(e),
            RestoreError::Model(e) => Some(e),
            _ => None,
        }
    }
}
