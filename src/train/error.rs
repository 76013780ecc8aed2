//! [`TrainError`]: why [`fit`](super::fit) stopped early.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::checkpoint::{CheckpointError, Conflict};

/// Why training stopped early.
#[derive(Debug)]
pub enum TrainError {
    /// A training loss, an evaluated metric or the state to be checkpointed became NaN or
    /// infinite. Nothing was checkpointed after it; `checkpoint` is the last good state.
    NonFinite {
        /// Global step at which it happened (1-based; the epoch's last step when found by the
        /// evaluation or the check before a checkpoint).
        step: u64,
        /// Epoch at which it happened (1-based).
        epoch: usize,
        /// What was not finite: `loss is NaN`, `test loss is inf after the epoch`,
        /// `model/fc1.weight[17] = NaN after the epoch`.
        what: String,
        /// The last checkpoint this run wrote or resumed from (each was checked finite), if any.
        checkpoint: Option<PathBuf>,
    },
    /// [`FitConfig::interrupt`](super::FitConfig::interrupt) was set: the run stopped after a whole step.
    Interrupted {
        /// The last step taken (0: none).
        step: u64,
        /// The epoch it belongs to.
        epoch: usize,
        /// The checkpoint of that step, from which `resume` continues (`None` without an
        /// `out_dir`, or before the first step).
        checkpoint: Option<PathBuf>,
    },
    /// Another process is running with the same files (`<out_dir>/<name>.*`).
    Locked {
        /// The run's lock file.
        path: PathBuf,
        /// The process holding it, as it wrote into the file.
        holder: Option<u32>,
    },
    /// `resume` found a checkpoint written by a run with other settings.
    RunMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Every setting that differs.
        conflicts: Vec<Conflict>,
    },
    /// A log or checkpoint file could not be written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A checkpoint could not be read or does not fit the model and optimizer.
    Checkpoint(CheckpointError),
    /// Data-parallel training could not go on ([`FitConfig::distributed`](super::FitConfig::distributed)):
    /// a batch size the processes cannot share, or processes whose weights no longer agree.
    Distributed(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::NonFinite { step, epoch, what, checkpoint } => {
                write!(f, "training diverged: {what} at step {step} (epoch {epoch}); stopped")?;
                match checkpoint {
                    Some(p) => write!(f, "; the last good checkpoint is {}", p.display()),
                    None => write!(f, "; no checkpoint was written before it"),
                }
            }
            TrainError::Interrupted { step, epoch, checkpoint } => {
                write!(f, "interrupted after step {step} (epoch {epoch})")?;
                match checkpoint {
                    Some(p) => {
                        write!(f, "; its state is saved in {}, resume continues from there", p.display())
                    }
                    None => write!(f, "; nothing was saved"),
                }
            }
            TrainError::Locked { path, holder } => {
                let who = holder.map_or("another process".to_string(), |pid| format!("process {pid}"));
                write!(
                    f,
                    "{}: {who} is running with this run's files (the same name in the same directory); \
                     wait for it to finish or use another output directory",
                    path.display()
                )
            }
            TrainError::RunMismatch { path, conflicts } => {
                let list: Vec<String> = conflicts.iter().map(Conflict::to_string).collect();
                write!(
                    f,
                    "checkpoint {} was written by another run ({}); resume with the same settings, \
                     override the check (FitConfig::resume_override) to continue with these, or \
                     start afresh without resuming",
                    path.display(),
                    list.join("; ")
                )
            }
            TrainError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            TrainError::Checkpoint(e) => write!(f, "{e}"),
            TrainError::Distributed(what) => write!(f, "data-parallel training: {what}"),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::NonFinite { .. }
            | TrainError::Interrupted { .. }
            | TrainError::Locked { .. }
            | TrainError::RunMismatch { .. }
            | TrainError::Distributed(_) => None,
            TrainError::Io { source, .. } => Some(source),
            TrainError::Checkpoint(e) => Some(e),
        }
    }
}

/// An event file that could not be written or read: a file of the run, as [`TrainError::Io`].
#[cfg(feature = "tensorboard")]
impl From<crate::tensorboard::TensorBoardError> for TrainError {
    fn from(e: crate::tensorboard::TensorBoardError) -> TrainError {
        TrainError::Io { path: e.path, source: e.source }
    }
}

impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> Self {
        TrainError::Checkpoint(e)
    }
}
