//! The paper's bias-correction study (section 6.4, figure 4): a variational autoencoder on
//! MNIST (784-500 softplus -> 50-d Gaussian latent -> 500 softplus -> 784 Bernoulli logits),
//! trained with Adam over a grid of beta1, beta2 and step sizes, with and without bias
//! correction. The paper's finding: without bias correction, beta2 close to 1 with a large
//! step size is unstable or clearly worse, because the second-moment estimate starts near
//! zero and the first steps are far too large.
//!
//! ```text
//! cargo run --release --example mnist_vae -- --quick            # small grid, minutes
//! cargo run --release --example mnist_vae -- --epochs 10        # the full grid (figure 4, 10 epochs)
//! cargo run --release --example mnist_vae -- --reduced --epochs 100 --resume   # beta1 0.9, three beta2, two alphas
//! ```
//!
//! Each finished run is appended to `OUT/mnist_vae_runs.csv`; with `--resume` finished runs
//! are skipped and an interrupted one continues from its checkpoint, so the long grids can
//! be spread over several sessions. `--shard K/N` runs every N-th setting from the K-th, so
//! N processes (or machines sharing OUT) can split a grid; a final run with `--resume` and no
//! `--shard` collects their results and draws the plot. `OUT/mnist_vae.svg` plots the final
//! loss against log10(alpha), one line per (beta1, beta2), with and without bias correction.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adamant::autodiff::Var;
use adamant::checkpoint::RunIdentity;
use adamant::data;
use adamant::layers::nets::Vae;
use adamant::optim::{Adam, AdamConfig};
use adamant::tensor::rng::{self, Purpose};
use adamant::train::{fit, FitConfig, StepOutput, Task};
use adamant_lab::cli::{self, exit_on_error, CliError};
use adamant_lab::lexopt::prelude::*;
use adamant_lab::plot::{line_chart, Series};

/// The VAE's negative evidence lower bound per example (no accuracy).
struct VaeLoss;

impl Task<Vae> for VaeLoss {
    fn forward<'t>(&self, model: &Vae, images: Var<'t>, _labels: &[usize]) -> StepOutput<'t> {
        StepOutput { loss: model.loss(images), logits: None }
    }
}

/// One point of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Setting {
    beta1: f32,
    beta2: f32,
    log10_lr: f32,
    bias_correction: bool,
}

impl Setting {
    fn key(&self) -> String {
        format!(
            "b1_{}_b2_{}_lr_{}_{}",
            self.beta1,
            self.beta2,
            self.log10_lr,
            if self.bias_correction { "bc" } else { "nobc" }
        )
    }
}

fn grid(beta1s: &[f32], beta2s: &[f32], log10_lrs: &[f32]) -> Vec<Setting> {
    let mut out = vec![];
    for &bias_correction in &[true, false] {
        for &beta1 in beta1s {
            for &beta2 in beta2s {
                for &log10_lr in log10_lrs {
                    out.push(Setting { beta1, beta2, log10_lr, bias_correction });
                }
            }
        }
    }
    out
}

struct Args {
    epochs: Option<usize>,
    batch_size: usize,
    seed: u64,
    data: Option<PathBuf>,
    out: PathBuf,
    json: bool,
    resume: bool,
    quick: bool,
    reduced: bool,
    train_subset: Option<usize>,
    /// `--shard K/N`: only the settings whose index is K modulo N.
    shard: Option<(usize, usize)>,
    /// `--tensorboard DIR`: one TensorBoard run per grid point, `DIR/vae_<key>`.
    tensorboard: Option<PathBuf>,
    /// `--log-every N`
    log_every: Option<u64>,
    /// `--log-optimizer-state`
    log_optimizer_state: bool,
    /// `--distributed`: every grid point trained data-parallel over MPI.
    distributed: bool,
}

const USAGE: &str = "\
mnist_vae: the paper's bias-correction study (figure 4): a VAE on MNIST trained with Adam over
beta1 x beta2 x step size, with and without bias correction.

Usage: cargo run --release --example mnist_vae -- [options]
  --quick               beta1 0.9, beta2 {0.99, 0.9999}, log10(alpha) {-3, -2}, 2 epochs on 10,000 images
  --reduced             beta1 0.9, beta2 {0.99, 0.999, 0.9999}, log10(alpha) {-3, -2} (the paper's 100-epoch plot)
  (default)             the full grid: beta1 {0, 0.9} x beta2 {0.99, 0.999, 0.9999} x log10(alpha) {-5, -4, -3, -2, -1}
  --epochs N            (default 10; --quick 2; at most 1000000)
  --batch-size B        (default 128; at most 16777216)
  --seed S              (default 0)
  --data DIR            directory holding the MNIST files
  --out DIR             (default runs/mnist_vae; created and checked writable first)
  --train-subset N      train on the first N images (at most 100000000)
  --resume              skip finished runs, continue an interrupted one from its checkpoint
  --shard K/N           run only settings K, K+N, K+2N, ... (0 <= K < N <= 1024) and record them in
                        OUT/mnist_vae_runs_shardKofN.csv; collect and plot with --resume, no --shard
  --json                print one final JSON line
  --tensorboard DIR     write TensorBoard event files, one run per grid point in DIR/vae_<key>
                        (tensorboard --logdir DIR): loss, lr, step time, histograms, test loss
  --log-every N         log to TensorBoard every N steps (default 10; step 1 always)
  --log-optimizer-state also log Adam's internals per layer (moments, bias corrections, step sizes)
  --distributed         data-parallel training over MPI, one process per rank (mpirun -n N; a
                        build with --features mpi); rank 0 writes the runs file and the plot
Every run uses Adam with eps 1e-8 and no weight decay; only beta1, beta2, alpha and the
bias correction change.";

fn parse() -> Result<Option<Args>, CliError> {
    let mut p = adamant_lab::lexopt::Parser::from_env();
    let mut a = Args {
        epochs: None,
        batch_size: 128,
        seed: 0,
        data: None,
        out: PathBuf::from("runs/mnist_vae"),
        json: false,
        resume: false,
        quick: false,
        reduced: false,
        train_subset: None,
        shard: None,
        tensorboard: None,
        log_every: None,
        log_optimizer_state: false,
        distributed: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("epochs") => {
                a.epochs =
                    Some(cli::parse_count(&cli::value(&mut p, "--epochs")?, "--epochs", cli::MAX_EPOCHS)?)
            }
            Long("batch-size") => {
                let v = cli::value(&mut p, "--batch-size")?;
                a.batch_size = cli::parse_count(&v, "--batch-size", cli::MAX_BATCH_SIZE)?
            }
            Long("seed") => a.seed = cli::parse_seed(&cli::value(&mut p, "--seed")?, "--seed")?,
            Long("data") => {
                let dir = cli::path_value(&mut p, "--data")?;
                if !dir.is_dir() {
                    return Err(CliError::invalid(
                        "--data",
                        format!("{} is not a directory", cli::quote_path(&dir)),
                    ));
                }
                a.data = Some(dir);
            }
            Long("out") => a.out = cli::path_value(&mut p, "--out")?,
            Long("train-subset") => {
                let v = cli::value(&mut p, "--train-subset")?;
                a.train_subset = Some(cli::parse_count(&v, "--train-subset", cli::MAX_EXAMPLES)?)
            }
            Long("json") => a.json = true,
            Long("resume") => a.resume = true,
            Long("quick") => a.quick = true,
            Long("reduced") => a.reduced = true,
            Long("shard") => a.shard = Some(cli::parse_shard(&cli::value(&mut p, "--shard")?)?),
            Long("tensorboard") => a.tensorboard = Some(cli::path_value(&mut p, "--tensorboard")?),
            Long("log-every") => {
                let v = cli::value(&mut p, "--log-every")?;
                a.log_every = Some(cli::parse_whole(&v, "--log-every", 1, cli::MAX_EXAMPLES)? as u64)
            }
            Long("log-optimizer-state") => a.log_optimizer_state = true,
            Long("distributed") => a.distributed = true,
            other => return Err(cli::unexpected(other)),
        }
    }
    cli::check_tensorboard_flags(a.tensorboard.as_deref(), a.log_every, a.log_optimizer_state)?;
    Ok(Some(a))
}

/// The runs file of a whole sweep (`shard = None`) or of one shard of it.
fn runs_file(out: &Path, shard: Option<(usize, usize)>) -> PathBuf {
    match shard {
        None => out.join("mnist_vae_runs.csv"),
        Some((k, n)) => out.join(format!("mnist_vae_runs_shard{k}of{n}.csv")),
    }
}

/// Finished runs recorded in `OUT/mnist_vae_runs.csv` and in any shard's runs file:
/// key -> (epochs, final train loss, test loss).
fn finished(out: &Path) -> Vec<(String, usize, f64, f64)> {
    let Ok(entries) = std::fs::read_dir(out) else { return vec![] };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("mnist_vae_runs") && name.ends_with(".csv")
        })
        .collect();
    files.sort();
    files.iter().flat_map(|f| finished_in(f)).collect()
}

/// The runs recorded in one runs file.
fn finished_in(path: &Path) -> Vec<(String, usize, f64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return vec![] };
    let parse = |line: &str| -> Option<(String, usize, f64, f64)> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            return None;
        }
        Some((f[0].to_string(), f[5].parse().ok()?, f[6].parse().ok()?, f[7].parse().ok()?))
    };
    text.lines().skip(1).filter_map(parse).collect()
}

fn main() {
    let Some(args) = exit_on_error(parse()) else {
        println!("{USAGE}");
        return;
    };
    let (settings, default_epochs, default_subset) = if args.quick {
        (grid(&[0.9], &[0.99, 0.9999], &[-3.0, -2.0]), 2, Some(10_000))
    } else if args.reduced {
        (grid(&[0.9], &[0.99, 0.999, 0.9999], &[-3.0, -2.0]), 100, None)
    } else {
        (grid(&[0.0, 0.9], &[0.99, 0.999, 0.9999], &[-5.0, -4.0, -3.0, -2.0, -1.0]), 10, None)
    };
    let epochs = args.epochs.unwrap_or(default_epochs);
    // With --distributed every rank runs this program; rank 0 alone writes and prints.
    let world = args.distributed.then(|| exit_on_error(adamant::distributed::mpi_world()));
    let rank0 = world.as_ref().is_none_or(|w| w.rank() == 0);
    if rank0 {
        exit_on_error(cli::check_out_dir("--out", &args.out));
    }
    let mut splits = exit_on_error(data::load(&data::MNIST, args.data.as_deref(), true));
    if let Some(n) = args.train_subset.or(default_subset) {
        splits.train = splits.train.take(n);
    }
    let runs_path = runs_file(&args.out, args.shard);
    let mut done = if args.resume { finished(&args.out) } else { vec![] };
    done.retain(|(_, e, _, _)| *e == epochs);
    let mut csv = String::from("key,beta1,beta2,log10_lr,bias_correction,epochs,train_loss,test_loss\n");
    let started = std::time::Instant::now();
    let mut results: Vec<(Setting, f64)> = vec![];
    for (i, s) in settings.iter().enumerate() {
        if args.shard.is_some_and(|(k, n)| i % n != k) {
            continue;
        }
        let key = s.key();
        let (train_loss, test_loss) = match done.iter().find(|d| d.0 == key) {
            Some(d) => (d.2, d.3),
            None => {
                let mut model = Vae::new(&mut rng::stream(args.seed, Purpose::Init, 0));
                let mut adam = Adam::new(AdamConfig {
                    lr: 10f32.powf(s.log10_lr),
                    betas: (s.beta1, s.beta2),
                    bias_correction: s.bias_correction,
                    ..Default::default()
                });
                let name = format!("vae_{key}");
                let tensorboard = cli::tensorboard_run(
                    args.tensorboard.as_deref(),
                    &name,
                    args.log_every,
                    args.log_optimizer_state,
                );
                let config = FitConfig {
                    name,
                    tensorboard,
                    epochs,
                    batch_size: args.batch_size,
                    seed: args.seed,
                    out_dir: Some(args.out.join("runs")),
                    resume: args.resume,
                    progress: !args.json,
                    // The grid point beyond the rate (which `fit` records itself).
                    identity: RunIdentity::new()
                        .with("betas", format!("{},{}", s.beta1, s.beta2))
                        .with("bias_correction", s.bias_correction),
                    interrupt: Some(cli::interrupt_flag()),
                    distributed: world.clone(),
                    ..Default::default()
                };
                match fit(&mut model, &VaeLoss, &mut adam, None, &splits.train, &splits.test, &config) {
                    Ok(h) => {
                        let last = h.last().expect("at least one epoch");
                        (last.train_loss, last.test_loss)
                    }
                    // Divergence is a result here (the paper's point), not a failure.
                    Err(adamant::train::TrainError::NonFinite { .. }) => (f64::NAN, f64::NAN),
                    Err(e) => cli::exit_on_train_error(Err(e)),
                }
            }
        };
        if !args.json && rank0 {
            println!(
                "[{}/{}] beta1 {} beta2 {} log10(alpha) {} {}: train loss {:.2}, test loss {:.2}",
                i + 1,
                settings.len(),
                s.beta1,
                s.beta2,
                s.log10_lr,
                if s.bias_correction { "with bias correction" } else { "without bias correction" },
                train_loss,
                test_loss
            );
        }
        let _ = writeln!(
            csv,
            "{key},{},{},{},{},{epochs},{train_loss},{test_loss}",
            s.beta1, s.beta2, s.log10_lr, s.bias_correction
        );
        // Written after every run: an interrupted sweep resumes from here.
        if rank0 {
            exit_on_error(
                adamant::tensor::io::write_atomic(&runs_path, csv.as_bytes())
                    .map_err(|e| format!("{}: {e}", runs_path.display())),
            );
        }
        results.push((*s, train_loss));
    }

    if !rank0 {
        return;
    }
    // A shard holds part of the grid: the plot is drawn by the run that collects all shards.
    let svg_path = if args.shard.is_none() { Some(plot_figure4(&results, epochs, &args.out)) } else { None };
    if args.json {
        let best = results.iter().filter(|r| r.1.is_finite()).min_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        println!(
            "{{\"experiment\": \"mnist_vae\", \"optimizer\": \"adam\", \"epochs\": {epochs}, \"train_loss\": {}, \
             \"test_loss\": null, \"test_accuracy\": null, \"seconds\": {}}}",
            best.map_or("null".to_string(), |b| b.1.to_string()),
            started.elapsed().as_secs_f64()
        );
    } else if let Some(svg_path) = svg_path {
        println!("runs: {}\nplot: {}", runs_path.display(), svg_path.display());
    } else {
        println!(
            "runs: {}\nshard done: run again with --resume and without --shard to collect and plot",
            runs_path.display()
        );
    }
}

/// Figure 4: loss after `epochs` against log10(alpha), one line per (beta1, beta2, bias
/// correction), written to `OUT/mnist_vae.svg`. A diverged run (NaN) is plotted at the top of
/// the chart as a cross-out.
fn plot_figure4(results: &[(Setting, f64)], epochs: usize, out: &Path) -> PathBuf {
    let worst = results.iter().map(|r| r.1).filter(|l| l.is_finite()).fold(0.0f64, f64::max);
    let mut series = vec![];
    for bc in [true, false] {
        let mut pairs: Vec<(f32, f32)> = results.iter().map(|r| (r.0.beta1, r.0.beta2)).collect();
        pairs.dedup();
        pairs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        pairs.dedup();
        for (b1, b2) in pairs {
            let points: Vec<(f64, f64)> = results
                .iter()
                .filter(|r| r.0.bias_correction == bc && r.0.beta1 == b1 && r.0.beta2 == b2)
                .map(|r| (r.0.log10_lr as f64, if r.1.is_finite() { r.1 } else { worst * 1.5 }))
                .collect();
            let label = format!("b1={b1} b2={b2} {}", if bc { "bias-corrected" } else { "NO correction" });
            series.push(Series { label, points });
        }
    }
    let svg = exit_on_error(line_chart(
        &format!("VAE on MNIST: training loss after {epochs} epochs (diverged runs at the top)"),
        "log10(step size alpha)",
        "loss (negative ELBO per example)",
        &series,
        false,
    ));
    let svg_path = out.join("mnist_vae.svg");
    exit_on_error(
        adamant::tensor::io::write_atomic(&svg_path, svg.as_bytes())
            .map_err(|e| format!("{}: {e}", svg_path.display())),
    );
    svg_path
}
