//! Training checkpoints: model parameters, optimizer state, scheduler position, epoch, step,
//! seed and the per-epoch history, in one safetensors file written atomically.
//!
//! Layout: each parameter is an `F32` tensor `model/<name>`; the optimizer's own safetensors
//! encoding ([`adamant_optim::OptimizerState::to_bytes`]) is the `U8` tensor `optimizer`; the
//! rest is metadata. One file means one atomic rename: a crash leaves either the previous
//! checkpoint or the new one, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use adamant_layers::serialize::{assign, write_atomic};
use adamant_layers::Module;
use adamant_optim::{Optimizer, OptimizerState, Scheduler};
use adamant_tensor::Tensor;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::train::{EpochMetrics, History};

/// Why a checkpoint could not be written, read or restored.
#[derive(Debug)]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checkpoint {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for CheckpointError {}

/// The saved state of a training run.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Last completed epoch (1-based).
    pub epoch: usize,
    /// Global step count after that epoch.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// Model parameters by name.
    pub model: Vec<(String, Tensor)>,
    /// The optimizer's state.
    pub optimizer: OptimizerState,
    /// The scheduler's state, if the run has one.
    pub scheduler: Option<BTreeMap<String, f64>>,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
}

impl Checkpoint {
    /// Captures the current state of a run.
    pub fn capture<M: Module + ?Sized>(
        model: &M,
        optimizer: &dyn Optimizer,
        scheduler: Option<&Scheduler>,
        epoch: usize,
        step: u64,
        seed: u64,
        history: &History,
    ) -> Checkpoint {
        Checkpoint {
            epoch,
            step,
            seed,
            model: model.named_params().into_iter().map(|(n, p)| (n, p.value().clone())).collect(),
            optimizer: optimizer.state_dict(),
            scheduler: scheduler.map(|s| s.state()),
            history: history.epochs.clone(),
        }
    }

    /// The checkpoint as safetensors bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut meta = HashMap::new();
        meta.insert("adamant.checkpoint".to_string(), "1".to_string());
        meta.insert("epoch".to_string(), self.epoch.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("seed".to_string(), self.seed.to_string());
        meta.insert(
            "history".to_string(),
            History { epochs: self.history.clone(), iterations: vec![] }.epochs_csv(),
        );
        if let Some(s) = &self.scheduler {
            for (k, v) in s {
                meta.insert(format!("scheduler.{k}"), format!("{:016x}", v.to_bits()));
            }
        }
        let model_bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .model
            .iter()
            .map(|(n, t)| {
                (
                    format!("model/{n}"),
                    t.shape().to_vec(),
                    t.data().iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let optimizer_bytes = self.optimizer.to_bytes();
        let mut views: Vec<(String, TensorView)> = model_bytes
            .iter()
            .map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).expect("sizes agree")))
            .collect();
        views.push((
            "optimizer".to_string(),
            TensorView::new(Dtype::U8, vec![optimizer_bytes.len()], &optimizer_bytes).expect("sizes agree"),
        ));
        safetensors::serialize(views, Some(meta)).expect("checkpoint is always serialisable")
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        write_atomic(path, &self.to_bytes())
            .map_err(|e| CheckpointError { path: path.to_path_buf(), message: format!("cannot write: {e}") })
    }

    /// Reads and fully decodes a checkpoint; every defect is an error naming the file.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let err = |message: String| CheckpointError { path: path.to_path_buf(), message };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Checkpoint::from_bytes(&bytes).map_err(err)
    }

    /// Decodes [`Checkpoint::to_bytes`]; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
        let (_, metadata) =
            SafeTensors::read_metadata(bytes).map_err(|e| format!("not a valid checkpoint file: {e}"))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid checkpoint file: {e}"))?;
        let meta = metadata.metadata().clone().unwrap_or_default();
        if meta.get("adamant.checkpoint").map(String::as_str) != Some("1") {
            return Err("not an adamant checkpoint (no 'adamant.checkpoint' metadata)".to_string());
        }
        let field = |k: &str| meta.get(k).ok_or_else(|| format!("metadata '{k}' is missing"));
        let number = |k: &str| -> Result<u64, String> {
            field(k)?.parse().map_err(|_| format!("metadata '{k}' is not a number: '{}'", meta[k]))
        };
        let history =
            History::parse_epochs_csv(field("history")?).ok_or("metadata 'history' is malformed")?;
        let mut scheduler = BTreeMap::new();
        for (k, v) in &meta {
            if let Some(name) = k.strip_prefix("scheduler.") {
                let bits = u64::from_str_radix(v, 16).map_err(|_| format!("metadata '{k}' is malformed"))?;
                scheduler.insert(name.to_string(), f64::from_bits(bits));
            }
        }
        let mut model = Vec::new();
        let mut optimizer = None;
        let mut names = st.names();
        names.sort_unstable();
        for name in names {
            let view = st.tensor(name).map_err(|e| format!("tensor '{name}': {e}"))?;
            if name == "optimizer" {
                if view.dtype() != Dtype::U8 {
                    return Err(format!("tensor 'optimizer' has dtype {:?}, expected U8", view.dtype()));
                }
                optimizer = Some(OptimizerState::from_bytes(view.data()).map_err(|e| e.to_string())?);
            } else if let Some(pname) = name.strip_prefix("model/") {
                if view.dtype() != Dtype::F32 {
                    return Err(format!("tensor '{name}' has dtype {:?}, expected F32", view.dtype()));
                }
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                model.push((pname.to_string(), Tensor::from_vec(values, view.shape())));
            } else {
                return Err(format!("unexpected tensor '{name}'"));
            }
        }
        // One history row per completed epoch: a resumed run starts at `epoch + 1`, so an epoch
        // the history does not back (say 2^64 - 1, which overflows there) is a corrupt file.
        let epoch = number("epoch")?;
        if epoch != history.len() as u64 {
            return Err(format!("metadata 'epoch' is {epoch} but 'history' holds {} epochs", history.len()));
        }
        // Likewise the step count continues at `step + 1`: it must be the last epoch's.
        let step = number("step")?;
        let last_step = history.last().map_or(0, |e| e.step);
        if step != last_step {
            return Err(format!(
                "metadata 'step' is {step} but the last epoch of 'history' ended at step {last_step}"
            ));
        }
        Ok(Checkpoint {
            epoch: epoch as usize,
            step,
            seed: number("seed")?,
            model,
            optimizer: optimizer.ok_or("tensor 'optimizer' is missing")?,
            scheduler: (!scheduler.is_empty()).then_some(scheduler),
            history,
        })
    }

    /// Puts the saved state into a model, optimizer and scheduler of the same shape. Every
    /// check happens before anything changes, so on error all three are as they were.
    pub fn restore<M: Module + ?Sized>(
        &self,
        model: &mut M,
        optimizer: &mut dyn Optimizer,
        scheduler: Option<&mut Scheduler>,
    ) -> Result<(), CheckpointError> {
        let err = |message: String| CheckpointError { path: PathBuf::from("(in memory)"), message };
        if self.optimizer.kind != optimizer.name() {
            return Err(err(format!(
                "it holds the state of optimizer '{}', this run uses '{}'",
                self.optimizer.kind,
                optimizer.name()
            )));
        }
        // params_mut: the parameters named by their paths, as the optimizer saw them.
        let params: Vec<&adamant_autodiff::Param> = model.params_mut().into_iter().map(|p| &*p).collect();
        self.optimizer.validate(&params).map_err(|e| err(e.to_string()))?;
        if self.scheduler.is_some() != scheduler.is_some() {
            return Err(err("the run's learning-rate schedule differs from the checkpoint's".to_string()));
        }
        if let (Some(s), Some(state)) = (scheduler.as_deref(), &self.scheduler) {
            // Try the scheduler state on a copy first: nothing may change unless all fits.
            s.clone().load_state(state).map_err(|e| err(e.to_string()))?;
        }
        let before = optimizer.state_dict();
        optimizer.load_state_dict(self.optimizer.clone()).map_err(|e| err(e.to_string()))?;
        if let Err(e) = assign(model, self.model.clone(), Path::new("checkpoint")) {
            optimizer.load_state_dict(before).expect("restoring the previous state");
            return Err(err(e.to_string()));
        }
        if let (Some(s), Some(state)) = (scheduler, &self.scheduler) {
            s.load_state(state).expect("checked on a copy above");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(epoch: usize, epochs: usize) -> Checkpoint {
        let row = |e: usize| EpochMetrics {
            epoch: e,
            step: 10 * e as u64,
            train_loss: 0.5,
            train_accuracy: None,
            test_loss: 0.5,
            test_accuracy: Some(0.75),
            lr: 0.01,
            seconds: 1.0,
        };
        Checkpoint {
            epoch,
            step: 10 * epoch as u64,
            seed: 1,
            model: vec![("w".to_string(), Tensor::ones(&[2]))],
            optimizer: OptimizerState {
                kind: "sgd".to_string(),
                scalars: BTreeMap::from([("lr".to_string(), 0.01)]),
                params: BTreeMap::new(),
            },
            scheduler: None,
            history: (1..=epochs).map(row).collect(),
        }
    }

    #[test]
    fn round_trip() {
        let c = checkpoint(2, 2);
        let back = Checkpoint::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!((back.epoch, back.step, back.seed, back.history), (2, 20, 1, c.history));
    }

    /// An epoch number the history does not back is an error: `u64::MAX` made a resumed run
    /// overflow at `epoch + 1`.
    #[test]
    fn epoch_must_match_the_history() {
        let e = Checkpoint::from_bytes(&checkpoint(usize::MAX, 1).to_bytes()).unwrap_err();
        assert_eq!(e, "metadata 'epoch' is 18446744073709551615 but 'history' holds 1 epochs");
        assert!(Checkpoint::from_bytes(&checkpoint(1, 0).to_bytes()).is_err());
    }

    /// A step count the history does not back is an error: `u64::MAX` would overflow at the
    /// resumed run's first `step + 1`.
    #[test]
    fn step_must_match_the_history() {
        let mut c = checkpoint(2, 2);
        c.step = u64::MAX;
        let e = Checkpoint::from_bytes(&c.to_bytes()).unwrap_err();
        assert_eq!(
            e,
            "metadata 'step' is 18446744073709551615 but the last epoch of 'history' ended at step 20"
        );
    }
}
