//! The paper's experiments as one runner with one command line.
//!
//! Every experiment example (`mnist_logreg`, `mnist_mlp`, `cifar10_cnn`) is an
//! [`Experiment`] value plus `run_main`. They share these flags:
//!
//! ```text
//! --epochs N --optimizer NAME [optimizer options] --batch-size B --seed S --data DIR
//! --mirror URL|DIR --out DIR --json --resume [--resume-override] --compare [--schedule SPEC] [--plateau SPEC]
//! [--train-subset N] [--test-subset N] [--steps-per-epoch N] [--no-progress]
//! [--ema DECAY | --average temporal:BETA2|ema:DECAY|swa] [--accumulate K] [--precision f32|bf16]
//! ```
//!
//! `--resume` continues the run whose checkpoint is in `--out` only with the settings that
//! define it: seed, batch size, optimizer and every hyperparameter, schedule (and `--epochs`
//! when the schedule's length follows from it), data subsets, preprocessing, steps per
//! epoch, precision. A flag that conflicts is refused with one line naming it and both values;
//! `--resume-override` continues with the new values. Safe to change on resume: `--epochs`
//! when the schedule does not depend on it, `--data` (the same dataset elsewhere), `--json`,
//! `--no-progress`, and the thread count (`RAYON_NUM_THREADS`).
//!
//! An experiment's documented defaults (learning rate, schedule, weight decay, per optimizer)
//! apply first; options given on the command line override them one by one.

use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adamant::data::{locate, Augment, DataError, Dataset, Splits};
use adamant::distributed::{mpi_world, Communicator};
use adamant::layers::Module;
use adamant::optim::options::build_with_settings;
use adamant::optim::OptionsError;
use adamant::optim::{build, OptimizerOptions, Schedule, Scheduler};
use adamant::tensor::io::write_atomic;
use adamant::tensor::rng::{self, Purpose, Rng};
use adamant::tensor::Precision;

use crate::cli::{self, CliError, OptimizerArgs};
use crate::plot::{binned, line_chart, Series};
use adamant::train::{fit, Classification, FitConfig, History, Task, TrainError};

/// Why an experiment could not run to the end; `Display` is one line for `main`.
#[derive(Debug)]
pub enum ExperimentError {
    /// The experiment names a dataset the data crate does not know (a bug in the example).
    UnknownDataset(String),
    /// The data could not be found, downloaded or read.
    Data(DataError),
    /// An optimizer option is invalid or does not apply.
    Options(OptionsError),
    /// Training stopped: divergence, a log that could not be written, a bad checkpoint.
    Train(TrainError),
    /// An output file could not be written.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A figure could not be drawn (the plotting library's message).
    Plot(String),
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentError::UnknownDataset(name) => write!(f, "unknown dataset '{name}'"),
            ExperimentError::Data(e) => write!(f, "{e}"),
            ExperimentError::Options(e) => f.write_str(&e.as_flags()),
            ExperimentError::Train(TrainError::RunMismatch { path, conflicts }) => {
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|c| {
                        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".to_string());
                        format!(
                            "{} {} there, {} here",
                            setting_flag(&c.setting),
                            show(&c.saved),
                            show(&c.configured)
                        )
                    })
                    .collect();
                write!(
                    f,
                    "--resume: {} was written by another run: {}. Give the same values, add \
                     --resume-override to continue with these, or drop --resume to start afresh",
                    path.display(),
                    list.join("; ")
                )
            }
            ExperimentError::Train(e) => write!(f, "{e}"),
            ExperimentError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ExperimentError::Plot(message) => write!(f, "drawing the figure: {message}"),
        }
    }
}

impl std::error::Error for ExperimentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExperimentError::Data(e) => Some(e),
            ExperimentError::Options(e) => Some(e),
            ExperimentError::Train(e) => Some(e),
            ExperimentError::Io { source, .. } => Some(source),
            ExperimentError::UnknownDataset(_) | ExperimentError::Plot(_) => None,
        }
    }
}

/// The command-line flag that sets a setting of a run's identity (`batch_size` is
/// `--batch-size`), or what it is when no flag sets it.
fn setting_flag(setting: &str) -> String {
    match setting {
        "train_examples" => "--train-subset (training examples)".to_string(),
        "test_examples" => "--test-subset (test examples)".to_string(),
        "model" => "the model".to_string(),
        "adamant_version" => "adamant version".to_string(),
        "average" => "--ema/--average".to_string(),
        "corpus" | "train_tokens" | "vocab" => format!("the corpus ({setting}, --data)"),
        flag => format!("--{}", flag.trim_start_matches("optimizer.").replace('_', "-")),
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ExperimentError + '_ {
    move |source| ExperimentError::Io { path: path.to_path_buf(), source }
}

/// A model as experiments build it.
pub type BoxedModel = Box<dyn Module + Send + Sync>;

/// Input preprocessing fitted on the training set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Preprocess {
    /// Pixels as loaded, in [0, 1].
    None,
    /// ZCA whitening with this epsilon (the paper whitens CIFAR-10).
    Zca(f32),
    /// `(x - mean) / std` with the training set's statistics: per colour channel for
    /// `[N, C, H, W]` images (PyTorch's usual `transforms.Normalize` recipe for CIFAR-10), one
    /// global mean and std for flat `[N, D]` inputs such as MNIST.
    Standardize,
}

impl std::str::FromStr for Preprocess {
    type Err = String;

    /// `none`, `standardize`, `zca` (epsilon 1e-2) or `zca:EPS`.
    fn from_str(s: &str) -> Result<Preprocess, String> {
        match s {
            "none" => Ok(Preprocess::None),
            "standardize" => Ok(Preprocess::Standardize),
            "zca" => Ok(Preprocess::Zca(1e-2)),
            _ => match s.strip_prefix("zca:").map(str::parse::<f32>) {
                Some(Ok(eps)) if eps.is_finite() && eps > 0.0 => Ok(Preprocess::Zca(eps)),
                _ => Err(format!(
                    "'{}': expected none, standardize, zca or zca:EPS with EPS > 0",
                    s.escape_debug()
                )),
            },
        }
    }
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Preprocess::None => write!(f, "none"),
            Preprocess::Standardize => write!(f, "standardize"),
            Preprocess::Zca(eps) => write!(f, "zca:{eps}"),
        }
    }
}

/// One of the paper's experiments: data, model, defaults and the optimizers it compares.
pub struct Experiment {
    /// Name of the example and of its output files.
    pub name: &'static str,
    /// One paragraph for `--help`.
    pub about: &'static str,
    /// `mnist` or `cifar10`.
    pub dataset: &'static str,
    /// Default number of epochs.
    pub epochs: usize,
    /// Default minibatch size.
    pub batch_size: usize,
    /// Optimizer used without `--optimizer`.
    pub optimizer: &'static str,
    /// The optimizers `--compare` runs, in the paper's figure.
    pub compare: &'static [&'static str],
    /// The experiment's default options for an optimizer.
    pub defaults: fn(&str) -> OptimizerOptions,
    /// The experiment's default learning-rate schedule for an optimizer, given the run's
    /// length, so that a decay can span the run (`--schedule` replaces it).
    pub schedule: fn(&str, RunLength) -> Schedule,
    /// The defaults as text for `--help`.
    pub defaults_doc: &'static str,
    /// Builds the model from the seeded generator.
    pub model: fn(&mut Rng) -> BoxedModel,
    /// Input preprocessing.
    pub preprocess: Preprocess,
}

/// How long a run is, in the units schedules count: what a default schedule needs to span
/// the whole run (a cosine decay over every step, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLength {
    /// Epochs of the run (`--epochs`, or the experiment's default).
    pub epochs: usize,
    /// Optimizer steps per epoch: the minibatches of the training set, capped by
    /// `--steps-per-epoch`.
    pub steps_per_epoch: usize,
}

impl RunLength {
    /// Optimizer steps in the whole run.
    pub fn steps(&self) -> u64 {
        (self.epochs as u64) * (self.steps_per_epoch as u64)
    }
}

#[path = "experiment_args.rs"]
mod args;
pub use args::{parse_args, Command, ExperimentArgs};

impl Experiment {
    /// The `--help` text.
    pub fn usage(&self) -> String {
        format!(
            "{name}: {about}\n\nUsage: cargo run --release --example {name} -- [options]\n\n\
             Run options:\n  --epochs N            (default {epochs}; at most {max_epochs})\n  \
             --batch-size B        (default {batch}; at most {max_batch})\n  \
             --seed S              (default 0)\n  --data DIR            directory holding the {dataset} files \
             (default: $ADAMANT_DATA/{dataset}, ./datasets/{dataset}, /usr/share/datasets/{dataset}, else download)\n  \
             {mirror_usage}\n  \
             --out DIR             logs, checkpoints, plots (default runs/{name}); created and checked writable first\n  \
             --json                print exactly one final JSON line of metrics\n  \
             --resume              continue from the checkpoint in --out, refused if a flag that defines the run differs\n  \
             --resume-override     continue from it even so, with this command line's values\n  \
             --compare             run {compare} with one seed; writes OUT/{name}.csv and OUT/{name}.svg\n  \
             --schedule SPEC       constant | inverse-sqrt | step:N[,G] | exp:G | warmup:N[,S] | cosine:T[,ETA] | \
             warmup-cosine:W,T[,ETA] | noam:W,D[,SCALE] | onecycle[-three-phase]:TOTAL[,PCT[,DIV[,FINAL_DIV]]]\n  \
             --plateau SPEC        PATIENCE[,FACTOR[,THRESHOLD[,min|max[,rel|abs[,COOLDOWN[,MIN_LR[,EPS]]]]]]]: \
             cut the rate when the test loss (min) or accuracy (max) stalls, as ReduceLROnPlateau\n  \
             --preprocess P        none | standardize | zca[:EPS] (default {preprocess}), fitted on the training set\n  \
             --train-subset N      train on the first N examples (at most {max_examples})\n  \
             --test-subset N       evaluate on the first N test examples (at most {max_examples})\n  \
             --steps-per-epoch N   stop each epoch after N steps (at most {max_examples})\n  \
             --no-progress         no progress bar\n  \
             --ema DECAY           also evaluate an exponential moving average of the weights (torch's AveragedModel, \
             DECAY in [0, 1], e.g. 0.999)\n  \
             --average SPEC        temporal:BETA2 (the paper's bias-corrected average, BETA2 in [0, 1)) | ema:DECAY | swa\n  \
             --accumulate K        K minibatches per optimizer step: one step on K times the batch (at most {max_batch})\n  \
             --precision P         f32 (default) | bf16: matrix products and convolutions on bf16 operands with f32 sums \
             (mixed precision, as torch.autocast on the CPU; AVX512_BF16 where the CPU has it, else a slower exact fallback)\n  \
             {tensorboard_usage}\n  \
             --shard K/N           with --compare: run only optimizers K, K+N, ... of the figure (one process or Slurm \
             array task each); then --compare --resume without --shard collects every run and draws the figure\n  \
             --distributed         data-parallel training over MPI: start with mpirun -n N (a build with --features mpi); \
             each process takes 1/N of every batch, rank 0 writes\n  \
             --augment             random crop (4-pixel zero padding) and horizontal flip of each training image, \
             drawn per epoch and example (image datasets only)\n\n\
             Defaults of this experiment (command-line options override them):\n{defaults}\n\n{optimizer_usage}",
            name = self.name,
            about = self.about,
            epochs = self.epochs,
            batch = self.batch_size,
            dataset = self.dataset,
            compare = self.compare.join(", "),
            defaults = self.defaults_doc,
            preprocess = self.preprocess,
            optimizer_usage = cli::optimizer_usage(),
            mirror_usage = cli::MIRROR_USAGE,
            tensorboard_usage = cli::TENSORBOARD_USAGE,
            max_epochs = cli::MAX_EPOCHS,
            max_batch = cli::MAX_BATCH_SIZE,
            max_examples = cli::MAX_EXAMPLES,
        )
    }

    /// Where the run writes: `--out`, or `runs/<experiment>`.
    pub fn out_dir(&self, args: &ExperimentArgs) -> PathBuf {
        args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(self.name))
    }

    /// Loads the experiment's data (subsets and preprocessing applied).
    pub fn load_data(&self, args: &ExperimentArgs) -> Result<Splits, ExperimentError> {
        let spec = locate::spec_by_name(self.dataset)
            .ok_or_else(|| ExperimentError::UnknownDataset(self.dataset.to_string()))?;
        let mut splits = locate::load_with_mirror(spec, args.data.as_deref(), true, args.mirror.as_ref())
            .map_err(ExperimentError::Data)?;
        if let Some(n) = args.train_subset {
            splits.train = splits.train.take(n);
        }
        if let Some(n) = args.test_subset {
            splits.test = splits.test.take(n);
        }
        let (train, test) = match args.preprocess.unwrap_or(self.preprocess) {
            Preprocess::None => return Ok(splits),
            Preprocess::Zca(eps) => zca_whiten(&splits.train, &splits.test, eps),
            Preprocess::Standardize => standardize(&splits.train, &splits.test),
        };
        splits.train = train;
        splits.test = test;
        Ok(splits)
    }

    /// Refuses `--augment` on a dataset that is not images `[N, C, H, W]` (MNIST's are
    /// flattened to `[N, 784]`), before any training starts.
    pub fn check_augment(&self, args: &ExperimentArgs, data: &Splits) -> Result<(), CliError> {
        let shape = data.train.images.shape();
        if args.augment && shape.len() != 4 {
            return Err(CliError::invalid(
                "--augment",
                format!("crops and flips images [N, C, H, W]; {}'s training set is {shape:?}", self.dataset),
            ));
        }
        Ok(())
    }

    /// The optimizers a command line runs: the experiment's figure with `--compare`, else the
    /// one given (or the default).
    pub fn optimizer_names(&self, args: &ExperimentArgs) -> Vec<String> {
        if args.compare {
            let mine = |i: &usize| args.shard.is_none_or(|(k, n)| i % n == k);
            self.compare.iter().enumerate().filter(|(i, _)| mine(i)).map(|(_, s)| s.to_string()).collect()
        } else {
            vec![args.optimizer.name.clone().unwrap_or_else(|| self.optimizer.to_string())]
        }
    }

    /// Builds every optimizer the command line asks for, with the experiment's defaults
    /// merged in, so a bad option (`--lr -1`, an option the optimizer does not have) is refused
    /// before minutes go into loading and whitening the data.
    pub fn check_options(&self, args: &ExperimentArgs) -> Result<(), CliError> {
        for name in self.optimizer_names(args) {
            let options = args.optimizer.options.or(&(self.defaults)(&name));
            build(&name, &options)?;
        }
        Ok(())
    }

    /// Trains one optimizer (given on the command line, or the experiment's default).
    pub fn run_one(
        &self,
        name: &str,
        args: &ExperimentArgs,
        data: &Splits,
        world: Option<&Arc<dyn Communicator>>,
    ) -> Result<RunResult, ExperimentError> {
        let options = args.optimizer.options.or(&(self.defaults)(name));
        let (mut optimizer, settings) =
            build_with_settings(name, &options).map_err(ExperimentError::Options)?;
        let mut config = FitConfig {
            name: format!("{}_{name}", self.name),
            epochs: args.epochs.unwrap_or(self.epochs),
            batch_size: args.batch_size.unwrap_or(self.batch_size),
            seed: args.seed,
            out_dir: Some(args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(self.name))),
            resume: args.resume,
            resume_override: args.resume_override,
            identity: Default::default(),
            progress: !args.no_progress && !args.json,
            eval_batch_size: 1000,
            max_steps_per_epoch: args.steps_per_epoch,
            // Installed here, after the data is loaded: Ctrl-C during loading just exits.
            interrupt: Some(cli::interrupt_flag()),
            augment: args.augment.then(Augment::default),
            average: args.average,
            accumulate: args.accumulate.unwrap_or(1),
            precision: args.precision,
            tensorboard: None,
            distributed: world.cloned(),
        };
        config.tensorboard = cli::tensorboard_run(
            args.tensorboard.as_deref(),
            &config.name,
            args.log_every,
            args.log_optimizer_state,
        );
        let length =
            RunLength { epochs: config.epochs, steps_per_epoch: config.steps_per_epoch(data.train.len()) };
        let schedule = args.schedule.unwrap_or_else(|| (self.schedule)(name, length));
        // What defines this run beyond what `fit` records itself: every hyperparameter in
        // effect, the preprocessing, and the number of epochs when the schedule follows it
        // (a cosine decay over the whole run); otherwise `--epochs` may grow on resume.
        for (option, value) in settings {
            config.identity.set(option, value);
        }
        config.identity.set("preprocess", args.preprocess.unwrap_or(self.preprocess));
        let longer = RunLength { epochs: length.epochs + 1, ..length };
        if args.schedule.is_none() && (self.schedule)(name, longer) != schedule {
            config.identity.set("epochs", config.epochs);
        }
        let mut scheduler = Scheduler::new(schedule, optimizer.lr());
        if let Some(plateau) = args.plateau {
            scheduler = scheduler.with_plateau(plateau);
        }
        let mut model = (self.model)(&mut rng::stream(args.seed, Purpose::Init, 0));
        let task: &dyn Task<BoxedModel> = &Classification;
        let mut history =
            fit(&mut model, task, optimizer.as_mut(), Some(&mut scheduler), &data.train, &data.test, &config)
                .map_err(ExperimentError::Train)?;
        // A resumed run's history holds the steps of this process only; its log holds every
        // step from the start (the figure of a sweep collected from shards needs them all).
        let log = config.out_dir.as_ref().map(|d| d.join(format!("{}_iterations.csv", config.name)));
        if let Some(all) = log.and_then(|path| read_iterations(&path)) {
            if all.len() > history.iterations.len() {
                history.iterations = all;
            }
        }
        Ok(RunResult {
            optimizer: name.to_string(),
            description: describe(name, &options, &schedule),
            history,
            precision: args.precision,
        })
    }
}

/// `(step, loss)` of every row of a run's per-step log (`step,epoch,loss,lr`), or `None` if
/// the file is missing or a row does not parse.
fn read_iterations(path: &Path) -> Option<Vec<(u64, f32)>> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .skip(1)
        .map(|row| {
            let mut fields = row.split(',');
            let step = fields.next()?.parse().ok()?;
            let loss = fields.nth(1)?.parse().ok()?;
            Some((step, loss))
        })
        .collect()
}

/// What one optimizer's run produced.
pub struct RunResult {
    /// Optimizer name.
    pub optimizer: String,
    /// Optimizer, options and schedule, for legends.
    pub description: String,
    /// The run's metrics.
    pub history: History,
    /// The precision of its matrix products.
    pub precision: Precision,
}

impl RunResult {
    /// The one-line JSON summary the examples print with `--json`.
    pub fn json(&self, experiment: &str) -> String {
        let last = self.history.last();
        let num = |x: Option<f64>| x.filter(|v| v.is_finite()).map_or("null".to_string(), |v| format!("{v}"));
        // The averaged model's metrics only when the run averages: other runs' lines keep
        // their shape.
        let averaged = match last.and_then(|e| e.averaged_test_loss) {
            Some(loss) => format!(
                ", \"averaged_test_loss\": {}, \"averaged_test_accuracy\": {}",
                num(Some(loss)),
                num(last.and_then(|e| e.averaged_test_accuracy))
            ),
            None => String::new(),
        };
        // Likewise the precision only when it is not f32.
        let precision = match self.precision {
            Precision::F32 => String::new(),
            p => format!(", \"precision\": \"{p}\""),
        };
        format!(
            "{{\"experiment\": \"{experiment}\", \"optimizer\": \"{}\"{precision}, \"epochs\": {}, \"train_loss\": {}, \
             \"test_loss\": {}, \"test_accuracy\": {}{averaged}, \"seconds\": {}}}",
            self.optimizer,
            last.map_or(0, |e| e.epoch),
            num(last.map(|e| e.train_loss)),
            num(last.map(|e| e.test_loss)),
            num(last.and_then(|e| e.test_accuracy)),
            num(Some(self.history.seconds())),
        )
    }
}

fn describe(name: &str, o: &OptimizerOptions, schedule: &Schedule) -> String {
    let args = OptimizerArgs { name: Some(name.to_string()), options: o.clone() };
    format!("{}, schedule {schedule}", args.describe())
}

/// ZCA whitening fitted on the training images, applied to both splits (images keep their
/// NCHW shape).
fn zca_whiten(train: &Dataset, test: &Dataset, epsilon: f32) -> (Dataset, Dataset) {
    use adamant::data::preprocess::{Zca, ZcaOptions};
    let zca = Zca::fit(&train.images, ZcaOptions { epsilon: epsilon as f64 });
    let whiten = |d: &Dataset| Dataset { images: zca.apply(&d.images), labels: d.labels.clone() };
    (whiten(train), whiten(test))
}

/// Standardisation fitted on the training images, applied to both splits: per channel for
/// `[N, C, H, W]`, global for `[N, D]` (see [`Preprocess::Standardize`]).
fn standardize(train: &Dataset, test: &Dataset) -> (Dataset, Dataset) {
    use adamant::data::preprocess::{Normalizer, NormalizerOptions};
    let normalizer = if train.images.shape().len() == 4 {
        Normalizer::fit_per_channel(&train.images, NormalizerOptions::default())
    } else {
        Normalizer::fit_global(&train.images, NormalizerOptions::default())
    };
    let apply = |d: &Dataset| Dataset { images: normalizer.apply(&d.images), labels: d.labels.clone() };
    (apply(train), apply(test))
}

/// Writes `OUT/<experiment>.csv` (per-iteration loss of every run) and `OUT/<experiment>.svg`
/// (training cost against iterations, binned, log-scale y as in the paper).
pub fn write_comparison(
    experiment: &str,
    out: &Path,
    runs: &[RunResult],
) -> Result<(PathBuf, PathBuf), ExperimentError> {
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let mut csv = String::from("optimizer,step,loss\n");
    for r in runs {
        for (step, loss) in &r.history.iterations {
            let _ = writeln!(csv, "{},{step},{loss}", r.optimizer);
        }
    }
    let csv_path = out.join(format!("{experiment}.csv"));
    write_atomic(&csv_path, csv.as_bytes()).map_err(io_error(&csv_path))?;
    let steps = runs.iter().map(|r| r.history.iterations.len()).max().unwrap_or(0);
    // About 60 points per curve: the trend of the paper's figures, not minibatch noise.
    let bin = (steps / 60).max(1);
    let series: Vec<Series> = runs
        .iter()
        .map(|r| {
            let pts: Vec<(f64, f64)> =
                r.history.iterations.iter().map(|&(s, l)| (s as f64, l as f64)).collect();
            Series { label: r.description.clone(), points: binned(&pts, bin) }
        })
        .collect();
    let svg = line_chart(
        &format!("{experiment}: training cost (mean of {bin} iterations)"),
        "iterations",
        "training cost",
        &series,
        true,
    )
    .map_err(ExperimentError::Plot)?;
    let svg_path = out.join(format!("{experiment}.svg"));
    write_atomic(&svg_path, svg.as_bytes()).map_err(io_error(&svg_path))?;
    Ok((csv_path, svg_path))
}

/// The whole program of an experiment example: parse, load, train, report. Exits non-zero
/// with a one-line error on bad arguments, bad data or divergence.
pub fn run_main(experiment: &Experiment) {
    let args = match cli::exit_on_error(parse_args(std::env::args_os().skip(1))) {
        Command::Help => {
            println!("{}", experiment.usage());
            return;
        }
        Command::Run(a) => *a,
    };
    cli::exit_on_error(experiment.check_options(&args));
    // With --distributed every rank runs this program; rank 0 alone writes and prints.
    let world = args.distributed.then(|| cli::exit_on_error(mpi_world()));
    let rank0 = world.as_ref().is_none_or(|w| w.rank() == 0);
    if rank0 {
        cli::exit_on_error(cli::check_out_dir("--out", &experiment.out_dir(&args)));
    }
    let data = cli::exit_on_error(experiment.load_data(&args));
    cli::exit_on_error(experiment.check_augment(&args, &data));
    if !args.json && rank0 {
        println!(
            "{}: {} train / {} test examples from {}",
            experiment.name,
            data.train.len(),
            data.test.len(),
            data.source.display()
        );
    }
    let mut runs = Vec::new();
    for name in &experiment.optimizer_names(&args) {
        let result = match experiment.run_one(name, &args, &data, world.as_ref()) {
            Err(ExperimentError::Train(e @ TrainError::Interrupted { .. })) => cli::exit_interrupted(&e),
            result => cli::exit_on_error(result),
        };
        if !args.json && rank0 {
            let percent = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
            for e in &result.history.epochs {
                let averaged = e.averaged_test_loss.map_or(String::new(), |loss| {
                    format!(
                        " (averaged weights: test loss {loss:.4}, test accuracy {})",
                        percent(e.averaged_test_accuracy)
                    )
                });
                println!(
                    "{} epoch {:>3}: train loss {:.4}, test loss {:.4}, test accuracy {}{averaged}, {:.1} s",
                    result.optimizer,
                    e.epoch,
                    e.train_loss,
                    e.test_loss,
                    percent(e.test_accuracy),
                    e.seconds
                );
            }
        }
        runs.push(result);
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(experiment.name));
    if !rank0 {
        return;
    }
    if let (true, Some((k, n))) = (args.compare, args.shard) {
        if !args.json {
            println!(
                "shard {k}/{n} done; collect every run and draw the figure with --compare --resume (no --shard)"
            );
        }
    } else if args.compare {
        let (csv, svg) = cli::exit_on_error(write_comparison(experiment.name, &out, &runs));
        if !args.json {
            println!("comparison: {} and {}", csv.display(), svg.display());
        }
    }
    if args.json {
        if runs.len() == 1 {
            println!("{}", runs[0].json(experiment.name));
        } else {
            let all: Vec<String> = runs.iter().map(|r| r.json(experiment.name)).collect();
            println!("{{\"experiment\": \"{}\", \"runs\": [{}]}}", experiment.name, all.join(", "));
        }
    } else {
        println!("logs and checkpoints: {}", out.display());
    }
}

#[cfg(test)]
#[path = "experiment_tests.rs"]
mod tests;
