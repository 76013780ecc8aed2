//! Adam's first steps, number by number: the engine of `examples/trace_adam.rs`.
//!
//! [`trace`] minimises the 1-d toy loss `f(x) = x^2 / 2` (gradient `g = x`) twice from the
//! same start with the real [`Adam`] of `adamant::optim`, once with Algorithm 1's bias
//! correction and once without. After every step it reads the optimizer's own moment buffers
//! (`exp_avg` = m, `exp_avg_sq` = v) from [`Optimizer::state_dict`] and measures the update as
//! the parameter before minus the parameter after: nothing printed is recomputed on the side
//! except `m_hat` and `v_hat`, which are the two divisions of Algorithm 1.
//!
//! ```
//! use adamant_lab::trace::{trace, TraceConfig};
//!
//! let rows = trace(&TraceConfig::default());
//! let first = &rows[0];
//! // With correction the first step is lr * sign(g): m_hat = g and v_hat = g^2.
//! assert!((first.corrected.update - 0.01).abs() < 1e-6);
//! // Without it the step is lr (1 - beta1) / sqrt(1 - beta2) = 3.16 lr.
//! assert!((first.uncorrected.update / first.corrected.update - 3.1623).abs() < 1e-3);
//! ```

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adamant::autodiff::{Mode, Param, Tape};
use adamant::optim::{Adam, AdamConfig, Optimizer};
use adamant::tensor::Tensor;

use adamant::tensor::io::write_atomic;

use crate::cli::{self, CliError};
use crate::plot::{line_chart_axes, Series};

/// The most steps a trace takes (`--steps`). The whole table is built before it is printed,
/// at 200 to 330 bytes a step (two 28-byte step records, a 64-byte row and its 120-character
/// line, plus the slack of growing buffers; 30 million steps took 9.8 GB): a million steps
/// peak at about 200 MB and take 3 s, and a million lines is far more than anyone reads.
pub const MAX_STEPS: usize = 1_000_000;

/// Settings of a trace: Adam's hyperparameters, the start point and the number of steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceConfig {
    /// Step size alpha (default `0.01`, small enough that `x` stays positive for 15 steps
    /// in both variants, so `g` hardly changes and the moments are easy to follow).
    pub lr: f32,
    /// Decay rates (beta1, beta2) (default the paper's `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// epsilon (default `1e-8`).
    pub eps: f32,
    /// Where `x` starts (default `1.0`, so the first gradient is 1).
    pub start: f32,
    /// Number of steps (default 15, at most [`MAX_STEPS`]).
    pub steps: usize,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig { lr: 0.01, betas: (0.9, 0.999), eps: 1e-8, start: 1.0, steps: 15 }
    }
}

/// What one variant of Adam did at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepTrace {
    /// The gradient `g_t = x_{t-1}` at the point the step started from.
    pub g: f32,
    /// The first moment `m_t` after the step (the optimizer's `exp_avg`).
    pub m: f32,
    /// The second raw moment `v_t` after the step (the optimizer's `exp_avg_sq`).
    pub v: f32,
    /// `m_t / (1 - beta1^t)`; equal to `m` when the variant has no bias correction.
    pub m_hat: f32,
    /// `v_t / (1 - beta2^t)`; equal to `v` when the variant has no bias correction.
    pub v_hat: f32,
    /// `x_{t-1} - x_t`: how far the real optimizer moved the parameter.
    pub update: f32,
    /// `x_t`, the parameter after the step.
    pub x: f32,
}

/// Step `t` (1-based) of both variants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRow {
    /// The step number, as in Algorithm 1 (`t <- t + 1` before the update, so the first is 1).
    pub t: usize,
    /// Adam with bias correction (Algorithm 1).
    pub corrected: StepTrace,
    /// Adam without bias correction (`bias_correction: false`).
    pub uncorrected: StepTrace,
}

/// The toy loss `x^2 / 2` on a tape; its gradient is `x`.
fn loss_and_grad(x: &Param) -> adamant::autodiff::Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let loss = tape.param(x).square().sum() * 0.5;
    loss.backward()
}

/// Runs one variant for `config.steps` steps and records each.
fn run_variant(config: &TraceConfig, bias_correction: bool) -> Vec<StepTrace> {
    let (beta1, beta2) = config.betas;
    let mut adam = Adam::new(AdamConfig {
        lr: config.lr,
        betas: config.betas,
        eps: config.eps,
        bias_correction,
        ..AdamConfig::default()
    });
    let mut x = Param::new("x", Tensor::from_vec(vec![config.start], &[1]));
    let mut rows = Vec::with_capacity(config.steps);
    for t in 1..=config.steps {
        let grads = loss_and_grad(&x);
        let g = grads.get(&x).expect("x has a gradient").data()[0];
        let before = x.value().data()[0];
        adam.step(&mut [&mut x], &grads);
        let after = x.value().data()[0];
        // m and v exactly as the optimizer stores them.
        let state = adam.state_dict();
        let buffers = &state.params["x"].buffers;
        let (m, v) = (buffers["exp_avg"].data()[0], buffers["exp_avg_sq"].data()[0]);
        let (m_hat, v_hat) = if bias_correction {
            // Algorithm 1's corrections, in f64 like the optimizer's own coefficients.
            let bc1 = 1.0 - (beta1 as f64).powi(t as i32);
            let bc2 = 1.0 - (beta2 as f64).powi(t as i32);
            ((m as f64 / bc1) as f32, (v as f64 / bc2) as f32)
        } else {
            (m, v)
        };
        rows.push(StepTrace { g, m, v, m_hat, v_hat, update: before - after, x: after });
    }
    rows
}

/// Both variants of Adam on `x^2 / 2`, step by step.
pub fn trace(config: &TraceConfig) -> Vec<TraceRow> {
    let corrected = run_variant(config, true);
    let uncorrected = run_variant(config, false);
    corrected
        .into_iter()
        .zip(uncorrected)
        .enumerate()
        .map(|(i, (corrected, uncorrected))| TraceRow { t: i + 1, corrected, uncorrected })
        .collect()
}

/// The trace as the example prints it: a header naming the settings, then one line per step
/// with the corrected variant's `g m v m_hat v_hat update`, the uncorrected variant's
/// `g m v update`, and the ratio of the two updates.
pub fn format_table(config: &TraceConfig, rows: &[TraceRow]) -> String {
    let (beta1, beta2) = config.betas;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "Adam on f(x) = x^2/2 (g = x) from x = {}, lr {}, beta1 {beta1}, beta2 {beta2}, eps {:e}",
        config.start, config.lr, config.eps
    );
    let _ = writeln!(
        s,
        "update = x before - x after, as the optimizer moved it; without correction m_hat = m, v_hat = v"
    );
    let _ = writeln!(
        s,
        "{:>3} | {:^59} | {:^39} | {:>6}",
        "", "with bias correction (Algorithm 1)", "without bias correction", "ratio"
    );
    let _ = writeln!(
        s,
        "{:>3} | {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9} | {:>6}",
        "t", "g", "m", "v", "m_hat", "v_hat", "update", "g", "m", "v", "update", "un/cor"
    );
    for r in rows {
        let (c, u) = (&r.corrected, &r.uncorrected);
        let ratio = if c.update != 0.0 { u.update / c.update } else { f32::NAN };
        let _ = writeln!(
            s,
            "{:>3} | {:>9.6} {:>9.6} {:>9.6} {:>9.6} {:>9.6} {:>9.6} | {:>9.6} {:>9.6} {:>9.6} {:>9.6} | {:>6.3}",
            r.t, c.g, c.m, c.v, c.m_hat, c.v_hat, c.update, u.g, u.m, u.v, u.update, ratio
        );
    }
    if let Some(last) = rows.last() {
        let _ = writeln!(
            s,
            "after {} steps: x = {:.6} with correction, {:.6} without",
            last.t, last.corrected.x, last.uncorrected.x
        );
    }
    s
}

/// The `beta2` values of the ratio figure (`--ratio-svg`): a short, the paper's default and
/// the VAE study's long memory.
pub const RATIO_BETA2S: [f32; 3] = [0.99, 0.999, 0.9999];

/// The last step of the ratio figure: by `t = 10^5` even `beta2 = 0.9999` has forgotten its
/// zero start (`beta2^t = e^-10`).
pub const RATIO_LAST_STEP: u64 = 100_000;

/// The uncorrected step over the corrected one at step `t` under a constant gradient:
/// `(1 - beta1^t) / sqrt(1 - beta2^t)`, in `f64` like the optimizer's own coefficients.
pub fn step_ratio(betas: (f32, f32), t: u64) -> f64 {
    let t = t.min(i32::MAX as u64) as i32;
    (1.0 - (betas.0 as f64).powi(t)) / (1.0 - (betas.1 as f64).powi(t)).sqrt()
}

/// The steps the figure samples: every `t` up to 100, then 100 per decade (log-spaced), up to
/// [`RATIO_LAST_STEP`]. Enough for a smooth curve on a log axis, and a small SVG.
fn ratio_steps() -> Vec<u64> {
    let mut ts: Vec<u64> = (1..=100).collect();
    for k in 201..=500 {
        let t = 10f64.powf(k as f64 / 100.0).round() as u64;
        if t > *ts.last().expect("not empty") {
            ts.push(t);
        }
    }
    ts
}

/// The ratio [`step_ratio`] against `t` (log axis) for each of [`RATIO_BETA2S`] with `beta1`,
/// as SVG text.
pub fn ratio_svg(beta1: f32) -> Result<String, String> {
    let steps = ratio_steps();
    let series: Vec<Series> = RATIO_BETA2S
        .iter()
        .map(|&beta2| Series {
            label: format!("beta2 = {beta2}"),
            points: steps.iter().map(|&t| (t as f64, step_ratio((beta1, beta2), t))).collect(),
        })
        .collect();
    let title = format!("Uncorrected over corrected Adam step, constant gradient, beta1 = {beta1}");
    line_chart_axes(&title, "step t", "(1 - beta1^t) / sqrt(1 - beta2^t)", &series, true, false)
}

/// One line per `beta2` of [`RATIO_BETA2S`]: the ratio at `t = 1, 10, 100, 1000, 10000` and its
/// peak, the numbers the figure shows.
pub fn ratio_summary(beta1: f32) -> String {
    let mut s = format!("uncorrected / corrected step, constant gradient, beta1 {beta1}\n");
    for beta2 in RATIO_BETA2S {
        let at = |t| step_ratio((beta1, beta2), t);
        let peak = (1..=RATIO_LAST_STEP).max_by(|&a, &b| at(a).total_cmp(&at(b))).expect("not empty");
        let _ = writeln!(
            s,
            "beta2 {beta2}: t=1 {:.3}, t=10 {:.3}, t=100 {:.3}, t=1000 {:.3}, t=10000 {:.3}; peak {:.3} at t={peak}",
            at(1),
            at(10),
            at(100),
            at(1000),
            at(10_000),
            at(peak)
        );
    }
    s
}

/// Draws [`ratio_svg`] to `path` (checked writable first, written atomically) and returns
/// [`ratio_summary`]; the error is one line naming `--ratio-svg`.
pub fn write_ratio_svg(beta1: f32, path: &Path) -> Result<String, String> {
    cli::check_out_file("--ratio-svg", path).map_err(|e| e.to_string())?;
    let fail = |reason: String| format!("--ratio-svg: cannot write {}: {reason}", cli::quote_path(path));
    let svg = ratio_svg(beta1).map_err(fail)?;
    write_atomic(path, svg.as_bytes()).map_err(|e| fail(e.to_string()))?;
    Ok(ratio_summary(beta1))
}

/// The usage text of `examples/trace_adam.rs`.
pub const USAGE: &str = "\
Prints Adam's g, m, v, m_hat, v_hat and update at each step on f(x) = x^2/2, with and
without bias correction side by side.

Usage: cargo run --release --example trace_adam -- [options]

Options:
  --lr F        step size alpha (default 0.01)
  --beta1 F     first-moment decay rate, in [0, 1) (default 0.9)
  --beta2 F     second-moment decay rate, in [0, 1) (default 0.999)
  --eps F       epsilon, >= 0 (default 1e-8)
  --start X     starting point (default 1)
  --steps N     number of steps, 1 to 1000000 (default 15)
  --ratio-svg FILE
                instead of the table, draw the ratio of the uncorrected to the corrected step
                under a constant gradient, (1 - beta1^t) / sqrt(1 - beta2^t), against t from 1
                to 100000 for beta2 = 0.99, 0.999, 0.9999 and --beta1, to FILE, and print it at
                a few t (its directory must exist)
  -h, --help    this text
";

/// What the command line of `examples/trace_adam.rs` asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `--help`: print [`USAGE`].
    Help,
    /// Print a trace with these settings.
    Run(TraceConfig),
    /// `--ratio-svg FILE`: draw [`ratio_svg`] for this `beta1` to the file.
    Ratio {
        /// `--beta1` (default 0.9).
        beta1: f32,
        /// The `--ratio-svg` file.
        path: PathBuf,
    },
}

/// Parses a decay rate, which must lie in `[0, 1)` for the moving averages to forget.
fn parse_beta(value: &str, flag: &str) -> Result<f32, CliError> {
    let beta = cli::parse_f32(value, flag)?;
    if !(0.0..1.0).contains(&beta) {
        return Err(CliError::invalid(flag, format!("expected a number in [0, 1), got '{value}'")));
    }
    Ok(beta)
}

/// Parses a number that must not be negative (`--lr`, `--eps`).
fn parse_non_negative(value: &str, flag: &str) -> Result<f32, CliError> {
    let x = cli::parse_f32(value, flag)?;
    if x < 0.0 {
        return Err(CliError::invalid(flag, format!("expected a number >= 0, got '{value}'")));
    }
    Ok(x)
}

/// Parses the example's arguments (without the program name); every error is one line
/// naming the flag.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::Arg::{Long, Short};
    let mut parser = lexopt::Parser::from_args(args);
    let mut config = TraceConfig::default();
    let mut ratio_svg = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("lr") => config.lr = parse_non_negative(&cli::value(&mut parser, "--lr")?, "--lr")?,
            Long("beta1") => config.betas.0 = parse_beta(&cli::value(&mut parser, "--beta1")?, "--beta1")?,
            Long("beta2") => config.betas.1 = parse_beta(&cli::value(&mut parser, "--beta2")?, "--beta2")?,
            Long("eps") => config.eps = parse_non_negative(&cli::value(&mut parser, "--eps")?, "--eps")?,
            Long("start") => config.start = cli::parse_f32(&cli::value(&mut parser, "--start")?, "--start")?,
            Long("steps") => {
                config.steps = cli::parse_count(&cli::value(&mut parser, "--steps")?, "--steps", MAX_STEPS)?
            }
            Long("ratio-svg") => ratio_svg = Some(cli::path_value(&mut parser, "--ratio-svg")?),
            other => return Err(cli::unexpected(other)),
        }
    }
    Ok(match ratio_svg {
        Some(path) => Command::Ratio { beta1: config.betas.0, path },
        None => Command::Run(config),
    })
}
