//! The command line of an experiment: [`ExperimentArgs`] and [`parse_args`].

use std::path::PathBuf;
use std::str::FromStr;

use adamant::data::spec::Mirror;
use adamant::optim::{Averaging, Plateau, Schedule};
use adamant::tensor::Precision;
use lexopt::prelude::*;

use super::Preprocess;
use crate::cli::{self, CliError, OptimizerArgs};

/// The parsed command line of an experiment.
#[derive(Clone, Debug, Default)]
pub struct ExperimentArgs {
    /// `--epochs`
    pub epochs: Option<usize>,
    /// `--optimizer` and its options.
    pub optimizer: OptimizerArgs,
    /// `--batch-size`
    pub batch_size: Option<usize>,
    /// `--seed` (default 0)
    pub seed: u64,
    /// `--data DIR`: the directory holding the dataset's files.
    pub data: Option<PathBuf>,
    /// `--mirror URL|DIR`: where a missing dataset is downloaded from (replaces
    /// `$ADAMANT_MIRROR`).
    pub mirror: Option<Mirror>,
    /// `--out DIR` (default `runs/<experiment>`)
    pub out: Option<PathBuf>,
    /// `--json`: print exactly one final JSON line.
    pub json: bool,
    /// `--resume` from the checkpoint in `--out`.
    pub resume: bool,
    /// `--resume-override`: resume even if settings differ from the checkpoint's (implies
    /// `--resume`).
    pub resume_override: bool,
    /// `--compare`: run every optimizer of the experiment's figure.
    pub compare: bool,
    /// `--schedule SPEC` (see [`adamant::optim::Schedule`]'s spellings).
    pub schedule: Option<Schedule>,
    /// `--plateau SPEC`: PyTorch's `ReduceLROnPlateau` on the test loss (or accuracy, in
    /// `max` mode), on top of the schedule ([`Plateau`]'s spellings, `plateau:` optional).
    pub plateau: Option<Plateau>,
    /// `--preprocess P`: overrides the experiment's input preprocessing.
    pub preprocess: Option<Preprocess>,
    /// `--train-subset N`: train on the first N examples only (quick checks).
    pub train_subset: Option<usize>,
    /// `--test-subset N`: evaluate on the first N test examples only.
    pub test_subset: Option<usize>,
    /// `--steps-per-epoch N`: stop each epoch after N steps.
    pub steps_per_epoch: Option<usize>,
    /// `--no-progress`: no progress bar.
    pub no_progress: bool,
    /// `--augment`: random crops (4 pixels of zero padding) and horizontal flips of the
    /// training images, drawn per epoch and example ([`Augment::default`](adamant::data::Augment::default)).
    pub augment: bool,
    /// `--ema DECAY` or `--average SPEC`: keep a weight average, report its test metrics too.
    pub average: Option<Averaging>,
    /// `--accumulate K`: minibatches per optimizer step (gradient accumulation).
    pub accumulate: Option<usize>,
    /// `--precision f32|bf16`: the precision of the matrix products and convolutions
    /// ([`FitConfig::precision`](adamant::train::FitConfig::precision)).
    pub precision: Precision,
    /// `--tensorboard DIR`: write TensorBoard event files, one run per optimizer in
    /// `DIR/<experiment>_<optimizer>`.
    pub tensorboard: Option<PathBuf>,
    /// `--log-every N`: TensorBoard logs every N steps (default 10; step 1 always).
    pub log_every: Option<u64>,
    /// `--log-optimizer-state`: log Adam's internals per layer too.
    pub log_optimizer_state: bool,
    /// `--distributed`: data-parallel training over MPI, one process per rank (started by
    /// `mpirun` or `srun`; a build with `--features mpi`).
    pub distributed: bool,
    /// `--shard K/N` (with `--compare`): run only the optimizers K, K+N, ... of the figure.
    pub shard: Option<(usize, usize)>,
}

/// What the command line asks for.
pub enum Command {
    /// Print the help text.
    Help,
    /// Run with these arguments.
    Run(Box<ExperimentArgs>),
}

/// Parses an experiment's command line (without the program name).
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    let mut parser = lexopt::Parser::from_args(args);
    let mut a = ExperimentArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("epochs") => {
                let v = cli::value(&mut parser, "--epochs")?;
                a.epochs = Some(cli::parse_count(&v, "--epochs", cli::MAX_EPOCHS)?)
            }
            Long("batch-size") => {
                let v = cli::value(&mut parser, "--batch-size")?;
                a.batch_size = Some(cli::parse_count(&v, "--batch-size", cli::MAX_BATCH_SIZE)?)
            }
            Long("seed") => a.seed = cli::parse_seed(&cli::value(&mut parser, "--seed")?, "--seed")?,
            Long("data") => a.data = Some(cli::path_value(&mut parser, "--data")?),
            Long("mirror") => {
                a.mirror = Some(cli::parse_mirror(&cli::os_value(&mut parser, "--mirror")?, "--mirror")?)
            }
            Long("out") => a.out = Some(cli::path_value(&mut parser, "--out")?),
            Long("json") => a.json = true,
            Long("resume") => a.resume = true,
            Long("resume-override") => {
                a.resume = true;
                a.resume_override = true;
            }
            Long("compare") => a.compare = true,
            Long("no-progress") => a.no_progress = true,
            Long("augment") => a.augment = true,
            Long("plateau") => {
                let v = cli::value(&mut parser, "--plateau")?;
                let spec = if v.starts_with("plateau") { v } else { format!("plateau:{v}") };
                a.plateau = Some(
                    Plateau::from_str(&spec).map_err(|e| CliError::invalid("--plateau", e.to_string()))?,
                );
            }
            Long("schedule") => {
                let v = cli::value(&mut parser, "--schedule")?;
                a.schedule =
                    Some(Schedule::from_str(&v).map_err(|e| CliError::invalid("--schedule", e.to_string()))?);
            }
            Long("preprocess") => {
                let v = cli::value(&mut parser, "--preprocess")?;
                a.preprocess = Some(v.parse().map_err(|e: String| CliError::invalid("--preprocess", e))?);
            }
            Long("train-subset") => {
                let v = cli::value(&mut parser, "--train-subset")?;
                a.train_subset = Some(cli::parse_count(&v, "--train-subset", cli::MAX_EXAMPLES)?)
            }
            Long("test-subset") => {
                let v = cli::value(&mut parser, "--test-subset")?;
                a.test_subset = Some(cli::parse_count(&v, "--test-subset", cli::MAX_EXAMPLES)?)
            }
            Long(flag @ ("ema" | "average")) => {
                let flag = format!("--{flag}");
                let v = cli::value(&mut parser, &flag)?;
                if a.average.is_some() {
                    return Err(CliError::invalid(&flag, "give one of --ema and --average, once"));
                }
                a.average = Some(cli::parse_averaging(&v, &flag)?);
            }
            Long("accumulate") => {
                let v = cli::value(&mut parser, "--accumulate")?;
                a.accumulate = Some(cli::parse_count(&v, "--accumulate", cli::MAX_BATCH_SIZE)?)
            }
            Long("precision") => {
                let v = cli::value(&mut parser, "--precision")?;
                a.precision = v.parse().map_err(|e: String| CliError::invalid("--precision", e))?;
            }
            Long("tensorboard") => a.tensorboard = Some(cli::path_value(&mut parser, "--tensorboard")?),
            Long("log-every") => {
                let v = cli::value(&mut parser, "--log-every")?;
                a.log_every = Some(cli::parse_whole(&v, "--log-every", 1, cli::MAX_EXAMPLES)? as u64)
            }
            Long("log-optimizer-state") => a.log_optimizer_state = true,
            Long("distributed") => a.distributed = true,
            Long("shard") => a.shard = Some(cli::parse_shard(&cli::value(&mut parser, "--shard")?)?),
            Long("steps-per-epoch") => {
                let v = cli::value(&mut parser, "--steps-per-epoch")?;
                a.steps_per_epoch = Some(cli::parse_count(&v, "--steps-per-epoch", cli::MAX_EXAMPLES)?)
            }
            Long(name) => {
                let name = name.to_owned();
                if !a.optimizer.parse_flag(&name, &mut parser)? {
                    return Err(CliError::UnknownArgument(format!("--{name}")));
                }
            }
            other => return Err(cli::unexpected(other)),
        }
    }
    if let Some(dir) = &a.data {
        if !dir.is_dir() {
            return Err(CliError::invalid("--data", format!("{} is not a directory", cli::quote_path(dir))));
        }
    }
    cli::check_tensorboard_flags(a.tensorboard.as_deref(), a.log_every, a.log_optimizer_state)?;
    if a.shard.is_some() && !a.compare {
        return Err(CliError::invalid("--shard", "splits the optimizers of --compare; add --compare"));
    }
    if a.compare && a.optimizer.name.is_some() {
        return Err(CliError::invalid("--compare", "runs the experiment's own optimizers; drop --optimizer"));
    }
    Ok(Command::Run(Box::new(a)))
}
