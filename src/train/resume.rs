//! Continuing a run: reading its checkpoint back into the model, the optimizer, the
//! schedule and the weight average, after checking that it is the same run; and the lock that
//! keeps two processes off one run's files.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use adamant_layers::Params;
use adamant_optim::{AverageState, Optimizer, Scheduler, WeightAverage};

use super::{io_err, TrainError};
use crate::checkpoint::{Checkpoint, CheckpointError, Conflict, DecodeError, RunIdentity};

/// Continues a run from the checkpoint at `path`, as [`fit`](super::fit) does with
/// `FitConfig::resume`: the checkpoint is read (no more than a checkpoint of `model` can
/// weigh, and refused if it holds a NaN or an infinity), its settings are compared with `run`,
/// and the model's parameters and buffers, the optimizer's state, the scheduler's position
/// and the weight average's state are restored from it.
///
/// A checkpoint whose settings differ from `run` is refused ([`TrainError::RunMismatch`],
/// naming every difference) unless `allow_changes`; then this run's learning rate applies
/// from here on and a warning lists the differences. A weight average saved another way (or
/// not saved) starts afresh. Nothing is changed when an error is returned.
///
/// Returns the checkpoint read (its step, epoch, history and partial epoch tell the caller
/// where to continue), or `None`, with a note, when there is no file at `path` yet.
pub fn resume<M: Params + ?Sized>(
    path: &Path,
    model: &mut M,
    optimizer: &mut dyn Optimizer,
    mut scheduler: Option<&mut Scheduler>,
    average: Option<&mut WeightAverage>,
    run: &RunIdentity,
    allow_changes: bool,
) -> Result<Option<Checkpoint>, TrainError> {
    if !path.exists() {
        eprintln!("note: no checkpoint {} yet: starting from scratch", path.display());
        return Ok(None);
    }
    // `read` refuses a checkpoint holding a NaN or an infinity, and one larger than this
    // model's could be (a hostile or unrelated file is not read into memory).
    let ckpt = Checkpoint::read_at_most(path, resume_cap(&*model))?;
    let conflicts = run.conflicts(&ckpt.run);
    if !conflicts.is_empty() && !allow_changes {
        return Err(TrainError::RunMismatch { path: path.to_path_buf(), conflicts });
    }
    let base_lr = |o: &dyn Optimizer, s: Option<&Scheduler>| s.map_or(o.lr(), |s| s.base_lr());
    let configured_lr = base_lr(&*optimizer, scheduler.as_deref());
    // Checked before anything changes, as `restore` checks the rest.
    let saved_average = resumed_average(&ckpt, average.as_deref(), &*model)
        .map_err(|source| CheckpointError::Decode { path: path.to_path_buf(), source })?;
    ckpt.restore(model, optimizer, scheduler.as_deref_mut())
        .map_err(|source| CheckpointError::Restore { path: path.to_path_buf(), source })?;
    if let (Some(average), Some(saved)) = (average, saved_average) {
        average.load_state(saved).expect("checked by resumed_average");
    }
    if !conflicts.is_empty() {
        // Overridden: this run's settings apply from here on. The optimizer state restored the
        // saved learning rate (as PyTorch's load_state_dict does); the configured one is this
        // run's.
        match scheduler {
            Some(s) => s.set_base_lr(configured_lr),
            None => optimizer.set_lr(configured_lr),
        }
        let list: Vec<String> = conflicts.iter().map(Conflict::to_string).collect();
        eprintln!(
            "warning: resuming from {} with changed settings ({}): this run's values apply",
            path.display(),
            list.join("; ")
        );
    }
    Ok(Some(ckpt))
}

/// The most a checkpoint of `model` can weigh ([`Checkpoint::max_bytes_for`] of its
/// parameters and buffers, a weight average's copy included): a resume reads no more.
fn resume_cap<M: Params + ?Sized>(model: &M) -> u64 {
    let buffers = model.named_buffers();
    let values = model.num_params() + buffers.iter().map(|(_, b)| b.value().numel()).sum::<usize>();
    Checkpoint::max_bytes_for(values, model.params().len() + buffers.len())
}

/// The saved weight average a resumed run continues with, checked against `model`: the
/// checkpoint's when this run averages the same way; `None` (a fresh average, with a warning
/// when one was saved) when the checkpoint has none (a run without averaging, or an older
/// version) or averaged another way (a resume overriding the setting).
fn resumed_average<M: Params + ?Sized>(
    ckpt: &Checkpoint,
    average: Option<&WeightAverage>,
    model: &M,
) -> Result<Option<AverageState>, DecodeError> {
    let (Some(average), Some(saved)) = (average, &ckpt.average) else { return Ok(None) };
    if saved.averaging != average.averaging() {
        eprintln!(
            "warning: the checkpoint's weight average is {}, this run's {}: starting a fresh average",
            saved.averaging,
            average.averaging()
        );
        return Ok(None);
    }
    let layout = crate::average::layout(model);
    saved
        .validate(layout.iter().map(|(n, shape, kind)| (n.as_str(), shape.as_slice(), *kind)))
        .map_err(DecodeError::Average)?;
    Ok(Some(saved.clone()))
}

/// An exclusive lock on `<out_dir>/<name>.lock` for as long as a run uses its files: one
/// per run, not per directory, so runs of other names (shards of a sweep) share a directory.
/// It is the operating system's advisory lock (`flock`), released when the process exits
/// however it exits, so a killed run never leaves it stuck; the file itself stays, holding the
/// last holder's process id for the message of a run refused.
pub struct RunLock {
    _file: fs::File,
}

impl RunLock {
    /// Takes the lock, or says who holds it. `None` where the file system cannot lock (some
    /// network file systems): the run goes on without, with a warning.
    pub fn acquire(path: &Path) -> Result<Option<RunLock>, TrainError> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io_err(path))?;
                writeln!(file, "{}", std::process::id()).map_err(io_err(path))?;
                Ok(Some(RunLock { _file: file }))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok());
                Err(TrainError::Locked { path: path.to_path_buf(), holder })
            }
            Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!(
                    "warning: {}: cannot lock here ({e}); no guard against a second run",
                    path.display()
                );
                Ok(None)
            }
            Err(fs::TryLockError::Error(e)) => Err(io_err(path)(e)),
        }
    }
}
