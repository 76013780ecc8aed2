//! Command-line pieces shared by adamant's examples.
//!
//! Every example that trains something takes the same optimizer flags, spelled like
//! `torch.optim`'s keyword arguments (`--lr`, `--betas 0.9,0.999`, `--weight-decay`, ...).
//! [`OptimizerArgs::parse_flag`] recognises them inside an example's own [`lexopt`] loop, so
//! each example adds only its own flags:
//!
//! ```
//! use adamant_lab::cli::{self, CliError, OptimizerArgs};
//! use lexopt::prelude::*;
//!
//! fn parse(args: &[&str]) -> Result<(OptimizerArgs, usize), CliError> {
//!     let mut parser = lexopt::Parser::from_args(args);
//!     let (mut optimizer, mut epochs) = (OptimizerArgs::default(), 10);
//!     while let Some(arg) = parser.next()? {
//!         match arg {
//!             Long("epochs") => epochs = cli::parse_count(&cli::value(&mut parser, "--epochs")?, "--epochs", cli::MAX_EPOCHS)?,
//!             Long(name) => {
//!                 // `name` borrows the parser, which the flag's value is read from next.
//!                 let name = name.to_owned();
//!                 if !optimizer.parse_flag(&name, &mut parser)? {
//!                     return Err(CliError::UnknownArgument(format!("--{name}")));
//!                 }
//!             }
//!             other => return Err(cli::unexpected(other)),
//!         }
//!     }
//!     Ok((optimizer, epochs))
//! }
//!
//! let (optimizer, epochs) = parse(&["--optimizer", "sgd", "--lr=0.1", "--momentum", "0.9", "--epochs", "3"]).unwrap();
//! assert_eq!(optimizer.options.momentum, Some(0.9));
//! assert_eq!(epochs, 3);
//! assert!(optimizer.build().is_ok());
//! let err = parse(&["--optimizer", "adam", "--lr", "abc"]).unwrap_err();
//! assert_eq!(err.to_string(), "--lr: invalid number 'abc'");
//! let err = parse(&["--epochs", "18446744073709551615"]).unwrap_err();
//! assert_eq!(err.to_string(), "--epochs: expected a whole number from 1 to 1000000, got '18446744073709551615'");
//! ```
//!
//! Errors are [`CliError`]s whose message is one line naming the argument and the problem;
//! [`exit_on_error`] prints it as `error: <message>` and exits with status 2, with no panic
//! and no backtrace. Every count has an upper bound ([`parse_count`] and the `MAX_` constants),
//! paths are refused when empty or holding control characters ([`path_value`]), and output
//! directories are checked writable before any data is read ([`check_out_dir`]).

use std::ffi::{OsStr, OsString};
use std::fmt::{self, Display};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use adamant::train::TrainError;

use adamant::data::spec::Mirror;
use adamant::optim::options::{self, OptionKind, OptionValue, OPTIONS};
use adamant::optim::{build, Averaging, Optimizer, OptimizerOptions, OptionsError, OPTIMIZER_NAMES};
use adamant::tensorboard::{LogOptions, TensorBoard};

/// The usage lines of the optimizer flags, for an example's `--help` text: generated from
/// the options table and the registry of `adamant_optim::options`, so a new optimizer or
/// hyperparameter appears here by itself.
pub fn optimizer_usage() -> String {
    format!(
        "Optimizer (torch.optim's names, defaults and formulas; an omitted option takes the default):\n{}",
        options::usage()
    )
}

/// A command-line error; its `Display` is one line naming the argument and the problem.
#[derive(Debug)]
pub enum CliError {
    /// An argument no one recognises, as typed (`--foo`, `-x`, `stray`).
    UnknownArgument(String),
    /// A flag that takes a value came last, with none after it.
    MissingValue(String),
    /// A switch was given a value, as in `--amsgrad=yes`.
    UnexpectedValue {
        /// The switch, as typed (`--amsgrad`).
        flag: String,
        /// The value it was given.
        value: String,
    },
    /// A value that should be a number is not one.
    InvalidNumber {
        /// The flag, as typed (`--lr`).
        flag: String,
        /// The value given.
        value: String,
    },
    /// Any other bad or missing value, with the reason.
    Invalid {
        /// The flag, as typed (`--betas`).
        flag: String,
        /// What is wrong, e.g. `expected two numbers like 0.9,0.999`.
        reason: String,
    },
    /// The optimizer options do not fit together or with the chosen optimizer.
    Options(OptionsError),
}

impl CliError {
    /// An [`CliError::Invalid`] for `flag`.
    pub fn invalid(flag: &str, reason: impl Into<String>) -> CliError {
        CliError::Invalid { flag: flag.to_string(), reason: reason.into() }
    }
}

/// Quotes user text so that no newline or control character breaks the one-line message.
fn quoted(text: &str) -> String {
    format!("'{}'", text.escape_debug())
}

impl Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownArgument(arg) => write!(f, "unknown argument {}", quoted(arg)),
            CliError::MissingValue(flag) => write!(f, "{flag}: missing value"),
            CliError::UnexpectedValue { flag, value } => {
                write!(f, "{flag}: takes no value, got {}", quoted(value))
            }
            CliError::InvalidNumber { flag, value } => write!(f, "{flag}: invalid number {}", quoted(value)),
            CliError::Invalid { flag, reason } => write!(f, "{flag}: {reason}"),
            CliError::Options(e) => f.write_str(&e.as_flags()),
        }
    }
}

impl std::error::Error for CliError {}

impl From<OptionsError> for CliError {
    fn from(e: OptionsError) -> CliError {
        CliError::Options(e)
    }
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> CliError {
        match e {
            lexopt::Error::MissingValue { option } => CliError::MissingValue(option.unwrap_or_default()),
            lexopt::Error::UnexpectedOption(option) => CliError::UnknownArgument(option),
            lexopt::Error::UnexpectedArgument(value) => {
                CliError::UnknownArgument(value.to_string_lossy().into_owned())
            }
            lexopt::Error::UnexpectedValue { option, value } => {
                CliError::UnexpectedValue { flag: option, value: value.to_string_lossy().into_owned() }
            }
            lexopt::Error::NonUnicodeValue(value) => {
                CliError::UnknownArgument(value.to_string_lossy().into_owned())
            }
            // Only produced by lexopt's `ValueExt::parse` and by `Error::from(String)`, which
            // this module does not use; kept as the message lexopt gives.
            other @ (lexopt::Error::ParsingFailed { .. } | lexopt::Error::Custom(_)) => {
                CliError::invalid("argument", other.to_string())
            }
        }
    }
}

/// The error for an argument the caller's parse loop does not recognise.
pub fn unexpected(arg: lexopt::Arg<'_>) -> CliError {
    CliError::UnknownArgument(match arg {
        lexopt::Arg::Long(name) => format!("--{name}"),
        lexopt::Arg::Short(c) => format!("-{c}"),
        lexopt::Arg::Value(v) => v.to_string_lossy().into_owned(),
    })
}

/// The value of `flag` (given as `--flag VALUE` or `--flag=VALUE`) as UTF-8 text; it may
/// start with `-`, so `--start -1.5,2` works.
pub fn value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, CliError> {
    os_value(parser, flag)?
        .into_string()
        .map_err(|v| CliError::invalid(flag, format!("not valid UTF-8: {}", quoted(&v.to_string_lossy()))))
}

/// The value of `flag` as an `OsString`, for file names that need not be UTF-8.
pub fn os_value(parser: &mut lexopt::Parser, flag: &str) -> Result<OsString, CliError> {
    parser.value().map_err(|e| match e {
        lexopt::Error::MissingValue { .. } => CliError::MissingValue(flag.to_string()),
        other => other.into(),
    })
}

/// The `--help` line of `--mirror`, for the examples that may download a dataset.
pub const MIRROR_USAGE: &str =
    "--mirror URL|DIR      download missing datasets only from URL/<dataset>/<file> or \
                                DIR/<dataset>/<file> (default: $ADAMANT_MIRROR, else the built-in mirrors)";

/// Parses `--mirror URL|DIR` as `$ADAMANT_MIRROR` is parsed (see
/// [`adamant::data::spec::Mirror`]): an http(s) base URL or an existing directory. A bad value
/// is one line naming the flag.
pub fn parse_mirror(value: &OsStr, flag: &str) -> Result<Mirror, CliError> {
    Mirror::parse(value).map_err(|why| CliError::invalid(flag, why))
}

/// The most shards a sweep is split into (`--shard K/N`): one process (or Slurm array task)
/// each.
pub const MAX_SHARDS: usize = 1024;

/// `--shard K/N`: `(K, N)` with `0 <= K < N <= MAX_SHARDS`, the part of a sweep (every N-th
/// setting from the K-th) one process runs.
pub fn parse_shard(text: &str) -> Result<(usize, usize), CliError> {
    let bad = || {
        CliError::invalid(
            "--shard",
            format!("'{}': expected K/N with 0 <= K < N <= {MAX_SHARDS}", text.escape_debug()),
        )
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    match (k.parse::<usize>(), n.parse::<usize>()) {
        (Ok(k), Ok(n)) if k < n && n <= MAX_SHARDS => Ok((k, n)),
        _ => Err(bad()),
    }
}

/// The `--help` lines of the TensorBoard flags, shared by every training program.
pub const TENSORBOARD_USAGE: &str = "--tensorboard DIR     write TensorBoard event files into DIR/<run> \
(tensorboard --logdir DIR): loss, lr, step time, histograms of weights and gradients, evaluation metrics\n  \
--log-every N         log to TensorBoard every N steps (default 10; step 1 always)\n  \
--log-optimizer-state also log Adam's internals per layer (moments, bias corrections, effective step sizes)";

/// Refuses `--log-every` and `--log-optimizer-state` without `--tensorboard`, and a
/// TensorBoard directory that cannot be created or written.
pub fn check_tensorboard_flags(
    dir: Option<&Path>,
    log_every: Option<u64>,
    optimizer_state: bool,
) -> Result<(), CliError> {
    match dir {
        Some(dir) => check_out_dir("--tensorboard", dir),
        None if log_every.is_some() => Err(CliError::invalid("--log-every", "needs --tensorboard DIR")),
        None if optimizer_state => Err(CliError::invalid("--log-optimizer-state", "needs --tensorboard DIR")),
        None => Ok(()),
    }
}

/// What `fit` logs to TensorBoard for the run `name` given `--tensorboard DIR`: the run's own
/// directory `DIR/<name>`, so that `tensorboard --logdir DIR` shows the runs side by side.
pub fn tensorboard_run(
    dir: Option<&Path>,
    name: &str,
    log_every: Option<u64>,
    optimizer_state: bool,
) -> Option<TensorBoard> {
    let options = LogOptions { every: log_every.unwrap_or(10), optimizer_state, ..LogOptions::default() };
    dir.map(|dir| TensorBoard { dir: dir.join(name), options })
}

/// The value of `flag` as a path; refused when empty (`--out ''` would write into the
/// current directory, as `Path::new("").join(name)` is `name`) or when it holds a control
/// character (a newline, a tab, an escape), which would split or garble every message that
/// names the path.
pub fn path_value(parser: &mut lexopt::Parser, flag: &str) -> Result<PathBuf, CliError> {
    check_path(os_value(parser, flag)?, flag)
}

/// `value` as a path, checked as [`path_value`] checks it.
pub fn check_path(value: OsString, flag: &str) -> Result<PathBuf, CliError> {
    if value.is_empty() {
        return Err(CliError::invalid(flag, "expected a path, got ''"));
    }
    // Non-UTF-8 bytes become U+FFFD here, which is not a control character: such names pass.
    let text = value.to_string_lossy();
    if text.chars().any(char::is_control) {
        return Err(CliError::invalid(
            flag,
            format!("the path {} contains a control character", quoted(&text)),
        ));
    }
    Ok(PathBuf::from(value))
}

/// A path in single quotes with control characters escaped, for one-line messages.
pub fn quote_path(path: &Path) -> String {
    quoted(&path.to_string_lossy())
}

/// Creates the output directory `dir` of `flag` if needed and checks that a file can be
/// created in it, so that an unwritable `--out` is refused before minutes go into loading
/// and preprocessing data, not when the first result is written.
pub fn check_out_dir(flag: &str, dir: &Path) -> Result<(), CliError> {
    let cannot = |e: io::Error| CliError::invalid(flag, format!("cannot write to {}: {e}", quote_path(dir)));
    fs::create_dir_all(dir).map_err(cannot)?;
    probe_writable(dir).map_err(cannot)
}

/// Checks that the file `path` of `flag` can be written later: its directory exists and a file
/// can be created there, and `path` is not a directory. The directory is not created.
pub fn check_out_file(flag: &str, path: &Path) -> Result<(), CliError> {
    let cannot = |e: io::Error| CliError::invalid(flag, format!("cannot write {}: {e}", quote_path(path)));
    if path.is_dir() {
        return Err(cannot(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    probe_writable(dir).map_err(cannot)
}

/// Creates and removes a file in `dir`: the only sure test of writability (permission bits
/// say nothing about read-only mounts, ACLs or a root user).
fn probe_writable(dir: &Path) -> io::Result<()> {
    // Hidden and named after this process, so it clashes with no file of the user's.
    let probe = dir.join(format!(".adamant-write-check-{}", std::process::id()));
    fs::OpenOptions::new().write(true).create(true).truncate(true).open(&probe)?;
    fs::remove_file(&probe)
}

/// Parses a finite `f32`; NaN and infinities are refused, as no hyperparameter takes them.
pub fn parse_f32(value: &str, flag: &str) -> Result<f32, CliError> {
    let x = f32::from_str(value)
        .map_err(|_| CliError::InvalidNumber { flag: flag.to_string(), value: value.to_string() })?;
    if !x.is_finite() {
        return Err(CliError::invalid(flag, format!("expected a finite number, got {}", quoted(value))));
    }
    Ok(x)
}

/// Parses two finite numbers separated by a comma (`0.9,0.999`); `example` is shown in the
/// error.
pub fn parse_pair(value: &str, flag: &str, example: &str) -> Result<(f32, f32), CliError> {
    let wrong =
        || CliError::invalid(flag, format!("expected two numbers like {example}, got {}", quoted(value)));
    let (a, b) = value.split_once(',').ok_or_else(wrong)?;
    let a = parse_f32(a.trim(), flag).map_err(|_| wrong())?;
    let b = parse_f32(b.trim(), flag).map_err(|_| wrong())?;
    Ok((a, b))
}

/// The most epochs an example trains for (`--epochs`). A million epochs of even the
/// smallest dataset is years of compute; a bound keeps `epochs x steps per epoch` far from
/// overflowing (at most [`MAX_EPOCHS`] x [`MAX_EXAMPLES`] = 10^14 steps).
pub const MAX_EPOCHS: usize = 1_000_000;

/// The largest minibatch (`--batch-size`): 2^24 examples, above any dataset the examples read
/// (60,000 at most), so that a typo such as `--batch-size 1280000000000` is refused instead of
/// meaning "the whole dataset".
pub const MAX_BATCH_SIZE: usize = 1 << 24;

/// The most examples of a subset (`--train-subset`, `--test-subset`), and the most steps of an
/// epoch (`--steps-per-epoch`: a step takes at least one example): 10^8, over a thousand times
/// the largest dataset the examples read.
pub const MAX_EXAMPLES: usize = 100_000_000;

// The step count of the longest run, epochs x steps per epoch, stays far inside a `u64`.
const _: () = assert!((MAX_EPOCHS as u128) * (MAX_EXAMPLES as u128) < (u64::MAX / 1000) as u128);

/// The most threads a thread-count flag accepts (`--threads`): each is an OS thread with its
/// own stack, and more than the largest machines' core counts only adds switching.
pub const MAX_THREADS: usize = 1024;

/// Parses a whole number from 1 to `max` (steps, epochs, batch sizes, thread counts): every
/// count has a bound, so a huge value is refused here rather than overflowing or exhausting
/// memory later.
pub fn parse_count(value: &str, flag: &str, max: usize) -> Result<usize, CliError> {
    parse_whole(value, flag, 1, max)
}

/// Parses a whole number from `min` to `max`; the error names the range and the value.
pub fn parse_whole(value: &str, flag: &str, min: usize, max: usize) -> Result<usize, CliError> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(CliError::invalid(
            flag,
            format!("expected a whole number from {min} to {max}, got {}", quoted(value)),
        )),
    }
}

/// Parses `--ema DECAY` (torch's exponential moving average of the weights, `DECAY` in
/// `[0, 1]`) or `--average SPEC` (`temporal:BETA2`, `ema:DECAY` or `swa`): which flag `flag`
/// is decides the spelling.
pub fn parse_averaging(value: &str, flag: &str) -> Result<Averaging, CliError> {
    let spec = if flag == "--ema" { format!("ema:{value}") } else { value.to_string() };
    spec.parse::<Averaging>().map_err(|e| CliError::invalid(flag, e.to_string()))
}

/// Parses a seed: any whole number that fits in a `u64`.
pub fn parse_seed(value: &str, flag: &str) -> Result<u64, CliError> {
    value
        .parse()
        .map_err(|_| CliError::invalid(flag, format!("expected a whole number, got {}", quoted(value))))
}

/// The optimizer chosen on a command line: its name and the options given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerArgs {
    /// `--optimizer NAME`; `None` until given.
    pub name: Option<String>,
    /// Every other optimizer flag; unset fields take `torch.optim`'s defaults in [`build`].
    pub options: OptimizerOptions,
}

impl OptimizerArgs {
    /// Recognises the long flag `name` (without its leading `--`, as [`lexopt::Arg::Long`]
    /// gives it) if it is an optimizer flag, reading its value from `parser`.
    ///
    /// Returns `Ok(false)` for a flag that is not an optimizer flag, so the caller can try its
    /// own flags or report it; `Err` for a recognised flag with a missing or bad value.
    pub fn parse_flag(&mut self, name: &str, parser: &mut lexopt::Parser) -> Result<bool, CliError> {
        let flag = format!("--{name}");
        if name == "optimizer" {
            let optimizer = value(parser, &flag)?;
            if !OPTIMIZER_NAMES.contains(&optimizer.as_str()) {
                return Err(OptionsError::UnknownOptimizer(optimizer).into());
            }
            self.name = Some(optimizer);
            return Ok(true);
        }
        // `--weight-decay` is the table's `weight_decay`; the underscore spelling is not a flag.
        let Some(spec) = OPTIONS.iter().find(|s| !name.contains('_') && s.name == name.replace('-', "_"))
        else {
            return Ok(false);
        };
        let given = match spec.kind {
            OptionKind::Number => OptionValue::Number(parse_f32(&value(parser, &flag)?, &flag)?),
            OptionKind::Pair => {
                let (a, b) = parse_pair(&value(parser, &flag)?, &flag, "0.9,0.999")?;
                OptionValue::Pair(a, b)
            }
            OptionKind::Switch => OptionValue::Switch,
            // The range is checked when the optimizer is built, with the option's own bounds.
            OptionKind::Count => {
                // The whole numbers inside the option's range, so the message names its bounds.
                let r = spec.range;
                let low = if r.low_open { r.low.floor() + 1.0 } else { r.low.ceil() };
                let high = if r.high_closed { r.high.floor() } else { r.high.ceil() - 1.0 };
                let (min, max) = (low.max(0.0) as usize, high.min(u32::MAX as f32) as usize);
                OptionValue::Count(parse_whole(&value(parser, &flag)?, &flag, min, max)? as u32)
            }
            OptionKind::Choice => {
                let word = value(parser, &flag)?;
                let choice = spec.choices.iter().find(|c| **c == word).ok_or_else(|| {
                    CliError::invalid(
                        &flag,
                        format!("expected one of {}, got {}", spec.choices.join(", "), quoted(&word)),
                    )
                })?;
                OptionValue::Choice(choice)
            }
        };
        self.options.set(spec.name, given)?;
        Ok(true)
    }

    /// Makes the optimizer, checking that every option given applies to it and is in range.
    pub fn build(&self) -> Result<Box<dyn Optimizer + Send>, CliError> {
        let name = self.name.as_deref().ok_or_else(|| {
            CliError::invalid(
                "--optimizer",
                format!("missing; expected one of: {}", OPTIMIZER_NAMES.join(", ")),
            )
        })?;
        Ok(build(name, &self.options)?)
    }

    /// The optimizer and the options given, as flags: `sgd --lr 0.01 --momentum 0.9`, or
    /// `adam (defaults)` when none were given. For plot titles and logs.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = vec![self.name.clone().unwrap_or_else(|| "(no optimizer)".to_string())];
        parts.extend(describe_options(&self.options));
        if parts.len() == 1 {
            parts.push("(defaults)".to_string());
        }
        parts.join(" ")
    }
}

/// The options given, as flags in the table's order: `--lr 0.01`, `--amsgrad`.
pub fn describe_options(o: &OptimizerOptions) -> Vec<String> {
    OPTIONS
        .iter()
        .filter_map(|spec| {
            o.get(spec.name).map(|v| match v {
                OptionValue::Switch => spec.flag(),
                v => format!("{} {v}", spec.flag()),
            })
        })
        .collect()
}

/// The value of `r`, or: print `error: <message>` to stderr and exit with status 2 (the
/// usual status for a usage error), without a panic or a backtrace. The message is printed
/// through [`one_line`], so it is one line whatever text it quotes.
pub fn exit_on_error<T>(r: Result<T, impl Display>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            std::process::exit(2)
        }
    }
}

/// Exit status of a run stopped by Ctrl-C or SIGTERM: 128 + SIGINT, what a shell reports
/// for a process Ctrl-C killed, so scripts see the same either way.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The flag Ctrl-C (SIGINT) and SIGTERM set, for [`adamant::train::FitConfig::interrupt`]:
/// the run then finishes its step, writes a checkpoint and stops. The handlers are installed
/// on the first call (and only then, so loading data before it can still be stopped at once
/// by Ctrl-C); from then on a second signal, while the first is being handled, exits at once
/// with status [`EXIT_INTERRUPTED`], so an impatient second Ctrl-C still works.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Order matters: the conditional exit runs first and sees the flag as the previous
            // signal left it, so the first signal only sets it. Registration fails only for
            // signals that cannot be caught, which these two can.
            let _ =
                signal_hook::flag::register_conditional_shutdown(signal, EXIT_INTERRUPTED, Arc::clone(&flag));
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        flag
    }))
}

/// Prints a run's interruption (where its state is saved) as one line on stderr and exits
/// with status [`EXIT_INTERRUPTED`].
pub fn exit_interrupted(e: &TrainError) -> ! {
    eprintln!("{}", one_line(&e.to_string()));
    std::process::exit(EXIT_INTERRUPTED)
}

/// [`exit_on_error`] for a training result: an interruption exits with
/// [`EXIT_INTERRUPTED`] and says where the state is saved; any other error exits with 2.
pub fn exit_on_train_error<T>(r: Result<T, TrainError>) -> T {
    match r {
        Err(e @ TrainError::Interrupted { .. }) => exit_interrupted(&e),
        r => exit_on_error(r),
    }
}

/// `text` with every control character escaped as Rust writes it (`\n`, `\t`, `\u{1b}`):
/// messages quote user input, file names and other libraries' errors, and a newline or a
/// terminal escape in any of them must not break the one-line error.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
