//! The experiment a 2026 Adam paper would run (issue 22): a character-level GPT trained with
//! the AdamW recipe, exactly as `shared/bench/torch_char_gpt.py` defines model, data, recipe
//! and metric, behind `cargo run --release --example char_gpt`.
//!
//! * [`Recipe`]: every setting, defaults = the reference (4 blocks, 4 heads, width 128,
//!   context 64; batch 12, 2,000 steps of AdamW with lr 1e-3, betas (0.9, 0.99), weight
//!   decay 0.1 on tensors of two or more axes, 100 warmup steps then a cosine to 1e-4, the
//!   global gradient norm clipped at 1, an EMA of the weights with decay 0.99).
//! * [`Trainer`]: the model, optimizer, schedule and average, and one step of the recipe
//!   (`bench`'s `char_gpt` step builds its own from the same [`Recipe`]).
//! * [`val_loss`]: the reference's metric, the mean cross-entropy over the consecutive
//!   windows of the validation split.
//! * [`run`]: a whole run with validation every `eval_every` steps, checkpoints, resume,
//!   Ctrl-C, TensorBoard event files ([`TrainLog`]), samples and the final JSON line.
//! * [`compare`]: the recipe taken apart (`--compare`).
//!
//! The training loop here counts steps, not epochs: [`adamant::train::fit`] walks a labelled
//! dataset epoch by epoch, and a language model draws random windows from one long text. The
//! two share everything else: the checkpoint format (an "epoch" of the history is one
//! validation interval), [`adamant::train::resume`] and [`adamant::train::RunLock`].

pub mod args;
pub mod compare;
mod recipe;
pub mod torch_log;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use adamant::autodiff::Tape;
use adamant::average::with_averaged;
use adamant::checkpoint::{Checkpoint, PartialEpoch};
use adamant::data::text::{eval_windows, CharCorpus};
use adamant::distributed::{mpi_world, Communicator, DataParallel};
use adamant::layers::nets::Gpt;
use adamant::optim::WeightAverage;
use adamant::tensor::io::write_atomic;
use adamant::tensor::kernels::parallel::run_in_pool;
use adamant::tensor::rng::{self, Purpose};
use adamant::tensor::sample::{generate, Generation};
use adamant::tensor::{Ids, Precision};
use adamant::tensorboard::TensorBoard;
use adamant::train::{resume, EpochMetrics, History, RunLock, TrainError};

use crate::cli::CliError;
use adamant::tensorboard::TrainLog;

pub use args::{parse_args, Args, Command};
pub use recipe::{
    find_corpus, Recipe, Trainer, CORPUS_DIR, CORPUS_FILE, DEFAULT_LR, DEFAULT_WEIGHT_DECAY, MAX_DEPTH,
    MAX_RUN_BYTES, MAX_STEPS, MAX_WIDTH,
};

/// Windows per forward pass of [`val_loss`] (the reference's 256).
pub const EVAL_BATCH: usize = 256;
/// The share of the corpus that trains; the rest validates.
pub const TRAIN_FRACTION: f64 = 0.9;

/// The mean cross-entropy of `model` over the consecutive windows of `tokens`: inputs
/// `tokens[T i .. T i + T]`, targets shifted by one, for every `i` with `T i + T + 1 <= len`,
/// so every position but the last few is predicted once (`val_loss` of `torch_char_gpt.py`),
/// in batches of [`EVAL_BATCH`] windows, summed in `f64`.
///
/// # Panics
/// If `tokens` holds fewer than `block + 1` tokens (no window), or an id outside the model's
/// vocabulary.
pub fn val_loss(model: &Gpt, tokens: &[usize], block: usize, precision: Precision) -> f64 {
    let (inputs, targets) = eval_windows(tokens, block);
    let n = inputs.shape()[0];
    assert!(n > 0, "val_loss: {} tokens hold no window of {block} + 1", tokens.len());
    let mut total = 0.0f64;
    for start in (0..n).step_by(EVAL_BATCH) {
        let rows = EVAL_BATCH.min(n - start);
        let window = |ids: &Ids| {
            Ids::from_vec(ids.data()[start * block..(start + rows) * block].to_vec(), &[rows, block])
        };
        let tape = Tape::inference();
        tape.set_precision(precision);
        let mean = model.loss(&tape, &window(&inputs), &window(&targets)).item() as f64;
        total += mean * (rows * block) as f64;
    }
    total / (n * block) as f64
}

/// Checks that `corpus` has room for the recipe's windows: `block + 2` training characters
/// (a random window and its target) and `block + 1` validation characters (one window).
pub fn check_corpus(corpus: &CharCorpus, recipe: &Recipe) -> Result<(), CliError> {
    let need = [
        ("training", corpus.train.len(), recipe.block + 2),
        ("validation", corpus.val.len(), recipe.block + 1),
    ];
    match need.iter().find(|(_, have, need)| have < need) {
        Some((split, have, need)) => Err(CliError::invalid(
            "--data",
            format!(
                "{}: the {split} split has {have} characters; --block {} needs at least {need}",
                crate::cli::quote_path(&corpus.source),
                recipe.block
            ),
        )),
        None => Ok(()),
    }
}

/// Where a run keeps its files, and how it reports.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `--out DIR`: checkpoint `char_gpt.ckpt` and the validation log `char_gpt_evals.csv`;
    /// `None` writes nothing.
    pub out: Option<PathBuf>,
    /// The file name stem of the run's files in `out` (`char_gpt`).
    pub name: String,
    /// `--resume`: continue from the checkpoint in `out`.
    pub resume: bool,
    /// `--resume-override`: continue even if a setting differs.
    pub resume_override: bool,
    /// Print the validation lines (off for the runs of `--compare`, which print one line each).
    pub verbose: bool,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// Set by Ctrl-C: stop after the current step with a checkpoint.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// `--tensorboard DIR`: the run's TensorBoard directory (`DIR/<name>`) and what it logs:
    /// the steps' loss, rate, time and histograms (and the optimizer's internals) every
    /// `every` steps, and each validation's `val/loss` and `val_ema/loss`. A resumed run
    /// continues its event file from the checkpoint's step.
    pub tensorboard: Option<TensorBoard>,
    /// `--distributed`: the processes sharing each batch (data-parallel; `None`: this
    /// process alone). Every process runs [`run`] with the same options; rank 0 alone writes
    /// the files, draws the bar and prints.
    pub distributed: Option<Arc<dyn Communicator>>,
}

/// What a finished run reports.
pub struct RunReport {
    /// One entry per validation: step, mean training loss since the last, validation loss of
    /// the weights (`test_loss`) and of the average (`averaged_test_loss`), rate, seconds.
    pub history: History,
    /// Mean wall time of this process' training steps, in milliseconds (validation excluded);
    /// the whole run's, from its history, when it resumed at its end.
    pub step_ms: f64,
    /// The model at the end of the run.
    pub model: Gpt,
    /// The weight average at the end of the run, if one was kept.
    pub average: Option<WeightAverage>,
}

impl RunReport {
    /// The final validation loss of the weights.
    pub fn val_loss(&self) -> f64 {
        self.history.last().map_or(f64::NAN, |e| e.test_loss)
    }

    /// The final validation loss of the weight average, if one was kept.
    pub fn val_loss_averaged(&self) -> Option<f64> {
        self.history.last().and_then(|e| e.averaged_test_loss)
    }
}

/// Trains `trainer` (made by [`Trainer::new`] over `corpus`' training split, which
/// [`check_corpus`] has passed) on `corpus`: validation (weights and average) every `eval_every` steps
/// and at the end, a checkpoint after each validation, resume, and Ctrl-C (a checkpoint of the
/// step reached, then [`TrainError::Interrupted`]), and TensorBoard's event file if
/// [`RunOptions::tensorboard`] asks for one. A non-finite loss stops the run with
/// [`TrainError::NonFinite`] naming the last good checkpoint.
///
/// With [`RunOptions::distributed`], each step's batch is shared by the processes
/// ([`Trainer::step`]); every process validates the whole split and computes the checkpoints
/// (the same numbers everywhere), checks after each validation that its weights are
/// everyone's, and stops at the same step on a Ctrl-C any of them received; rank 0 alone
/// writes and prints. The batch size must divide by the number of processes.
pub fn run(mut trainer: Trainer, corpus: &CharCorpus, options: &RunOptions) -> Result<RunReport, TrainError> {
    let recipe = &trainer.recipe().clone();
    let ranks = DataParallel::new(options.distributed.as_deref());
    if !recipe.batch_size.is_multiple_of(ranks.size()) {
        return Err(TrainError::Distributed(format!(
            "a batch of {} windows cannot be shared evenly by {} processes; use a --batch-size that divides by {}",
            recipe.batch_size,
            ranks.size(),
            ranks.size()
        )));
    }
    let writes = ranks.writes();
    let run_id = recipe.identity(corpus, &trainer.optimizer_settings);
    let file = |suffix: &str| options.out.as_ref().map(|d| d.join(format!("{}{suffix}", options.name)));
    let (ckpt_path, log_path) = (file(".ckpt"), file("_evals.csv").filter(|_| writes));
    if let (Some(dir), true) = (&options.out, writes) {
        fs::create_dir_all(dir).map_err(|source| TrainError::Io { path: dir.clone(), source })?;
    }
    let _lock = match file(".lock").filter(|_| writes) {
        Some(path) => RunLock::acquire(&path)?,
        None => None,
    };

    let mut history = History::default();
    let mut partial: Option<PartialEpoch> = None;
    let mut last_checkpoint = None;
    if let (true, Some(path)) = (options.resume, &ckpt_path) {
        let saved = resume(
            path,
            &mut trainer.model,
            &mut *trainer.optimizer,
            Some(&mut trainer.scheduler),
            trainer.average.as_mut(),
            &run_id,
            options.resume_override,
        )?;
        if let Some(ckpt) = saved {
            trainer.step = ckpt.step;
            history.epochs = ckpt.history;
            partial = ckpt.partial;
            last_checkpoint = Some(path.clone());
            if options.verbose && writes {
                println!("resumed from {} at step {}", path.display(), ckpt.step);
            }
        }
    }
    // After the lock: a new run's logger removes the event files of the run it replaces.
    let resumed_at = last_checkpoint.is_some().then_some(trainer.step);
    let mut tensorboard = options
        .tensorboard
        .as_ref()
        .filter(|_| writes)
        .map(|tb| TrainLog::open(tb, resumed_at))
        .transpose()?;

    let checkpoint = |trainer: &Trainer,
                      history: &History,
                      partial: Option<PartialEpoch>|
     -> Result<Option<PathBuf>, TrainError> {
        let Some(path) = &ckpt_path else { return Ok(None) };
        let mut ckpt = Checkpoint::capture(
            &trainer.model,
            &*trainer.optimizer,
            Some(&trainer.scheduler),
            history.epochs.len(),
            trainer.step,
            &run_id,
            history,
        );
        ckpt.partial = partial;
        ckpt.average = trainer.average.as_ref().map(|a| a.state());
        if writes {
            ckpt.write(path)?;
        }
        Ok(Some(path.clone()))
    };

    let steps = recipe.steps as u64;
    let (mut loss_sum, mut seconds, mut interval_steps) =
        partial.as_ref().map_or((0.0, 0.0, 0), |p| (p.loss_sum, p.seconds, p.steps));
    let (mut process_seconds, mut process_steps) = (0.0f64, 0u64);
    let bar = progress_bar(options, steps, trainer.step, writes);
    while trainer.step < steps {
        // A Ctrl-C reaches the processes at different moments: they stop at the same step.
        if ranks.any(options.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))) {
            bar.abandon();
            let partial = (interval_steps > 0).then(|| PartialEpoch {
                steps: interval_steps,
                loss_sum,
                examples: interval_steps * recipe.batch_size * recipe.accumulate,
                correct: 0,
                has_logits: false,
                seconds,
            });
            let saved = if trainer.step == 0 { None } else { checkpoint(&trainer, &history, partial)? };
            return Err(TrainError::Interrupted {
                step: trainer.step,
                epoch: history.epochs.len() + 1,
                checkpoint: saved.or(last_checkpoint),
            });
        }
        let logging = |log: &Option<TrainLog>| log.as_ref().map_or(0.0, TrainLog::seconds_logging);
        let (started, logged_before) = (Instant::now(), logging(&tensorboard));
        // On a rayon worker, the step's ~300 parallel kernels split by work-stealing instead
        // of waking the pool twice each (BENCHMARKS.md: 62 against 76 ms at 2 threads).
        let loss =
            run_in_pool(|| trainer.step(ranks, tensorboard.as_mut())).inspect_err(|_| bar.abandon())?;
        // The step's time without its logging: the same step_ms and seconds as without it.
        let elapsed = started.elapsed().as_secs_f64() - (logging(&tensorboard) - logged_before);
        bar.inc(1);
        // The whole batch's loss, the same on every process: they stop together.
        if !loss.is_finite() {
            bar.abandon();
            return Err(TrainError::NonFinite {
                step: trainer.step,
                epoch: history.epochs.len() + 1,
                what: format!("loss is {loss}"),
                checkpoint: last_checkpoint,
            });
        }
        (seconds, process_seconds, process_steps) =
            (seconds + elapsed, process_seconds + elapsed, process_steps + 1);
        loss_sum += loss as f64;
        interval_steps += 1;
        if trainer.step.is_multiple_of(recipe.eval_every as u64) || trainer.step == steps {
            let val = val_loss(&trainer.model, &corpus.val, recipe.block, recipe.precision);
            let averaged = trainer.average.as_ref().map(|a| {
                with_averaged(&mut trainer.model, a, |m| {
                    val_loss(m, &corpus.val, recipe.block, recipe.precision)
                })
            });
            // Before anything depends on the weights being everyone's (the checks below stop
            // every process alike only if they validated the same weights).
            ranks
                .check_same_weights(&trainer.model, history.epochs.len() + 1)
                .inspect_err(|_| bar.abandon())?;
            let metrics = EpochMetrics {
                epoch: history.epochs.len() + 1,
                step: trainer.step,
                train_loss: loss_sum / interval_steps as f64,
                train_accuracy: None,
                test_loss: val,
                test_accuracy: None,
                lr: trainer.optimizer.lr(),
                averaged_test_loss: averaged,
                averaged_test_accuracy: None,
                seconds,
            };
            if !val.is_finite() || averaged.is_some_and(|a| !a.is_finite()) {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    step: trainer.step,
                    epoch: metrics.epoch,
                    what: format!("validation loss is {val}"),
                    checkpoint: last_checkpoint,
                });
            }
            if options.verbose && writes {
                bar.suspend(|| println!("{}", eval_line(&metrics, recipe.steps)));
            }
            // Before the checkpoint of this step: a run resumed from it keeps these events.
            if let Some(log) = tensorboard.as_mut() {
                let ema = averaged.map(|a| ("val_ema/loss", a));
                let values: Vec<_> = [("val/loss", val)].into_iter().chain(ema).collect();
                log.scalars(trainer.step, &values).inspect_err(|_| bar.abandon())?;
            }
            history.epochs.push(metrics);
            (loss_sum, seconds, interval_steps) = (0.0, 0.0, 0);
            if let Some(saved) = checkpoint(&trainer, &history, None)? {
                last_checkpoint = Some(saved);
            }
            if let Some(path) = &log_path {
                write_atomic(path, evals_csv(&history).as_bytes())
                    .map_err(|source| TrainError::Io { path: path.clone(), source })?;
            }
        }
    }
    bar.finish_and_clear();
    // A run resumed at its end took no step here: its time is the history's.
    let step_ms = if process_steps == 0 {
        1e3 * history.seconds() / history.last().map_or(f64::NAN, |e| e.step as f64)
    } else {
        1e3 * process_seconds / process_steps as f64
    };
    Ok(RunReport { history, step_ms, model: trainer.model, average: trainer.average })
}

/// `step   250/2000  train 2.5113  val 2.4921  ema 2.4870  lr 9.51e-4  (11.8 s)`.
fn eval_line(m: &EpochMetrics, steps: usize) -> String {
    let width = steps.to_string().len();
    let ema = m.averaged_test_loss.map_or(String::new(), |a| format!("  ema {a:.4}"));
    format!(
        "step {:>width$}/{steps}  train {:.4}  val {:.4}{ema}  lr {:.2e}  ({:.1} s)",
        m.step, m.train_loss, m.test_loss, m.lr, m.seconds
    )
}

/// The validation log: `step,train_loss,val_loss,val_loss_ema,lr,seconds`, one row per
/// validation (`val_loss_ema` empty without an average).
pub fn evals_csv(history: &History) -> String {
    let mut out = String::from("step,train_loss,val_loss,val_loss_ema,lr,seconds\n");
    for m in &history.epochs {
        let ema = m.averaged_test_loss.map_or(String::new(), |a| a.to_string());
        out.push_str(&format!("{},{},{},{ema},{},{}\n", m.step, m.train_loss, m.test_loss, m.lr, m.seconds));
    }
    out
}

/// `count` characters sampled from `model` after a newline (nanoGPT's default start; the
/// first character of the vocabulary if it has none), with `temperature` and `top_k`, from
/// the seed's sample stream.
pub fn sample_text(
    model: &Gpt,
    corpus: &CharCorpus,
    count: usize,
    temperature: f32,
    top_k: Option<usize>,
    seed: u64,
) -> String {
    let start = corpus.vocab.id('\n').unwrap_or(0);
    let how = Generation { max_new: count, window: model.config().block, stop: None, temperature, top_k };
    let next_logits = |context: &[usize]| {
        let tape = Tape::inference();
        let ids = Ids::from_vec(context.to_vec(), &[1, context.len()]);
        model.forward_last(&tape, &ids).value().data().to_vec()
    };
    let ids = generate(&[start], how, next_logits, &mut rng::stream(seed, Purpose::Sample, 0));
    corpus.vocab.decode(&ids)
}

/// A progress bar over the run's steps on stderr: hidden unless `options.progress`, this
/// process `writes` (rank 0) and stderr is a terminal.
fn progress_bar(options: &RunOptions, steps: u64, done: u64, writes: bool) -> indicatif::ProgressBar {
    if !options.progress || !writes {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps).with_position(done);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// The whole example: parse, read the corpus, train (or compare), print and sample.
pub fn main() {
    let command = crate::cli::exit_on_error(parse_args(std::env::args_os().skip(1)));
    let args = match command {
        Command::Help => {
            println!("{}", args::usage());
            return;
        }
        Command::Run(args) => args,
    };
    // With --distributed every rank runs this program; rank 0 alone writes and prints.
    let world = args.distributed.then(|| crate::cli::exit_on_error(mpi_world()));
    let rank0 = world.as_ref().is_none_or(|w| w.rank() == 0);
    let path = crate::cli::exit_on_error(find_corpus(args.data.as_deref()));
    let corpus = crate::cli::exit_on_error(
        CharCorpus::read(&path, TRAIN_FRACTION)
            .map_err(|e| crate::cli::CliError::invalid("--data", e.to_string())),
    );
    if !args.compare.is_empty() {
        compare::main(&args, &corpus, &args.compare);
        return;
    }
    let recipe = &args.recipe;
    let config = recipe.gpt_config(corpus.vocab.len());
    let say = |line: String| {
        if rank0 {
            println!("{line}");
        }
    };
    say(format!(
        "char_gpt: {} ({} characters, {} distinct): {} train / {} validation; GPT {} layers, {} heads, width {}, context {}, {} parameters",
        path.display(),
        corpus.train.len() + corpus.val.len(),
        corpus.vocab.len(),
        corpus.train.len(),
        corpus.val.len(),
        config.layers,
        config.heads,
        config.embd,
        config.block,
        config.num_params()
    ));
    say(format!("recipe: {}", describe(recipe)));
    if let Some(world) = &world {
        say(format!(
            "data-parallel over {} processes: {} windows each per minibatch",
            world.size(),
            recipe.batch_size / world.size().max(1)
        ));
    }
    let mut options = RunOptions {
        out: Some(args.out.clone()),
        name: "char_gpt".to_string(),
        resume: args.resume || args.resume_override,
        resume_override: args.resume_override,
        verbose: true,
        progress: !args.no_progress,
        interrupt: Some(crate::cli::interrupt_flag()),
        tensorboard: None,
        distributed: world,
    };
    options.tensorboard = crate::cli::tensorboard_run(
        args.tensorboard.as_deref(),
        &options.name,
        args.log_every,
        args.log_optimizer_state,
    );
    crate::cli::exit_on_error(check_corpus(&corpus, recipe));
    let trainer = crate::cli::exit_on_error(Trainer::new(recipe, corpus.vocab.len(), &corpus.train));
    let mut report = exit_on_run_error(run(trainer, &corpus, &options));
    if !rank0 {
        return;
    }
    let val = report.val_loss();
    let ema = report.val_loss_averaged();
    match ema {
        Some(ema) => println!(
            "final validation loss {val:.4} (EMA weights {ema:.4}), {:.1} ms per step",
            report.step_ms
        ),
        None => println!("final validation loss {val:.4}, {:.1} ms per step", report.step_ms),
    }
    if args.samples > 0 {
        let sample =
            |m: &Gpt| sample_text(m, &corpus, args.samples, args.temperature, args.top_k, recipe.seed);
        let (text, which) = match &report.average {
            Some(average) => (with_averaged(&mut report.model, average, sample), "EMA weights"),
            None => (sample(&report.model), "weights"),
        };
        println!("{} characters sampled from the {which} (temperature {}):", args.samples, args.temperature);
        println!("{text}");
    }
    if let Some(torch) = &args.torch_log {
        let path = args.out.join("char_gpt_vs_torch.svg");
        crate::cli::exit_on_error(torch_log::write_figure(&path, &report.history, torch, recipe.seed));
        println!(
            "PyTorch's run ({}): final validation loss {:.4} (EMA {}); both curves in {}",
            torch.source.display(),
            torch.val_loss(),
            torch.val_loss_ema().map_or("-".to_string(), |e| format!("{e:.4}")),
            path.display()
        );
    }
    if args.json {
        let ema = ema.map_or("null".to_string(), |e| e.to_string());
        println!(
            "{{\"val_loss\": {val}, \"val_loss_ema\": {ema}, \"step_ms\": {}, \"steps\": {}, \"seed\": {}, \"params\": {}, \
             \"precision\": \"{}\"}}",
            report.step_ms,
            recipe.steps,
            recipe.seed,
            config.num_params(),
            recipe.precision
        );
    }
}

/// The report of a finished run, or exit: an interruption with its status and where the
/// state is saved, any other error as the experiments print it (a refused resume names the
/// flags that differ).
pub fn exit_on_run_error(result: Result<RunReport, TrainError>) -> RunReport {
    match result {
        Ok(report) => report,
        Err(e @ TrainError::Interrupted { .. }) => crate::cli::exit_interrupted(&e),
        Err(e) => crate::cli::exit_on_error(Err(crate::experiment::ExperimentError::Train(e))),
    }
}

/// The recipe in one line: `adamw --lr 0.001 ..., warmup 100, cosine to 1e-4, clip 1, ema 0.99`.
pub fn describe(recipe: &Recipe) -> String {
    let mut parts = vec![recipe.optimizer_name().to_string()];
    parts.extend(crate::cli::describe_options(&recipe.optimizer_options()));
    format!(
        "{} (decay on tensors of 2+ axes), batch {}{}, {} steps, warmup {}, cosine to {:e}, clip {}, average {}",
        parts.join(" "),
        recipe.batch_size,
        if recipe.accumulate > 1 { format!(" x {} accumulated", recipe.accumulate) } else { String::new() },
        recipe.steps,
        recipe.warmup,
        recipe.min_lr,
        recipe.clip.map_or("none".to_string(), |c| c.to_string()),
        recipe.average.map_or("none".to_string(), |a| a.to_string()),
    )
}
