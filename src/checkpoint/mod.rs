//! Training checkpoints: model parameters, optimizer state, scheduler position, epoch, step,
//! the settings that define the run ([`RunIdentity`]) and the per-epoch history, in one
//! safetensors file written atomically.
//!
//! Layout, in the one codec of [`adamant_tensor::io`]: each parameter is the tensor
//! `model/<name>`; the optimizer's buffers are the tensors `optimizer/<param>/<buffer>` and
//! its scalars metadata keys starting with `optimizer/`
//! ([`OptimizerState::write_into`]); a run that averages its weights adds the averaged copy
//! as the tensors `average/<name>` and metadata keys `average/scheme` and so on
//! ([`AverageState::write_into`]); the run's settings are metadata keys `run.<setting>`; the
//! rest is metadata. One file means one atomic rename: a crash leaves either the previous
//! checkpoint or the new one, never a mix.
//!
//! A checkpoint never holds a non-finite number: [`Checkpoint::write`] refuses to write one
//! and [`Checkpoint::from_bytes`] refuses to read one, so a checkpoint on disk is always a
//! state training can continue from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use adamant_layers::serialize::assign;
use adamant_layers::Params;
use adamant_optim::{AverageState, Optimizer, OptimizerState, Scheduler};
use adamant_tensor::io::{decode, encode, write_atomic, CodecError, TensorFile};
use adamant_tensor::Tensor;

use crate::history::{EpochMetrics, History};

mod error;
pub use error::{CheckpointError, DecodeError, RestoreError};

/// The settings that define a run: everything that, if it differed, would make the run a
/// different one (seed, batch size, optimizer and every hyperparameter, schedule and its
/// length, data size and preprocessing, model, adamant version), as `(setting, value)` text
/// in a fixed order. Nothing that differs between two identical runs belongs here (no wall
/// clock, host name or thread count).
///
/// [`crate::train::fit`] records it in every checkpoint and refuses to resume from one whose
/// identity differs from the run's, unless told to override.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunIdentity {
    settings: Vec<(String, String)>,
}

/// A setting whose value in a checkpoint differs from the run's ([`RunIdentity::conflicts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The setting (`seed`, `batch_size`, an optimizer option such as `betas`).
    pub setting: String,
    /// Its value in the checkpoint (`None`: not recorded there).
    pub saved: Option<String>,
    /// Its value in this run (`None`: this run does not have it).
    pub configured: Option<String>,
}

impl fmt::Display for Conflict {
    /// `seed 7 there, 0 here`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".to_string());
        write!(f, "{} {} there, {} here", self.setting, show(&self.saved), show(&self.configured))
    }
}

impl RunIdentity {
    /// No settings.
    pub fn new() -> RunIdentity {
        RunIdentity::default()
    }

    /// Sets `setting` to `value`, replacing an earlier value in its place (order is kept).
    ///
    /// # Panics
    /// If `setting` is empty or holds a comma (the checkpoint lists the settings' order as
    /// names separated by commas); settings are names chosen in code, not user input.
    pub fn set(&mut self, setting: impl Into<String>, value: impl fmt::Display) {
        let (setting, value) = (setting.into(), value.to_string());
        assert!(!setting.is_empty() && !setting.contains(','), "RunIdentity: bad setting name {setting:?}");
        match self.settings.iter_mut().find(|(s, _)| *s == setting) {
            Some(entry) => entry.1 = value,
            None => self.settings.push((setting, value)),
        }
    }

    /// [`RunIdentity::set`], by value.
    pub fn with(mut self, setting: impl Into<String>, value: impl fmt::Display) -> RunIdentity {
        self.set(setting, value);
        self
    }

    /// The value of `setting`, if recorded.
    pub fn get(&self, setting: &str) -> Option<&str> {
        self.settings.iter().find(|(s, _)| s == setting).map(|(_, v)| v.as_str())
    }

    /// Every `(setting, value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(s, v)| (s.as_str(), v.as_str()))
    }

    /// Every setting that differs between this run and `saved` (a checkpoint's), in this run's
    /// order, then those only the checkpoint has.
    pub fn conflicts(&self, saved: &RunIdentity) -> Vec<Conflict> {
        let mut out: Vec<Conflict> = self
            .iter()
            .filter(|(s, v)| saved.get(s) != Some(*v))
            .map(|(s, v)| Conflict {
                setting: s.to_string(),
                saved: saved.get(s).map(str::to_string),
                configured: Some(v.to_string()),
            })
            .collect();
        out.extend(saved.iter().filter(|(s, _)| self.get(s).is_none()).map(|(s, v)| Conflict {
            setting: s.to_string(),
            saved: Some(v.to_string()),
            configured: None,
        }));
        out
    }
}

/// How far the epoch after the last completed one had got when a checkpoint was written in
/// its middle (an interrupted run): what the epoch's metrics need to continue exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct PartialEpoch {
    /// Steps of the epoch already taken (at least 1).
    pub steps: usize,
    /// Sum over those steps of loss times batch size (exact, as the loop accumulates it).
    pub loss_sum: f64,
    /// Training examples seen.
    pub examples: usize,
    /// Of those, how many were classified correctly (0 without logits).
    pub correct: usize,
    /// Whether the task has logits (so the epoch has a training accuracy).
    pub has_logits: bool,
    /// Wall time of those steps, in seconds.
    pub seconds: f64,
}

impl PartialEpoch {
    /// `steps,loss_sum bits,examples,correct,has_logits,seconds bits` (floats as exact bits).
    fn to_text(&self) -> String {
        format!(
            "{},{:016x},{},{},{},{:016x}",
            self.steps,
            self.loss_sum.to_bits(),
            self.examples,
            self.correct,
            u8::from(self.has_logits),
            self.seconds.to_bits()
        )
    }

    fn parse(text: &str) -> Option<PartialEpoch> {
        let f: Vec<&str> = text.split(',').collect();
        let [steps, loss_sum, examples, correct, has_logits, seconds] = f[..] else { return None };
        let bits = |s: &str| u64::from_str_radix(s, 16).ok().map(f64::from_bits);
        let partial = PartialEpoch {
            steps: steps.parse().ok()?,
            loss_sum: bits(loss_sum)?,
            examples: examples.parse().ok()?,
            correct: correct.parse().ok()?,
            has_logits: match has_logits {
                "0" => false,
                "1" => true,
                _ => return None,
            },
            seconds: bits(seconds)?,
        };
        let sane = partial.steps >= 1
            && partial.loss_sum.is_finite()
            && partial.seconds.is_finite()
            && partial.seconds >= 0.0
            && partial.correct <= partial.examples;
        sane.then_some(partial)
    }
}

/// The saved state of a training run.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Last completed epoch (1-based).
    pub epoch: usize,
    /// Global step count: the last completed epoch's, plus the steps of `partial`.
    pub step: u64,
    /// The epoch in progress, when the checkpoint was written in its middle.
    pub partial: Option<PartialEpoch>,
    /// The settings that define the run.
    pub run: RunIdentity,
    /// Model parameters by name.
    pub model: Vec<(String, Tensor)>,
    /// The optimizer's state.
    pub optimizer: OptimizerState,
    /// The scheduler's state, if the run has one.
    pub scheduler: Option<BTreeMap<String, f64>>,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
    /// The run's weight average, if it keeps one ([`crate::train::FitConfig::average`]).
    /// [`Checkpoint::capture`] leaves it `None`; the training loop sets it.
    pub average: Option<AverageState>,
}

/// Name prefixes of the model's and the optimizer's entries in the file.
const MODEL: &str = "model/";
const OPTIMIZER: &str = "optimizer/";
const SCHEDULER: &str = "scheduler.";
const AVERAGE: &str = "average/";
const RUN: &str = "run.";
/// The checkpoint format this version writes and reads.
const FORMAT: &str = "3";

impl Checkpoint {
    /// Captures the current state of a run.
    pub fn capture<M: Params + ?Sized>(
        model: &M,
        optimizer: &dyn Optimizer,
        scheduler: Option<&Scheduler>,
        epoch: usize,
        step: u64,
        run: &RunIdentity,
        history: &History,
    ) -> Checkpoint {
        Checkpoint {
            epoch,
            step,
            partial: None,
            run: run.clone(),
            // Parameters and buffers (batch norm's running statistics), as `save` writes them.
            model: adamant_layers::serialize::state_dict(model).into_iter().map(|(n, t, _)| (n, t)).collect(),
            optimizer: optimizer.state_dict(),
            scheduler: scheduler.map(|s| s.state()),
            history: history.epochs.clone(),
            average: None,
        }
    }

    /// The checkpoint as safetensors bytes. Two model parameters with one name are an error
    /// naming it.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut meta = BTreeMap::new();
        meta.insert("adamant.checkpoint".to_string(), FORMAT.to_string());
        meta.insert("epoch".to_string(), self.epoch.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        if let Some(partial) = &self.partial {
            meta.insert("partial_epoch".to_string(), partial.to_text());
        }
        for (setting, value) in self.run.iter() {
            meta.insert(format!("{RUN}{setting}"), value.to_string());
        }
        // The settings' order, which the metadata map does not keep.
        meta.insert("run".to_string(), self.run.iter().map(|(s, _)| s).collect::<Vec<_>>().join(","));
        meta.insert(
            "history".to_string(),
            History { epochs: self.history.clone(), iterations: vec![] }.epochs_csv(),
        );
        for (k, v) in self.scheduler.iter().flatten() {
            meta.insert(format!("{SCHEDULER}{k}"), format!("{:016x}", v.to_bits()));
        }
        let mut tensors: Vec<(String, Tensor)> =
            self.model.iter().map(|(n, t)| (format!("{MODEL}{n}"), t.clone())).collect();
        self.optimizer.write_into(OPTIMIZER, &mut tensors, &mut meta);
        if let Some(average) = &self.average {
            average.write_into(AVERAGE, &mut tensors, &mut meta);
        }
        let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        encode(&named, &meta)
    }

    /// The first NaN or infinity in the model, the optimizer state or the weight average, described as
    /// `model/fc1.weight[17] = NaN`; `None` when every value is finite.
    pub fn first_non_finite(&self) -> Option<String> {
        let in_tensor = |name: String, t: &Tensor| {
            t.data().iter().position(|x| !x.is_finite()).map(|i| format!("{name}[{i}] = {}", t.data()[i]))
        };
        let in_scalar = |name: String, x: f64| (!x.is_finite()).then(|| format!("{name} = {x}"));
        self.model
            .iter()
            .find_map(|(n, t)| in_tensor(format!("{MODEL}{n}"), t))
            .or_else(|| {
                self.optimizer.scalars.iter().find_map(|(k, &x)| in_scalar(format!("{OPTIMIZER}{k}"), x))
            })
            .or_else(|| {
                self.optimizer.params.iter().find_map(|(p, state)| {
                    state
                        .buffers
                        .iter()
                        .find_map(|(b, t)| in_tensor(format!("{OPTIMIZER}{p}/{b}"), t))
                        .or_else(|| {
                            state
                                .scalars
                                .iter()
                                .find_map(|(k, &x)| in_scalar(format!("{OPTIMIZER}{p}/{k}"), x))
                        })
                })
            })
            .or_else(|| {
                let average = self.average.iter().flat_map(|a| &a.tensors);
                average.clone().find_map(|(n, t, _)| in_tensor(format!("{AVERAGE}{n}"), t))
            })
            .or_else(|| {
                self.scheduler.iter().flatten().find_map(|(k, &x)| in_scalar(format!("{SCHEDULER}{k}"), x))
            })
            .or_else(|| {
                self.history.iter().find_map(|e| {
                    let losses = [
                        ("train loss", e.train_loss),
                        ("test loss", e.test_loss),
                        ("averaged test loss", e.averaged_test_loss.unwrap_or(0.0)),
                    ];
                    losses
                        .into_iter()
                        .find_map(|(what, x)| in_scalar(format!("the {what} of epoch {}", e.epoch), x))
                })
            })
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename). A state holding a NaN or
    /// an infinity is not written ([`CheckpointError::NonFinite`]): training could not
    /// continue from it, and it would replace the last checkpoint that it could.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        if let Some(what) = self.first_non_finite() {
            return Err(CheckpointError::NonFinite { path: path.to_path_buf(), what });
        }
        let bytes = self.to_bytes().map_err(|e| CheckpointError::Decode {
            path: path.to_path_buf(),
            source: DecodeError::Codec(e),
        })?;
        write_atomic(path, &bytes).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })
    }

    /// Reads and fully decodes a checkpoint; every defect is an error naming the file.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::read_at_most(path, u64::MAX)
    }

    /// [`Checkpoint::read`] of a file of at most `max_bytes`: a larger one is refused from its
    /// length, before anything is read, and a file growing while it is read is cut off one
    /// byte past the cap. [`crate::train::fit`] caps a resume at what a checkpoint of the run's
    /// model can weigh ([`Checkpoint::max_bytes_for`]).
    pub fn read_at_most(path: &Path, max_bytes: u64) -> Result<Checkpoint, CheckpointError> {
        use std::io::Read as _;
        let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        let too_big = |found: String| CheckpointError::Decode {
            path: path.to_path_buf(),
            source: DecodeError::Invalid(format!(
                "the file is {found}, more than the {max_bytes} a checkpoint of this model can be"
            )),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > max_bytes {
            return Err(too_big(format!("{len} bytes")));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_big("growing".to_string()));
        }
        Checkpoint::from_bytes(&bytes)
            .map_err(|source| CheckpointError::Decode { path: path.to_path_buf(), source })
    }

    /// The most a checkpoint of a model with `num_params` parameters in `num_tensors` tensors
    /// can weigh: the parameters, up to four optimizer buffers of their size (AMSGrad keeps
    /// three) and a weight average's copy ([`Checkpoint::average`]), each as `f32`, plus the
    /// safetensors header (a few hundred bytes per tensor) and 64 MiB of metadata (the
    /// history's rows, the settings).
    pub fn max_bytes_for(num_params: usize, num_tensors: usize) -> u64 {
        const COPIES: u64 = 1 + 4 + 1;
        let values = (num_params as u64).saturating_mul(4 * COPIES);
        let headers = (num_tensors as u64).saturating_mul(512 * COPIES);
        values.saturating_add(headers).saturating_add(64 << 20)
    }

    /// Decodes [`Checkpoint::to_bytes`]; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
        let invalid = |why: String| DecodeError::Invalid(why);
        let TensorFile { mut tensors, metadata: meta } = decode(bytes).map_err(DecodeError::Codec)?;
        if meta.get("adamant.checkpoint").map(String::as_str) != Some(FORMAT) {
            return Err(invalid(match meta.get("adamant.checkpoint") {
                Some(v) => format!("checkpoint format '{v}' is not this version's ('{FORMAT}')"),
                None => "not an adamant checkpoint (no 'adamant.checkpoint' metadata)".to_string(),
            }));
        }
        let field = |k: &str| meta.get(k).ok_or_else(|| invalid(format!("metadata '{k}' is missing")));
        let number = |k: &str| -> Result<u64, DecodeError> {
            let v = field(k)?;
            v.parse().map_err(|_| invalid(format!("metadata '{k}' is not a number: '{v}'")))
        };
        let history = History::parse_epochs_csv(field("history")?)
            .ok_or_else(|| invalid("metadata 'history' is malformed".to_string()))?;
        let mut scheduler = BTreeMap::new();
        for (k, v) in &meta {
            if let Some(name) = k.strip_prefix(SCHEDULER) {
                let bits = u64::from_str_radix(v, 16)
                    .map_err(|_| invalid(format!("metadata '{k}' is malformed")))?;
                scheduler.insert(name.to_string(), f64::from_bits(bits));
            }
        }
        let mut run = RunIdentity::new();
        for setting in field("run")?.split(',').filter(|s| !s.is_empty()) {
            let value = meta
                .get(&format!("{RUN}{setting}"))
                .ok_or_else(|| invalid(format!("metadata '{RUN}{setting}' is missing")))?;
            run.set(setting, value);
        }
        let optimizer =
            OptimizerState::read_from(OPTIMIZER, &mut tensors, &meta).map_err(DecodeError::OptimizerState)?;
        // Absent from the checkpoints of runs without averaging (and of earlier versions).
        let average = AverageState::read_from(AVERAGE, &mut tensors, &meta).map_err(DecodeError::Average)?;
        let mut model = Vec::with_capacity(tensors.len());
        for (name, t) in tensors {
            match name.strip_prefix(MODEL) {
                Some(pname) => model.push((pname.to_string(), t)),
                None => return Err(invalid(format!("unexpected tensor '{name}'"))),
            }
        }
        // One history row per completed epoch: a resumed run starts at `epoch + 1`, so an epoch
        // the history does not back (say 2^64 - 1, which overflows there) is a corrupt file.
        let epoch = number("epoch")?;
        if epoch != history.len() as u64 {
            return Err(invalid(format!(
                "metadata 'epoch' is {epoch} but 'history' holds {} epochs",
                history.len()
            )));
        }
        let partial = match meta.get("partial_epoch") {
            None => None,
            Some(text) => Some(
                PartialEpoch::parse(text)
                    .ok_or_else(|| invalid(format!("metadata 'partial_epoch' is malformed: '{text}'")))?,
            ),
        };
        // Likewise the step count continues at `step + 1`: it must be the last epoch's, plus
        // the steps of an epoch in progress.
        let step = number("step")?;
        let last_step = history.last().map_or(0, |e| e.step);
        let in_progress = partial.as_ref().map_or(0, |p| p.steps as u64);
        if Some(step) != last_step.checked_add(in_progress) {
            return Err(invalid(match in_progress {
                0 => format!(
                    "metadata 'step' is {step} but the last epoch of 'history' ended at step {last_step}"
                ),
                n => format!(
                    "metadata 'step' is {step} but the last epoch of 'history' ended at step {last_step} \
                     and {n} steps of the next one are done"
                ),
            }));
        }
        let checkpoint = Checkpoint {
            epoch: epoch as usize,
            step,
            partial,
            run,
            model,
            optimizer,
            scheduler: (!scheduler.is_empty()).then_some(scheduler),
            history,
            average,
        };
        // Training cannot continue from a NaN weight or moment: such a file is refused here,
        // not resumed and later named as the last good state.
        if let Some(what) = checkpoint.first_non_finite() {
            return Err(invalid(format!("it holds {what}; training cannot continue from it")));
        }
        Ok(checkpoint)
    }

    /// Puts the saved state into a model, optimizer and scheduler of the same shape. Every
    /// check happens before anything changes, so on error all three are as they were.
    pub fn restore<M: Params + ?Sized>(
        &self,
        model: &mut M,
        optimizer: &mut dyn Optimizer,
        scheduler: Option<&mut Scheduler>,
    ) -> Result<(), RestoreError> {
        if self.optimizer.kind != optimizer.name() {
            return Err(RestoreError::OptimizerKind {
                saved: self.optimizer.kind.clone(),
                configured: optimizer.name().to_string(),
            });
        }
        // params_mut: the parameters named by their paths, as the optimizer saw them.
        let params: Vec<&adamant_autodiff::Param> = model.params_mut().into_iter().map(|p| &*p).collect();
        self.optimizer.validate(&params).map_err(RestoreError::OptimizerState)?;
        if self.scheduler.is_some() != scheduler.is_some() {
            return Err(RestoreError::ScheduleMissing { saved: self.scheduler.is_some() });
        }
        if let (Some(s), Some(state)) = (scheduler.as_deref(), &self.scheduler) {
            // Try the scheduler state on a copy first: nothing may change unless all fits.
            s.clone().load_state(state).map_err(RestoreError::Schedule)?;
        }
        let before = optimizer.state_dict();
        optimizer.load_state_dict(self.optimizer.clone()).map_err(RestoreError::OptimizerState)?;
        if let Err(e) = assign(model, self.model.clone()) {
            optimizer.load_state_dict(before).expect("restoring the previous state");
            return Err(RestoreError::Model(e));
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
    use adamant_layers::Module;

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
            averaged_test_loss: None,
            averaged_test_accuracy: None,
        };
        Checkpoint {
            epoch,
            step: (epoch as u64).wrapping_mul(10),
            partial: None,
            run: RunIdentity::new().with("seed", 1).with("batch_size", 32),
            model: vec![("w".to_string(), Tensor::ones(&[2]))],
            optimizer: OptimizerState {
                kind: "sgd".to_string(),
                scalars: BTreeMap::from([("lr".to_string(), 0.01)]),
                params: BTreeMap::new(),
            },
            scheduler: None,
            history: (1..=epochs).map(row).collect(),
            average: None,
        }
    }

    /// Buffers (batch norm's running statistics and batch count) are checkpointed with the
    /// weights, so a resumed run normalizes as the uninterrupted one would.
    #[test]
    fn buffers_round_trip_with_the_model() {
        use adamant_autodiff::{Mode, Tape};
        use adamant_layers::{sequential, BatchNorm1d, Dense, Params};
        use adamant_optim::{Sgd, SgdConfig};
        use adamant_tensor::rng::seeded;

        let model = sequential![Dense::new(3, 4, &mut seeded(0)), BatchNorm1d::new(4)];
        let x = Tensor::randn(&[5, 3], 0.0, 1.0, &mut seeded(1));
        for _ in 0..2 {
            let tape = Tape::new(Mode::Train, 0);
            model.forward(tape.constant(x.clone()));
        }
        let sgd = Sgd::new(SgdConfig::default());
        let c = Checkpoint::capture(&model, &sgd, None, 0, 0, &RunIdentity::new(), &History::default());
        let names: Vec<&str> = c.model.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "1.running_mean",
                "1.running_var",
                "1.num_batches_tracked"
            ]
        );
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        let mut fresh = sequential![Dense::new(3, 4, &mut seeded(5)), BatchNorm1d::new(4)];
        back.restore(&mut fresh, &mut Sgd::new(SgdConfig::default()), None).unwrap();
        for ((name, ours), (_, theirs)) in fresh.named_buffers().into_iter().zip(model.named_buffers()) {
            assert_eq!(ours.value(), theirs.value(), "{name}");
        }
        assert_eq!(fresh.named_buffers()[2].1.value().item(), 2.0);
        let eval = |m: &dyn Module| m.forward(Tape::inference().constant(x.clone())).value();
        assert_eq!(eval(&fresh), eval(&model));
    }

    /// The cap on a resumed file holds the largest checkpoint of a model: AMSGrad's three
    /// buffers per parameter and a weight average of every parameter and buffer, with the
    /// metadata allowance left over (checked here without that allowance).
    #[test]
    fn the_size_cap_holds_amsgrad_state_and_a_weight_average() {
        use adamant_autodiff::{Mode, Tape};
        use adamant_layers::{sequential, BatchNorm1d, Dense, Params};
        use adamant_optim::{Adam, AdamConfig, Averaging, WeightAverage};
        use adamant_tensor::rng::seeded;

        let mut model = sequential![Dense::new(30, 40, &mut seeded(0)), BatchNorm1d::new(40)];
        let mut adam = Adam::new(AdamConfig { amsgrad: true, ..Default::default() });
        let tape = Tape::new(Mode::Train, 0);
        let grads = model.forward(tape.constant(Tensor::ones(&[2, 30]))).square().sum().backward();
        drop(tape);
        adam.step(&mut model.params_mut(), &grads);
        let mut average = WeightAverage::new(Averaging::Swa);
        crate::average::update(&mut average, &model);
        let mut c = Checkpoint::capture(&model, &adam, None, 0, 0, &RunIdentity::new(), &History::default());
        c.average = Some(average.state());
        let bytes = c.to_bytes().unwrap().len() as u64;
        let buffers = model.named_buffers();
        let values = model.num_params() + buffers.iter().map(|(_, b)| b.value().numel()).sum::<usize>();
        let cap = Checkpoint::max_bytes_for(values, model.params().len() + buffers.len()) - (64 << 20);
        assert!(bytes <= cap, "{bytes} bytes, cap without the metadata allowance {cap}");
        assert!(bytes * 2 > cap, "the cap is tight enough to mean something: {bytes} of {cap}");
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!(back.average, c.average);
    }

    #[test]
    fn round_trip() {
        let c = checkpoint(2, 2);
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!((back.epoch, back.step, &back.run, back.history), (2, 20, &c.run, c.history));
    }

    /// A checkpoint written mid-epoch keeps the epoch's partial sums exactly, and its step
    /// must be the last epoch's plus the partial steps.
    #[test]
    fn a_partial_epoch_round_trips_exactly() {
        let mut c = checkpoint(2, 2);
        let partial = PartialEpoch {
            steps: 3,
            loss_sum: 0.1 + 0.2,
            examples: 96,
            correct: 50,
            has_logits: true,
            seconds: 1.0 / 3.0,
        };
        c.partial = Some(partial.clone());
        assert!(Checkpoint::from_bytes(&c.to_bytes().unwrap()).is_err(), "step not advanced");
        c.step = 23;
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!((back.step, back.partial), (23, Some(partial)));
        for bad in ["0,0,0,0,0,0", "1,7ff8000000000000,1,0,0,0", "1,0,1,2,0,0", "1,0,1,0,2,0", "x"] {
            assert_eq!(PartialEpoch::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn conflicts_name_each_differing_setting_both_ways() {
        let saved = RunIdentity::new().with("seed", 7).with("batch_size", 64).with("old", "x");
        let configured = RunIdentity::new().with("seed", 0).with("batch_size", 64).with("new", 1);
        let shown: Vec<String> = configured.conflicts(&saved).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            ["seed 7 there, 0 here", "new (not set) there, 1 here", "old x there, (not set) here"]
        );
        assert!(saved.conflicts(&saved.clone()).is_empty());
    }

    /// A NaN anywhere in the state is neither written nor read: a checkpoint on disk is always
    /// one training can continue from.
    #[test]
    fn non_finite_values_are_not_written_nor_read() {
        let dir = std::env::temp_dir().join(format!("adamant-ckpt-nan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.ckpt");
        let mut c = checkpoint(1, 1);
        c.model[0].1 = Tensor::from_vec(vec![1.0, f32::NAN], &[2]);
        let e = c.write(&path).unwrap_err().to_string();
        assert!(e.ends_with("not written, the state holds model/w[1] = NaN"), "{e}");
        assert!(!path.exists());
        // The same bytes made by hand (as a corrupt or foreign file would be) are refused.
        let e = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap_err().to_string();
        assert_eq!(e, "it holds model/w[1] = NaN; training cannot continue from it");
        let mut c = checkpoint(1, 1);
        c.optimizer.scalars.insert("lr".to_string(), f64::INFINITY);
        assert_eq!(c.first_non_finite().unwrap(), "optimizer/lr = inf");
        let mut c = checkpoint(1, 1);
        c.history[0].test_loss = f64::NAN;
        assert_eq!(c.first_non_finite().unwrap(), "the test loss of epoch 1 = NaN");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An epoch number the history does not back is an error: `u64::MAX` made a resumed run
    /// overflow at `epoch + 1`.
    #[test]
    fn epoch_must_match_the_history() {
        let e =
            Checkpoint::from_bytes(&checkpoint(usize::MAX, 1).to_bytes().unwrap()).unwrap_err().to_string();
        assert_eq!(e, "metadata 'epoch' is 18446744073709551615 but 'history' holds 1 epochs");
        assert!(Checkpoint::from_bytes(&checkpoint(1, 0).to_bytes().unwrap()).is_err());
    }

    /// A step count the history does not back is an error: `u64::MAX` would overflow at the
    /// resumed run's first `step + 1`.
    #[test]
    fn step_must_match_the_history() {
        let mut c = checkpoint(2, 2);
        c.step = u64::MAX;
        let e = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap_err().to_string();
        assert_eq!(
            e,
            "metadata 'step' is 18446744073709551615 but the last epoch of 'history' ended at step 20"
        );
    }
}
