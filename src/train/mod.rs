//! The training loop: epochs over minibatches, evaluation, logs, checkpoints and resume.
//!
//! One step is the framework's data path: a fresh seeded [`Tape`], the batch entered as a
//! constant and the parameters read into it, the task's loss, `backward`, the tape dropped
//! (every intermediate buffer with it), the optimizer's in-place update.
//! Everything random is derived from the run's seed through streams separated by purpose
//! ([`rng::stream`]): the shuffle of epoch `e` from `(seed, Shuffle, e)`, the tape of step
//! `s` (its dropout masks and noise) from `(seed, Step, s)`, and the augmentation of example `i`
//! in epoch `e` ([`FitConfig::augment`]) from `(seed, Data, e)` and `i`, so a run resumed from a
//! checkpoint continues exactly as the uninterrupted run would have, and no two purposes ever
//! draw the same numbers.
//!
//! With gradient accumulation ([`FitConfig::accumulate`] `K > 1`) an optimizer step sums the
//! gradients of `K` consecutive minibatches (micro-batches), each loss scaled by its share of
//! the step's examples, so the step is the one a single batch of all of them would take (up to
//! rounding, and batch norm's statistics, which are per micro-batch). Micro-batch `j` of step
//! `s` draws its tape's randomness (dropout) from `(seed, Step, s)` when `j = 0`, as an
//! unaccumulated step does, and from stream `j` of that seed after it, so every micro-batch
//! has masks of its own. With weight averaging ([`FitConfig::average`]) the average is
//! updated after every optimizer step and the test set is evaluated with it after each epoch.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use adamant_autodiff::{Mode, Tape, Var};
use adamant_data::batch::{BatchOptions, Batches};
use adamant_data::{Augment, Dataset};
use adamant_layers::{correct_count, Module};
use adamant_optim::{Averaging, Optimizer, PlateauMode, Scheduler, WeightAverage};
use adamant_tensor::io::{remove_interrupted_writes, write_atomic};
use adamant_tensor::rng::{self, Purpose};
use adamant_tensor::Precision;

use crate::checkpoint::{Checkpoint, CheckpointError, Conflict, PartialEpoch, RunIdentity};
pub use crate::history::{EpochMetrics, History};

mod resume;
pub use resume::{resume, RunLock};

/// What a model computes for a batch: the loss, and the logits if the task is classification.
pub struct StepOutput<'t> {
    /// The scalar loss (mean over the batch).
    pub loss: Var<'t>,
    /// `[B, K]` class scores, when accuracy makes sense.
    pub logits: Option<Var<'t>>,
}

/// How a model turns a batch into a loss (classification, a VAE's bound, ...).
pub trait Task<M: ?Sized> {
    /// The loss (and logits) of `model` on a batch.
    fn forward<'t>(&self, model: &M, images: Var<'t>, labels: &[usize]) -> StepOutput<'t>;
}

/// Softmax cross-entropy on the model's logits, with accuracy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Classification;

impl<M: Module + ?Sized> Task<M> for Classification {
    fn forward<'t>(&self, model: &M, images: Var<'t>, labels: &[usize]) -> StepOutput<'t> {
        let logits = model.forward(images);
        StepOutput { loss: logits.cross_entropy(labels), logits: Some(logits) }
    }
}

/// Settings of [`fit`].
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Name used for log and checkpoint files (`<name>_epochs.csv`, `<name>.ckpt`).
    pub name: String,
    /// Number of epochs to reach (a resumed run continues up to this many).
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Seed of shuffling, dropout and noise.
    pub seed: u64,
    /// Where CSV logs and the checkpoint go; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Continue from `<out_dir>/<name>.ckpt` if it exists. A checkpoint whose
    /// [`RunIdentity`] differs from this run's is refused ([`TrainError::RunMismatch`]) unless
    /// `resume_override` is set.
    pub resume: bool,
    /// Resume even when settings differ from the checkpoint's; this run's values then apply
    /// (its learning rate included) and later checkpoints record them.
    pub resume_override: bool,
    /// Settings that define the run beyond those [`fit`] records itself (seed, batch size,
    /// steps per epoch, data sizes, optimizer, learning rate, schedule, model size, adamant
    /// version): every optimizer hyperparameter, preprocessing, model configuration. Recorded
    /// in checkpoints and compared on resume; an entry here replaces one of `fit`'s of the
    /// same name.
    pub identity: RunIdentity,
    /// Draw a progress bar on stderr (with the cargo feature `progress`; hidden anyway when
    /// stderr is not a terminal).
    pub progress: bool,
    /// Batch size of evaluation passes.
    pub eval_batch_size: usize,
    /// Stop each epoch after this many steps (for quick checks); `None` runs whole epochs.
    pub max_steps_per_epoch: Option<usize>,
    /// Set it (from a Ctrl-C or SIGTERM handler, say) to stop the run after the current step:
    /// [`fit`] writes a checkpoint of that step, mid-epoch if need be, and returns
    /// [`TrainError::Interrupted`]; resuming from it ends bit-identical to a run never
    /// stopped. `fit` installs no handler itself: a library leaves signals to its program.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Augment every training batch (random crop and flip of `[N, C, H, W]` images), drawn
    /// from `(seed, epoch, example)` so a resumed run sees the same images; evaluation
    /// batches are never augmented. Recorded in the run's identity when set, so a resume
    /// with another augmentation (or none) is refused. `None`: the images as they are.
    pub augment: Option<Augment>,
    /// Keep a running average of the weights and buffers ([`Averaging`]: the paper's temporal
    /// average, torch's EMA or SWA), updated after every optimizer step, checkpointed with
    /// the run and evaluated on the test set after each epoch
    /// ([`EpochMetrics::averaged_test_loss`]). Recorded in the run's identity when set.
    ///
    /// # Panics
    /// [`fit`] panics on a rate out of range (check user input with [`Averaging::check`]).
    pub average: Option<Averaging>,
    /// Minibatches per optimizer step (gradient accumulation, default 1): each step sums the
    /// gradients of `accumulate` consecutive minibatches of `batch_size`, as one step on a
    /// batch `accumulate` times larger (the epoch's last step may take fewer). Steps,
    /// schedules, averaging, logs and checkpoints count optimizer steps. Recorded in the run's
    /// identity when above 1.
    ///
    /// # Panics
    /// [`fit`] panics when it is 0.
    pub accumulate: usize,
    /// The precision of the matrix products and convolutions, in training and evaluation
    /// ([`Tape::set_precision`]): [`Precision::F32`] (the default), or [`Precision::Bf16`]
    /// for mixed precision (bf16 operands, f32 sums; the weights, gradients, optimizer state
    /// and every other op stay f32), as `torch.autocast("cpu", dtype=torch.bfloat16)` around
    /// the forward pass. Recorded in the run's identity when not f32.
    pub precision: Precision,
    /// Write the run's TensorBoard event file (cargo feature `tensorboard`): the step's loss,
    /// learning rate and speed, histograms and, if asked, the optimizer's internals every
    /// [`LogOptions::every`](crate::tensorboard::LogOptions::every) steps, and each epoch's
    /// metrics ([`Logger`](crate::tensorboard::Logger) lists the tags). A resumed run
    /// continues its file from the checkpoint's step. Logging changes no result.
    #[cfg(feature = "tensorboard")]
    pub tensorboard: Option<crate::tensorboard::TensorBoard>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            name: "run".to_string(),
            epochs: 1,
            batch_size: 128,
            seed: 0,
            out_dir: None,
            resume: false,
            resume_override: false,
            identity: RunIdentity::new(),
            progress: true,
            eval_batch_size: 1000,
            max_steps_per_epoch: None,
            interrupt: None,
            augment: None,
            average: None,
            accumulate: 1,
            precision: Precision::F32,
            #[cfg(feature = "tensorboard")]
            tensorboard: None,
        }
    }
}

impl FitConfig {
    /// Whether [`FitConfig::interrupt`] is set.
    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Optimizer steps [`fit`] takes per epoch on `examples` training examples: one per
    /// `accumulate` minibatches (the last minibatch may be short, and the last step take
    /// fewer), capped by `max_steps_per_epoch`.
    pub fn steps_per_epoch(&self, examples: usize) -> usize {
        let steps = examples.div_ceil(self.batch_size).div_ceil(self.accumulate.max(1));
        self.max_steps_per_epoch.map_or(steps, |m| m.min(steps))
    }
}

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
    /// [`FitConfig::interrupt`] was set: the run stopped after a whole step.
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
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::NonFinite { .. }
            | TrainError::Interrupted { .. }
            | TrainError::Locked { .. }
            | TrainError::RunMismatch { .. } => None,
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

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Mean loss and accuracy of `model` on `data` in eval mode, without recording a tape, with
/// the matrix products in `precision`.
pub fn evaluate<M: Module + ?Sized>(
    model: &M,
    task: &dyn Task<M>,
    data: &Dataset,
    batch_size: usize,
    precision: Precision,
) -> (f64, Option<f64>) {
    let mut loss_sum = 0.0f64;
    let mut correct = 0usize;
    let mut has_logits = false;
    let n = data.len();
    let batch_size = batch_size.max(1);
    for start in (0..n).step_by(batch_size) {
        let end = (start + batch_size).min(n);
        let tape = Tape::inference();
        tape.set_precision(precision);
        let images = tape.constant(data.images.slice_rows(start, end));
        let labels = &data.labels[start..end];
        let out = task.forward(model, images, labels);
        loss_sum += out.loss.item() as f64 * (end - start) as f64;
        if let Some(logits) = out.logits {
            has_logits = true;
            correct += correct_count(&logits.value(), labels);
        }
    }
    let denom = n.max(1) as f64;
    (loss_sum / denom, has_logits.then(|| correct as f64 / denom))
}

/// The settings `fit` records for a run: its own, then `config.identity`'s (which win).
fn run_identity<M: Module + ?Sized>(
    model: &M,
    optimizer: &dyn Optimizer,
    scheduler: Option<&Scheduler>,
    train: &Dataset,
    test: &Dataset,
    config: &FitConfig,
) -> RunIdentity {
    let params = model.params();
    let mut run = RunIdentity::new()
        .with("seed", config.seed)
        .with("batch_size", config.batch_size)
        .with("steps_per_epoch", config.max_steps_per_epoch.map_or("all".to_string(), |n| n.to_string()))
        .with("train_examples", train.len())
        .with("test_examples", test.len())
        .with("optimizer", optimizer.name())
        // The base rate: the one a scheduler scales, else the optimizer's.
        .with("lr", scheduler.map_or(optimizer.lr(), Scheduler::base_lr))
        .with("schedule", scheduler.map_or("none".to_string(), |s| s.schedule().to_string()))
        .with("model", format!("{} tensors, {} parameters", params.len(), model.num_params()))
        .with("adamant_version", env!("CARGO_PKG_VERSION"));
    // Only when set: checkpoints of runs without augmentation keep the identity they had.
    if let Some(augment) = config.augment {
        run.set("augment", augment);
    }
    if let Some(average) = config.average {
        run.set("average", average);
    }
    if config.accumulate > 1 {
        run.set("accumulate", config.accumulate);
    }
    if config.precision != Precision::F32 {
        run.set("precision", config.precision);
    }
    if let Some((plateau, _)) = scheduler.and_then(Scheduler::plateau) {
        run.set("plateau", plateau);
    }
    for (setting, value) in config.identity.iter() {
        run.set(setting, value);
    }
    run
}

/// Trains `model` on `train` for `config.epochs` epochs, evaluating on `test` after each,
/// logging to CSV and checkpointing into `config.out_dir`. With a `scheduler`, its learning
/// rate is set before every optimizer step.
///
/// # Panics
/// If `config.augment` is set and the training images are not `[N, C, H, W]` (a programmer
/// error: the augmentation is for images), if `config.accumulate` is 0 or if
/// `config.average` has a rate out of range.
pub fn fit<M: Module + ?Sized>(
    model: &mut M,
    task: &dyn Task<M>,
    optimizer: &mut dyn Optimizer,
    mut scheduler: Option<&mut Scheduler>,
    train: &Dataset,
    test: &Dataset,
    config: &FitConfig,
) -> Result<History, TrainError> {
    if config.augment.is_some() {
        assert!(
            train.images.ndim() == 4,
            "fit: FitConfig::augment crops and flips images [N, C, H, W], but the training set's are {:?}",
            train.images.shape()
        );
    }
    assert!(config.accumulate >= 1, "fit: FitConfig::accumulate must be at least 1 (minibatches per step)");
    let mut average = config.average.map(WeightAverage::new);
    let mut history = History::default();
    let mut step: u64 = 0;
    let mut first_epoch = 1;
    let out_file = |suffix: &str| config.out_dir.as_ref().map(|d| d.join(format!("{}{suffix}", config.name)));
    let (ckpt_path, epochs_path, iter_log_path) =
        (out_file(".ckpt"), out_file("_epochs.csv"), out_file("_iterations.csv"));
    if let Some(dir) = &config.out_dir {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Held until `fit` returns; taken before anything in `out_dir` is touched, so a second
    // run on the same files cannot clean up (or overwrite) the first one's.
    let _lock = match out_file(".lock") {
        Some(path) => RunLock::acquire(&path)?,
        None => None,
    };
    for path in [&ckpt_path, &epochs_path, &iter_log_path].into_iter().flatten() {
        remove_interrupted_writes(path).map_err(io_err(path))?;
    }

    let mut run = run_identity(&*model, &*optimizer, scheduler.as_deref(), train, test, config);
    // Only a checkpoint this run resumed from or wrote is named as the last good state: a file
    // left in `out_dir` by an earlier run is not this run's.
    let mut last_checkpoint = None;
    let mut resumed_partial = None;
    if let (true, Some(path)) = (config.resume, &ckpt_path) {
        let saved = resume(
            path,
            model,
            optimizer,
            scheduler.as_deref_mut(),
            average.as_mut(),
            &run,
            config.resume_override,
        )?;
        if let Some(ckpt) = saved {
            step = ckpt.step;
            first_epoch = ckpt.epoch + 1;
            history.epochs = ckpt.history;
            resumed_partial = ckpt.partial;
            last_checkpoint = Some(path.clone());
        }
    }
    // The base rate after a resume is the one this run continues with.
    run.set("lr", scheduler.as_deref().map_or(optimizer.lr(), Scheduler::base_lr));
    let mut iter_log = match &iter_log_path {
        Some(p) => Some(open_iteration_log(p, step)?),
        None => None,
    };
    #[cfg(feature = "tensorboard")]
    let mut tensorboard = match &config.tensorboard {
        Some(tb) => {
            let resumed_at = last_checkpoint.is_some().then_some(step);
            Some(crate::tensorboard::TrainLog::open(tb, resumed_at)?)
        }
        None => None,
    };

    for epoch in first_epoch..=config.epochs {
        let batches = Batches::new(
            train,
            BatchOptions {
                batch_size: config.batch_size,
                shuffle: true,
                drop_last: false,
                seed: config.seed,
                epoch: epoch as u64,
            },
        );
        let steps_this_epoch = config.steps_per_epoch(train.len());
        let k = config.accumulate;
        debug_assert!(steps_this_epoch <= batches.len().div_ceil(k));
        // A checkpoint written mid-epoch: its steps are done, and its sums carry on.
        let partial = resumed_partial.take();
        let already = partial.as_ref().map_or(0, |p| p.steps.min(steps_this_epoch));
        let bar = Progress::new(config, epoch, steps_this_epoch, already);
        let started = Instant::now();
        let seconds_before = partial.as_ref().map_or(0.0, |p| p.seconds);
        let (mut loss_sum, mut seen, mut correct, mut has_logits) = partial
            .map_or((0.0f64, 0usize, 0usize, false), |p| (p.loss_sum, p.examples, p.correct, p.has_logits));
        // The epoch's micro-batches from the first step not yet taken, `k` per step.
        let mut micro_batches = batches.take(steps_this_epoch * k).skip(already * k);
        // `done`: the epoch's steps taken before this one.
        for done in already..steps_this_epoch {
            if config.interrupted() {
                bar.abandon();
                let partial = PartialEpoch {
                    steps: done,
                    loss_sum,
                    examples: seen,
                    correct,
                    has_logits,
                    seconds: seconds_before + started.elapsed().as_secs_f64(),
                };
                if let (Some(log), Some(path)) = (iter_log.as_mut(), &iter_log_path) {
                    log.flush().map_err(io_err(path))?;
                }
                let checkpoint = match (&ckpt_path, done) {
                    // At an epoch's start the last epoch's checkpoint is this step's state.
                    (_, 0) | (None, _) => last_checkpoint,
                    (Some(path), _) => {
                        let mut checkpoint = Checkpoint::capture(
                            &*model,
                            optimizer,
                            scheduler.as_deref(),
                            epoch - 1,
                            step,
                            &run,
                            &history,
                        );
                        checkpoint.partial = Some(partial);
                        checkpoint.average = average.as_ref().map(WeightAverage::state);
                        if let Some(what) = checkpoint.first_non_finite() {
                            let what = format!("{what} when interrupted");
                            return Err(TrainError::NonFinite {
                                step,
                                epoch,
                                what,
                                checkpoint: last_checkpoint,
                            });
                        }
                        checkpoint.write(path)?;
                        Some(path.clone())
                    }
                };
                return Err(TrainError::Interrupted { step, epoch, checkpoint });
            }
            #[cfg(feature = "tensorboard")]
            let step_started = Instant::now();
            let group: Vec<_> = micro_batches.by_ref().take(k).collect();
            step += 1;
            if let Some(s) = scheduler.as_deref_mut() {
                s.step(optimizer);
            }
            let step_examples: usize = group.iter().map(|b| b.labels.len()).sum();
            let step_seed = rng::stream_seed(config.seed, Purpose::Step, step);
            let (mut grads, mut step_loss_sum) = (None, 0.0f64);
            for (j, mut batch) in group.into_iter().enumerate() {
                if let Some(augment) = &config.augment {
                    augment.apply_batch(&mut batch, config.seed, epoch as u64);
                }
                let seed =
                    if j == 0 { step_seed } else { rng::stream_seed(step_seed, Purpose::Step, j as u64) };
                let tape = Tape::new(Mode::Train, seed);
                tape.set_precision(config.precision);
                let out = task.forward(model, tape.constant(batch.images), &batch.labels);
                let loss = out.loss.item();
                if !loss.is_finite() {
                    bar.abandon();
                    let what = format!("loss is {loss}");
                    return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
                }
                if let Some(logits) = out.logits {
                    has_logits = true;
                    correct += correct_count(&logits.value(), &batch.labels);
                }
                let b = batch.labels.len();
                // The mean over the step's examples: each micro-batch's mean loss weighted by
                // its share, so the summed gradient is the big batch's. One micro-batch is
                // left as it is (the same bits as without accumulation).
                let scaled =
                    if k == 1 { out.loss } else { out.loss.mul_scalar(b as f32 / step_examples as f32) };
                let micro_grads = scaled.backward();
                drop(tape);
                match grads.as_mut() {
                    None => grads = Some(micro_grads),
                    Some(total) => total.add(micro_grads),
                }
                loss_sum += loss as f64 * b as f64;
                step_loss_sum += loss as f64 * b as f64;
                seen += b;
            }
            let grads = grads.expect("every step takes at least one micro-batch");
            #[cfg(feature = "tensorboard")]
            if let Some(tb) = tensorboard.as_mut() {
                tb.before_update(step, &model.params());
            }
            optimizer.step(&mut model.params_mut(), &grads);
            if let Some(average) = average.as_mut() {
                crate::average::update(average, &*model);
            }
            // The step's mean loss (with one micro-batch, its loss exactly: b * x / b == x).
            let loss = (step_loss_sum / step_examples.max(1) as f64) as f32;
            #[cfg(feature = "tensorboard")]
            if let Some(tb) = tensorboard.as_mut() {
                let seconds = step_started.elapsed().as_secs_f64();
                tb.after_update(step, loss, seconds, step_examples, &model.params(), &grads, &*optimizer)?;
            }
            history.iterations.push((step, loss));
            if let (Some(log), Some(path)) = (iter_log.as_mut(), &iter_log_path) {
                writeln!(log, "{step},{epoch},{loss},{}", optimizer.lr()).map_err(io_err(path))?;
            }
            bar.step(loss, seen as f64 / (seconds_before + started.elapsed().as_secs_f64()).max(1e-9));
        }
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        bar.finish();
        let (test_loss, test_accuracy) =
            evaluate(&*model, task, test, config.eval_batch_size, config.precision);
        // The last step's update is checked by no training loss: a NaN weight it made shows
        // in the evaluation (and in the state checked before the checkpoint below).
        if !test_loss.is_finite() {
            let what = format!("test loss is {test_loss} after the epoch");
            return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
        }
        let (averaged_test_loss, averaged_test_accuracy) = match &average {
            Some(average) => {
                let (loss, accuracy) = crate::average::with_averaged(model, average, |m| {
                    evaluate(m, task, test, config.eval_batch_size, config.precision)
                });
                if !loss.is_finite() {
                    let what = format!("averaged test loss is {loss} after the epoch");
                    return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
                }
                (Some(loss), accuracy)
            }
            None => (None, None),
        };
        let metrics = EpochMetrics {
            epoch,
            step,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: has_logits.then(|| correct as f64 / seen.max(1) as f64),
            test_loss,
            test_accuracy,
            lr: optimizer.lr(),
            seconds,
            averaged_test_loss,
            averaged_test_accuracy,
        };
        #[cfg(feature = "tensorboard")]
        if let Some(tb) = tensorboard.as_mut() {
            tb.log_epoch(&metrics)?;
        }
        history.epochs.push(metrics);
        // A plateau (ReduceLROnPlateau) watches the raw model's test metric: the loss in
        // `min` mode, the accuracy in `max` mode (the negated loss for a task without one).
        // Observed before the checkpoint, so the checkpoint holds the plateau's new state.
        if let Some(s) = scheduler.as_deref_mut() {
            let metric = match s.plateau().map(|(p, _)| p.mode) {
                Some(PlateauMode::Max) => test_accuracy.unwrap_or(-test_loss),
                _ => test_loss,
            };
            s.observe(metric);
        }

        if let (Some(epochs_path), Some(path)) = (&epochs_path, &ckpt_path) {
            // Checked before anything of the epoch is written, so the logs never get ahead of
            // the last good checkpoint.
            let mut checkpoint =
                Checkpoint::capture(&*model, optimizer, scheduler.as_deref(), epoch, step, &run, &history);
            checkpoint.average = average.as_ref().map(WeightAverage::state);
            if let Some(what) = checkpoint.first_non_finite() {
                let what = format!("{what} after the epoch");
                return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
            }
            write_atomic(epochs_path, history.epochs_csv().as_bytes()).map_err(io_err(epochs_path))?;
            if let (Some(log), Some(path)) = (iter_log.as_mut(), &iter_log_path) {
                log.flush().map_err(io_err(path))?;
            }
            checkpoint.write(path)?;
            last_checkpoint = Some(path.clone());
        }
        // Interrupted during the evaluation or the checkpoint: the epoch's checkpoint is the
        // state to continue from.
        if config.interrupted() && epoch < config.epochs {
            return Err(TrainError::Interrupted { step, epoch, checkpoint: last_checkpoint });
        }
    }
    Ok(history)
}

/// Opens the per-iteration CSV for appending, first dropping rows after `step` (written after
/// the checkpoint a resumed run starts from) so the log matches the run exactly.
fn open_iteration_log(path: &Path, step: u64) -> Result<io::BufWriter<fs::File>, TrainError> {
    const HEADER: &str = "step,epoch,loss,lr";
    let mut kept = format!("{HEADER}\n");
    if step > 0 {
        if let Ok(old) = fs::read_to_string(path) {
            // A process killed mid-write can leave a last line without its newline ("1" of
            // "17,2,..."): only whole lines count.
            for line in old.split_inclusive('\n').skip(1).filter(|l| l.ends_with('\n')) {
                match line.split(',').next().and_then(|s| s.parse::<u64>().ok()) {
                    Some(s) if s <= step => kept.push_str(line),
                    _ => {}
                }
            }
        }
    }
    write_atomic(path, kept.as_bytes()).map_err(io_err(path))?;
    let file = fs::OpenOptions::new().append(true).open(path).map_err(io_err(path))?;
    Ok(io::BufWriter::new(file))
}

/// The progress bar of one epoch on stderr (cargo feature `progress`; hidden anyway when
/// stderr is not a terminal). Without the feature every method does nothing.
struct Progress {
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
}

impl Progress {
    #[cfg(feature = "progress")]
    fn new(config: &FitConfig, epoch: usize, steps: usize, done: usize) -> Progress {
        if !config.progress {
            return Progress { bar: indicatif::ProgressBar::hidden() };
        }
        let bar = indicatif::ProgressBar::new(steps as u64);
        bar.set_position(done as u64);
        let style = indicatif::ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{}", config.epochs));
        Progress { bar }
    }

    #[cfg(not(feature = "progress"))]
    fn new(_config: &FitConfig, _epoch: usize, _steps: usize, _done: usize) -> Progress {
        Progress {}
    }

    /// One step done, with its loss and the epoch's examples per second so far.
    fn step(&self, _loss: f32, _examples_per_second: f64) {
        #[cfg(feature = "progress")]
        if !self.bar.is_hidden() {
            self.bar.inc(1);
            self.bar.set_message(format!("loss {_loss:.4}  {_examples_per_second:.0} ex/s"));
        }
    }

    /// Leaves the bar where it stopped (training failed).
    fn abandon(&self) {
        #[cfg(feature = "progress")]
        self.bar.abandon();
    }

    /// Removes the finished bar.
    fn finish(&self) {
        #[cfg(feature = "progress")]
        self.bar.finish();
    }
}
