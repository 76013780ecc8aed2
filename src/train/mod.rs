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

use crate::checkpoint::{Checkpoint, PartialEpoch, RunIdentity};
use crate::distributed::DataParallel;
pub use crate::history::{EpochMetrics, History};

mod error;
mod resume;
pub use error::TrainError;
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
    /// Share every batch between the processes of a data-parallel run
    /// ([`distributed`](crate::distributed)): each takes a contiguous part of each batch (the
    /// batch size must divide by their number), the gradients are summed across them in rank
    /// order and every process takes the same optimizer step, so the weights stay identical
    /// (checked after each epoch). Dropout masks and noise are keyed by each example's index in
    /// the whole batch, so N processes compute what one computes, up to the order of the
    /// gradient sum. Rank 0 alone writes logs, checkpoints and TensorBoard files; every process
    /// reads the checkpoint it resumes from, with any number of processes. `None`: one process.
    pub distributed: Option<std::sync::Arc<dyn crate::distributed::Communicator>>,
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
            distributed: None,
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
    evaluate_on(model, task, data, batch_size, precision, DataParallel::new(None))
}

/// [`evaluate`] with the batches shared between the processes of `ranks` (each evaluates every
/// `size`-th batch) and the sums gathered.
fn evaluate_on<M: Module + ?Sized>(
    model: &M,
    task: &dyn Task<M>,
    data: &Dataset,
    batch_size: usize,
    precision: Precision,
    ranks: DataParallel<'_>,
) -> (f64, Option<f64>) {
    let mut loss_sum = 0.0f64;
    let mut correct = 0usize;
    let mut has_logits = false;
    let n = data.len();
    let batch_size = batch_size.max(1);
    for (index, start) in (0..n).step_by(batch_size).enumerate() {
        if !ranks.evaluates(index) {
            continue;
        }
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
    let mut sums = [loss_sum, correct as f64, f64::from(u8::from(has_logits))];
    if ranks.size() > 1 {
        ranks.sum(&mut sums);
    }
    let denom = n.max(1) as f64;
    (sums[0] / denom, (sums[2] > 0.0).then(|| sums[1] / denom))
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
    let ranks = DataParallel::new(config.distributed.as_deref());
    if !config.batch_size.is_multiple_of(ranks.size()) {
        return Err(TrainError::Distributed(format!(
            "a batch of {} cannot be shared evenly by {} processes; use a batch size that divides by {}",
            config.batch_size,
            ranks.size(),
            ranks.size()
        )));
    }
    let mut average = config.average.map(WeightAverage::new);
    let mut history = History::default();
    let mut step: u64 = 0;
    let mut first_epoch = 1;
    let out_file = |suffix: &str| config.out_dir.as_ref().map(|d| d.join(format!("{}{suffix}", config.name)));
    let (ckpt_path, epochs_path, iter_log_path) =
        (out_file(".ckpt"), out_file("_epochs.csv"), out_file("_iterations.csv"));
    // In a data-parallel run every process reads the checkpoint it resumes from; rank 0 alone
    // writes the run's files.
    let writes = ranks.writes();
    if let (Some(dir), true) = (&config.out_dir, writes) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Held until `fit` returns; taken before anything in `out_dir` is touched, so a second
    // run on the same files cannot clean up (or overwrite) the first one's.
    let _lock = match out_file(".lock").filter(|_| writes) {
        Some(path) => RunLock::acquire(&path)?,
        None => None,
    };
    for path in [&ckpt_path, &epochs_path, &iter_log_path].into_iter().flatten().filter(|_| writes) {
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
    let mut iter_log = match iter_log_path.as_ref().filter(|_| writes) {
        Some(p) => Some(open_iteration_log(p, step)?),
        None => None,
    };
    #[cfg(feature = "tensorboard")]
    let mut tensorboard = match config.tensorboard.as_ref().filter(|_| writes) {
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
        let bar = Progress::new(config.progress && writes, config, epoch, steps_this_epoch, already);
        let started = Instant::now();
        let seconds_before = partial.as_ref().map_or(0.0, |p| p.seconds);
        let (mut loss_sum, mut seen, mut correct, mut has_logits) = partial
            .map_or((0.0f64, 0usize, 0usize, false), |p| (p.loss_sum, p.examples, p.correct, p.has_logits));
        // The epoch's micro-batches from the first step not yet taken, `k` per step.
        let mut micro_batches = batches.take(steps_this_epoch * k).skip(already * k);
        // `done`: the epoch's steps taken before this one.
        for done in already..steps_this_epoch {
            if ranks.any(config.interrupted()) {
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
                        if writes {
                            checkpoint.write(path)?;
                        }
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
            // Shared between processes, each takes its part of every micro-batch; their loss
            // sums, correct counts and sizes are added across the processes after the step.
            let shared = ranks.size() > 1;
            let (mut shard_correct, mut shard_seen) = (0usize, 0usize);
            for (j, batch) in group.into_iter().enumerate() {
                let (mut batch, first) = ranks.shard(batch);
                if batch.labels.is_empty() {
                    continue; // a short last batch can leave a process nothing
                }
                if let Some(augment) = &config.augment {
                    augment.apply_batch(&mut batch, config.seed, epoch as u64);
                }
                let seed =
                    if j == 0 { step_seed } else { rng::stream_seed(step_seed, Purpose::Step, j as u64) };
                let tape = Tape::new(Mode::Train, seed);
                tape.set_precision(config.precision);
                tape.set_example_offset(first);
                let out = task.forward(model, tape.constant(batch.images), &batch.labels);
                let loss = out.loss.item();
                // Shared, every process learns of a bad loss from the sums below, together.
                if !loss.is_finite() && !shared {
                    bar.abandon();
                    let what = format!("loss is {loss}");
                    return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
                }
                if let Some(logits) = out.logits {
                    has_logits = true;
                    let right = correct_count(&logits.value(), &batch.labels);
                    *(if shared { &mut shard_correct } else { &mut correct }) += right;
                }
                let b = batch.labels.len();
                // The mean over the step's examples: each micro-batch's (or share's) mean loss
                // weighted by its share, so the summed gradient is the whole batch's. One
                // micro-batch alone is left as it is (the same bits as without accumulation).
                let scaled = if k == 1 && !shared {
                    out.loss
                } else {
                    out.loss.mul_scalar(b as f32 / step_examples as f32)
                };
                let micro_grads = scaled.backward();
                drop(tape);
                match grads.as_mut() {
                    None => grads = Some(micro_grads),
                    Some(total) => total.add(micro_grads),
                }
                step_loss_sum += loss as f64 * b as f64;
                if shared {
                    shard_seen += b;
                } else {
                    loss_sum += loss as f64 * b as f64;
                    seen += b;
                }
            }
            if shared {
                let mut sums = [step_loss_sum, shard_correct as f64, shard_seen as f64];
                ranks.sum(&mut sums);
                if !sums[0].is_finite() {
                    bar.abandon();
                    let what = format!("loss is {}", sums[0] / step_examples.max(1) as f64);
                    return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
                }
                step_loss_sum = sums[0];
                loss_sum += sums[0];
                correct += sums[1] as usize;
                seen += sums[2] as usize;
            }
            let grads = ranks
                .sum_gradients(&model.params(), grads)
                .expect("every step takes at least one micro-batch");
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
            evaluate_on(&*model, task, test, config.eval_batch_size, config.precision, ranks);
        // The last step's update is checked by no training loss: a NaN weight it made shows
        // in the evaluation (and in the state checked before the checkpoint below).
        if !test_loss.is_finite() {
            let what = format!("test loss is {test_loss} after the epoch");
            return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
        }
        let (averaged_test_loss, averaged_test_accuracy) = match &average {
            Some(average) => {
                let (loss, accuracy) = crate::average::with_averaged(model, average, |m| {
                    evaluate_on(m, task, test, config.eval_batch_size, config.precision, ranks)
                });
                if !loss.is_finite() {
                    let what = format!("averaged test loss is {loss} after the epoch");
                    return Err(TrainError::NonFinite { step, epoch, what, checkpoint: last_checkpoint });
                }
                (Some(loss), accuracy)
            }
            None => (None, None),
        };
        ranks.check_same_weights(&*model, epoch)?;
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
            if writes {
                write_atomic(epochs_path, history.epochs_csv().as_bytes()).map_err(io_err(epochs_path))?;
            }
            if let (Some(log), Some(path)) = (iter_log.as_mut(), &iter_log_path) {
                log.flush().map_err(io_err(path))?;
            }
            if writes {
                checkpoint.write(path)?;
            }
            last_checkpoint = Some(path.clone());
        }
        // Interrupted during the evaluation or the checkpoint: the epoch's checkpoint is the
        // state to continue from.
        if ranks.any(config.interrupted()) && epoch < config.epochs {
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
    fn new(show: bool, config: &FitConfig, epoch: usize, steps: usize, done: usize) -> Progress {
        if !show {
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
    fn new(_show: bool, _config: &FitConfig, _epoch: usize, _steps: usize, _done: usize) -> Progress {
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
