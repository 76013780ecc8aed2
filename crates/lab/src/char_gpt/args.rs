//! The command line of `examples/char_gpt.rs`.

use std::ffi::OsString;
use std::path::PathBuf;

use super::compare::Study;
use super::recipe::{Recipe, MAX_DEPTH, MAX_STEPS, MAX_WIDTH};
use super::torch_log::TorchLog;
use crate::cli::{self, CliError};

/// Most characters `--samples` prints.
pub const MAX_SAMPLES: usize = 1_000_000;

/// Everything the command line says.
#[derive(Clone, Debug)]
pub struct Args {
    /// The run's settings.
    pub recipe: Recipe,
    /// `--data PATH`: the corpus file, or a directory holding `input.txt`.
    pub data: Option<PathBuf>,
    /// `--out DIR` (default `runs/char_gpt`).
    pub out: PathBuf,
    /// `--json`: end with one JSON line.
    pub json: bool,
    /// `--resume` from the checkpoint in `--out`.
    pub resume: bool,
    /// `--resume-override`: resume even if a setting differs.
    pub resume_override: bool,
    /// `--compare STUDY`: the recipe taken apart ([`super::compare`]); empty without it.
    pub compare: Vec<Study>,
    /// `--no-progress`: no progress bar.
    pub no_progress: bool,
    /// `--samples N`: characters sampled at the end (500; 0 for none).
    pub samples: usize,
    /// `--temperature T` of the samples (1).
    pub temperature: f32,
    /// `--top-k K`: sample among the K most likely characters only.
    pub top_k: Option<usize>,
    /// `--torch-log FILE`: PyTorch's run of the same recipe (`torch_char_gpt.py --json FILE`),
    /// read before training, drawn beside this run's curves at the end.
    pub torch_log: Option<TorchLog>,
    /// `--tensorboard DIR`: TensorBoard event files in `DIR/char_gpt`, or one directory per
    /// variant with `--compare` (`DIR/compare_<study>/<variant>`).
    pub tensorboard: Option<PathBuf>,
    /// `--log-every N`: TensorBoard logs every N steps (default 10; step 1 always).
    pub log_every: Option<u64>,
    /// `--log-optimizer-state`: also log AdamW's internals per parameter tensor.
    pub log_optimizer_state: bool,
    /// `--distributed`: data-parallel over MPI, one process per rank (started by `mpirun`).
    pub distributed: bool,
}

/// What the command line asks for.
#[derive(Clone, Debug)]
pub enum Command {
    /// `--help`.
    Help,
    /// A run (or a comparison).
    Run(Box<Args>),
}

/// The `--help` text.
pub fn usage() -> String {
    format!(
        "char_gpt: a character-level GPT on Shakespeare trained with the AdamW recipe, as shared/bench/torch_char_gpt.py

Usage: cargo run --release --example char_gpt -- [options]

Model and data:
  --data PATH         the corpus: a text file, or a directory holding input.txt (default:
                      $ADAMANT_DATA/shakespeare/input.txt, ./datasets/shakespeare/input.txt,
                      /usr/share/datasets/shakespeare/input.txt); first 90% train, last 10% validate
  --block T           context length (default 64)
  --layers L          Transformer blocks (default 4)
  --heads H           attention heads, dividing --embd (default 4)
  --embd C            width (default 128)
Recipe:
  --steps N           optimizer steps (default 2000, at most {MAX_STEPS})
  --batch-size B      windows per minibatch (default 12)
  --accumulate K      minibatches summed into one step (default 1)
  --optimizer NAME    default adamw, with lr 1e-3, betas 0.9,0.99, eps 1e-8, weight decay 0.1;
                      adam gets the same betas and eps, sgd Nesterov momentum 0.9; weight decay
                      applies to tensors of two or more axes only
  --lr F              peak learning rate (default 1e-3)
  --warmup N          linear warmup steps (default 100, or --steps - 1 if fewer; 0 for none)
  --min-lr F          the rate the cosine ends at, absolute (default 1e-4)
  --clip F            clip the global gradient norm to F (default 1; 0 for no clipping)
  --ema DECAY         exponential moving average of the weights (default 0.99)
  --no-ema            no weight average
  --seed S            initial weights, batches and samples (default 0)
  --eval-every N      validate every N steps (default 250)
  --precision P       f32 (default) | bf16: matrix products (attention's too) on bf16 operands with f32 sums
Output:
  --out DIR           checkpoint char_gpt.ckpt and log char_gpt_evals.csv (default runs/char_gpt)
  --resume            continue from the checkpoint in --out, refused if a setting differs
  --resume-override   continue from it even so, with this command line's values
  --samples N         characters sampled at the end (default 500; 0 for none)
  --temperature T     sampling temperature (default 1)
  --top-k K           sample among the K most likely characters only
  --json              end with {{\"val_loss\": .., \"val_loss_ema\": .., \"step_ms\": .., ...}}
  --no-progress       no progress bar
  --distributed       data-parallel training over MPI: start with mpirun -n N (a build with --features mpi);
                      each process takes 1/N of every minibatch (--batch-size must divide by N), rank 0 writes
  --torch-log FILE    the JSON of `torch_char_gpt.py --json FILE` for the same recipe: its validation
                      curves are drawn beside this run's in OUT/char_gpt_vs_torch.svg
  --compare STUDY     the recipe taken apart, one run per variant from the same seed and data:
                      recipe (AdamW vs Adam + L2, no warmup, no clipping, Lion, AdaBelief, SGD),
                      warmup (Adam at 3e-3 and 1e-2 with and without warmup, RAdam, no bias
                      correction), batch (12 vs 192 with --accumulate, AdamW vs LAMB), or all;
                      writes OUT/char_gpt_STUDY.csv, .svg and .md, each run resumable
TensorBoard (DIR/char_gpt, or DIR/compare_STUDY/VARIANT with --compare; validation as val/loss, val_ema/loss):
  {}

Optimizer options (every optimizer by name, with its options):
{}",
        cli::TENSORBOARD_USAGE,
        cli::optimizer_usage()
    )
}

/// Parses the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut a = Args {
        recipe: Recipe::default(),
        data: None,
        out: PathBuf::from("runs/char_gpt"),
        json: false,
        resume: false,
        resume_override: false,
        compare: Vec::new(),
        no_progress: false,
        samples: 500,
        temperature: 1.0,
        top_k: None,
        torch_log: None,
        tensorboard: None,
        log_every: None,
        log_optimizer_state: false,
        distributed: false,
    };
    let r = &mut a.recipe;
    let mut warmup_given = false;
    let mut parser = lexopt::Parser::from_args(args);
    let count =
        |parser: &mut lexopt::Parser, flag: &str, min: usize, max: usize| -> Result<usize, CliError> {
            cli::parse_whole(&cli::value(parser, flag)?, flag, min, max)
        };
    let rate = |parser: &mut lexopt::Parser, flag: &str| -> Result<f32, CliError> {
        let v = cli::parse_f32(&cli::value(parser, flag)?, flag)?;
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(CliError::invalid(flag, format!("must be finite and >= 0, got {v}")))
        }
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("steps") => r.steps = count(&mut parser, "--steps", 1, MAX_STEPS)?,
            Long("batch-size") => r.batch_size = count(&mut parser, "--batch-size", 1, cli::MAX_BATCH_SIZE)?,
            Long("accumulate") => r.accumulate = count(&mut parser, "--accumulate", 1, cli::MAX_BATCH_SIZE)?,
            Long("block") => r.block = count(&mut parser, "--block", 1, MAX_WIDTH)?,
            Long("layers") => r.layers = count(&mut parser, "--layers", 1, MAX_DEPTH)?,
            Long("heads") => r.heads = count(&mut parser, "--heads", 1, MAX_DEPTH)?,
            Long("embd") => r.embd = count(&mut parser, "--embd", 1, MAX_WIDTH)?,
            Long("warmup") => {
                r.warmup = count(&mut parser, "--warmup", 0, MAX_STEPS)?;
                warmup_given = true;
            }
            Long("min-lr") => {
                // Parsed as f64 (the schedule's type), so 2e-4 stays 2e-4 in logs and identity.
                let v = cli::value(&mut parser, "--min-lr")?;
                r.min_lr = match v.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => x,
                    _ => {
                        return Err(CliError::invalid(
                            "--min-lr",
                            format!("expected a finite rate >= 0, got '{v}'"),
                        ))
                    }
                };
            }
            Long("clip") => {
                let c = rate(&mut parser, "--clip")?;
                r.clip = (c > 0.0).then_some(c);
            }
            Long("ema") => {
                r.average = Some(cli::parse_averaging(&cli::value(&mut parser, "--ema")?, "--ema")?)
            }
            Long("no-ema") => r.average = None,
            Long("seed") => r.seed = cli::parse_seed(&cli::value(&mut parser, "--seed")?, "--seed")?,
            Long("eval-every") => r.eval_every = count(&mut parser, "--eval-every", 1, MAX_STEPS)?,
            Long("precision") => {
                let v = cli::value(&mut parser, "--precision")?;
                r.precision = v.parse().map_err(|e: String| CliError::invalid("--precision", e))?;
            }
            Long("data") => a.data = Some(cli::path_value(&mut parser, "--data")?),
            Long("out") => a.out = cli::path_value(&mut parser, "--out")?,
            Long("json") => a.json = true,
            Long("resume") => a.resume = true,
            Long("resume-override") => a.resume_override = true,
            Long("compare") => a.compare = Study::parse(&cli::value(&mut parser, "--compare")?)?,
            Long("no-progress") => a.no_progress = true,
            Long("samples") => a.samples = count(&mut parser, "--samples", 0, MAX_SAMPLES)?,
            Long("temperature") => a.temperature = rate(&mut parser, "--temperature")?,
            Long("torch-log") => {
                a.torch_log = Some(TorchLog::read(&cli::path_value(&mut parser, "--torch-log")?)?)
            }
            Long("top-k") => a.top_k = Some(count(&mut parser, "--top-k", 1, MAX_SAMPLES)?),
            Long("tensorboard") => a.tensorboard = Some(cli::path_value(&mut parser, "--tensorboard")?),
            Long("log-every") => {
                a.log_every = Some(count(&mut parser, "--log-every", 1, cli::MAX_EXAMPLES)? as u64)
            }
            Long("log-optimizer-state") => a.log_optimizer_state = true,
            Long("distributed") => a.distributed = true,
            Long(name) => {
                let name = name.to_owned();
                if !r.optimizer.parse_flag(&name, &mut parser)? {
                    return Err(CliError::UnknownArgument(format!("--{name}")));
                }
            }
            other => return Err(cli::unexpected(other)),
        }
    }
    if !a.compare.is_empty() && a.distributed {
        return Err(CliError::invalid(
            "--distributed",
            "runs one recipe; drop --compare (or compare without it)",
        ));
    }
    if !a.compare.is_empty() && a.recipe.optimizer.name.is_some() {
        return Err(CliError::invalid("--compare", "runs the comparison's own optimizers; drop --optimizer"));
    }
    // An --eval-every beyond a short run validates at its end only, and a short run without
    // --warmup keeps a step of cosine.
    a.recipe.eval_every = a.recipe.eval_every.min(a.recipe.steps);
    if !warmup_given {
        a.recipe.warmup = a.recipe.warmup.min(a.recipe.steps - 1);
    }
    a.recipe.validate()?;
    cli::check_out_dir("--out", &a.out)?;
    cli::check_tensorboard_flags(a.tensorboard.as_deref(), a.log_every, a.log_optimizer_state)?;
    Ok(Command::Run(Box::new(a)))
}
