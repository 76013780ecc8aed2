//! The training-step benchmark: the paper's nets timed exactly as PyTorch times them.
//!
//! PyTorch's reference script `torch_paper_nets.py` (kept outside this repository;
//! `bench/compare_pytorch.sh` runs it from `$TORCH_PAPER_NETS`) is the reference: batch 128, `f32`, one fixed batch of
//! synthetic data of the right shape, PyTorch's default initialisation, `Adam(lr=1e-3)`, and
//! per net `warmup` untimed steps followed by `steps` timed ones. This module measures the
//! same thing on adamant's own data path (one training step as `adamant::train` takes it),
//! so the two can be compared net by net and ratio by ratio:
//!
//! ```text
//! forward  = fresh Tape + batch as constant + model forward + loss
//! backward = loss.backward() + dropping the tape (PyTorch frees its graph inside backward)
//! opt      = Adam's in-place step + dropping the gradients
//! ```
//!
//! GFLOP/s uses the reference script's analytic count: the GEMM/convolution FLOPs of the
//! forward pass, the weight gradients and the input gradients, without the first layer's
//! input gradient (nobody needs it). Elementwise work (activations, dropout, pooling, Adam)
//! is not counted, so small nets look slow in GFLOP/s by construction.
//!
//! The net `char_gpt` is issue 22's character-level GPT, timed against its own reference,
//! `torch_char_gpt.py --time-steps N` (see [`char_gpt`]): batch 12, and a step that also
//! clips the gradients, takes AdamW's step and updates an EMA of the weights.
//!
//! `examples/bench.rs` is the command line; [`parse_args`] and [`run`] are here so tests can
//! call them.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Instant;

use adamant::autodiff::{Mode, Tape, Var};
use adamant::layers::nets::{self, GptConfig, Vae};
use adamant::layers::{Module, Params, Sequential};
use adamant::optim::{Adam, AdamConfig, Optimizer};
use adamant::tensor::kernels::parallel::run_in_pool;
use adamant::tensor::rng::{self, seeded, Purpose};
use adamant::tensor::{Precision, Tensor};

use crate::cli::{self, CliError};
use char_gpt::Phases;

pub mod char_gpt;

/// Minibatch size of the paper's nets, as in the reference script ([`Net::batch`] gives each
/// net's).
pub const BATCH: usize = 128;

/// Untimed steps before the timed ones (page faults, thread pool start-up, Adam's state).
pub const DEFAULT_WARMUP: usize = 3;

/// The most timed steps (`--steps`) and the most warm-up steps (`--warmup`) of a net. A
/// median is steady after a few hundred steps; a million logistic-regression steps already
/// take minutes, the CNN's days. Each step keeps 36 bytes of timings and loss, so the bound
/// also caps that memory at 36 MB, and `warmup + steps` cannot overflow.
pub const MAX_STEPS: usize = 1_000_000;

/// One of the benchmarked networks (the reference script's `NETS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// Logistic regression 784 -> 10.
    LogReg,
    /// 784-1000-1000-10 ReLU with dropout 0.2 on the input and 0.5 on both hidden layers.
    Mlp,
    /// The same MLP without dropout (isolates what the three masks cost).
    MlpNoDrop,
    /// c64-c64-c128-1000 on 3x32x32 (CIFAR-10 shapes).
    Cnn,
    /// 784-500-50-500-784 VAE with a Bernoulli decoder.
    Vae,
    /// Issue 22's character-level GPT (811,520 parameters) with the AdamW recipe, batch 12.
    CharGpt,
}

impl Net {
    /// Every net: the reference script's, in its order, then `char_gpt`.
    pub const ALL: [Net; 6] = [Net::LogReg, Net::Mlp, Net::MlpNoDrop, Net::Cnn, Net::Vae, Net::CharGpt];

    /// The name on the command line and in the JSON (`logreg`, `mlp`, `mlp_nodrop`, `cnn`,
    /// `vae`, `char_gpt`).
    pub fn name(self) -> &'static str {
        match self {
            Net::LogReg => "logreg",
            Net::Mlp => "mlp",
            Net::MlpNoDrop => "mlp_nodrop",
            Net::Cnn => "cnn",
            Net::Vae => "vae",
            Net::CharGpt => "char_gpt",
        }
    }

    /// Timed steps when `--steps` is not given: the reference script's `default_steps`,
    /// about a second or two of work per net.
    pub fn default_steps(self) -> usize {
        match self {
            Net::LogReg => 300,
            Net::Mlp | Net::MlpNoDrop => 60,
            Net::Cnn => 12,
            Net::Vae => 150,
            Net::CharGpt => 30,
        }
    }

    /// Examples per step: [`BATCH`], or 12 windows for `char_gpt` as its reference.
    pub fn batch(self) -> usize {
        match self {
            Net::CharGpt => char_gpt::BATCH,
            _ => BATCH,
        }
    }

    /// The dataset whose shapes the net takes (`mnist`, `cifar10` or `shakespeare`).
    pub fn dataset(self) -> &'static str {
        match self {
            Net::Cnn => "cifar10",
            Net::CharGpt => "shakespeare",
            _ => "mnist",
        }
    }

    /// Training examples per epoch of [`Net::dataset`], for the seconds-per-epoch estimate
    /// (for `char_gpt`, the 64-character windows that cover the training split once).
    pub fn epoch_examples(self) -> usize {
        match self {
            Net::Cnn => 50_000,
            Net::CharGpt => char_gpt::TRAIN_CHARS / GptConfig::default().block,
            _ => 60_000,
        }
    }

    /// Floating-point operations of one training step at batch `b`, counted as the reference
    /// script's `flops(b)`: forward + weight gradient + input gradient of every GEMM or
    /// convolution, minus the input gradient of the first layer.
    pub fn flops(self, b: usize) -> f64 {
        let b = b as f64;
        match self {
            Net::LogReg => 2.0 * b * 784.0 * 10.0 * 2.0,
            Net::Mlp | Net::MlpNoDrop => {
                let fwd = 2.0 * b * (784.0 * 1000.0 + 1000.0 * 1000.0 + 1000.0 * 10.0);
                3.0 * fwd - 2.0 * b * 784.0 * 1000.0
            }
            Net::Cnn => {
                // (output pixels, C_in * k * k, C_out) of each convolution; (in, out) of each FC.
                let conv = [
                    (32.0 * 32.0, 3.0 * 25.0, 64.0),
                    (16.0 * 16.0, 64.0 * 25.0, 64.0),
                    (8.0 * 8.0, 64.0 * 25.0, 128.0),
                ];
                let fc = [(2048.0, 1000.0), (1000.0, 10.0)];
                let fwd = conv.iter().map(|(hw, k, co)| 2.0 * b * hw * k * co).sum::<f64>()
                    + fc.iter().map(|(i, o)| 2.0 * b * i * o).sum::<f64>();
                3.0 * fwd - 2.0 * b * 32.0 * 32.0 * 75.0 * 64.0
            }
            Net::Vae => {
                let fwd = 2.0 * b * (784.0 * 500.0 + 500.0 * 50.0 * 2.0 + 50.0 * 500.0 + 500.0 * 784.0);
                3.0 * fwd - 2.0 * b * 784.0 * 500.0
            }
            Net::CharGpt => char_gpt::flops(GptConfig::default(), b as usize),
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Net {
    type Err = CliError;

    fn from_str(name: &str) -> Result<Net, CliError> {
        Net::ALL.into_iter().find(|n| n.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Net::ALL.iter().map(|n| n.name()).collect();
            CliError::invalid(
                "--nets",
                format!("unknown net '{}' (expected one of: {})", name.escape_debug(), names.join(", ")),
            )
        })
    }
}

/// A benchmarked paper net: the four classifiers are `Sequential`s, the VAE has its own loss.
enum Model {
    Classifier(Sequential),
    // Boxed: the five dense layers are much larger than a `Sequential` (clippy::large_enum_variant).
    Vae(Box<Vae>),
}

impl Model {
    /// The net with PyTorch's default initialisation drawn from `seed`; `None` for
    /// `char_gpt`, which [`char_gpt::CharGpt`] builds with its optimizer.
    fn new(net: Net, seed: u64) -> Option<Model> {
        let rng = &mut rng::stream(seed, Purpose::Init, 0);
        Some(match net {
            Net::LogReg => Model::Classifier(nets::logistic_regression(rng)),
            Net::Mlp => Model::Classifier(nets::mlp(rng)),
            Net::MlpNoDrop => Model::Classifier(nets::mlp_without_dropout(rng)),
            Net::Cnn => Model::Classifier(nets::cnn(rng)),
            Net::Vae => Model::Vae(Box::new(Vae::new(rng))),
            Net::CharGpt => return None,
        })
    }

    /// The reference script's `loss_fn`: softmax cross-entropy, or the VAE's negative ELBO.
    fn loss<'t>(&self, x: Var<'t>, labels: &[usize]) -> Var<'t> {
        match self {
            Model::Classifier(m) => m.forward(x).cross_entropy(labels),
            Model::Vae(v) => v.loss(x),
        }
    }

    fn module(&self) -> &dyn Module {
        match self {
            Model::Classifier(m) => m,
            Model::Vae(v) => v,
        }
    }

    fn module_mut(&mut self) -> &mut dyn Module {
        match self {
            Model::Classifier(m) => m,
            Model::Vae(v) => v,
        }
    }
}

/// One fixed batch of the net's input shape, as the reference script's `make_batch` draws it
/// (the values differ, being another generator; the distributions are the same).
fn make_batch(net: Net, seed: u64) -> (Tensor, Vec<usize>) {
    let rng = &mut seeded(seed);
    let images = match net {
        Net::Cnn => Tensor::randn(&[BATCH, 3, 32, 32], 0.0, 1.0, rng),
        // Binarised MNIST-like pixels: the VAE's targets are the inputs.
        Net::Vae => Tensor::rand_bernoulli(&[BATCH, 784], 0.5, rng),
        _ => Tensor::rand_uniform(&[BATCH, 784], 0.0, 1.0, rng),
    };
    // Uniform labels in 0..10, from the tensor generator so the facade needs no `rand`.
    let labels =
        Tensor::rand_uniform(&[BATCH], 0.0, 10.0, rng).data().iter().map(|&u| (u as usize).min(9)).collect();
    (images, labels)
}

/// What [`run`] measured for one net. Times are in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The net.
    pub net: Net,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps before them.
    pub warmup: usize,
    /// Number of scalar parameters.
    pub params: usize,
    /// Median wall time of a whole step.
    pub step_ms: f64,
    /// Fastest step (the steadiest figure on a shared machine).
    pub step_ms_min: f64,
    /// 90th percentile step, as the reference script picks it.
    pub step_ms_p90: f64,
    /// Median of the forward phase (tape, forward, loss).
    pub fwd_ms: f64,
    /// Median of the backward phase (backward, tape dropped).
    pub bwd_ms: f64,
    /// Median of the optimizer phase (Adam step, gradients dropped; for `char_gpt` also the
    /// clipping before and the EMA update after).
    pub opt_ms: f64,
    /// [`Net::flops`] at [`Net::batch`], in GFLOP.
    pub gflop_per_step: f64,
    /// `gflop_per_step` over the median step time.
    pub gflops: f64,
    /// The loss of every step, warm-up included, in order.
    pub losses: Vec<f32>,
    /// The precision of the step's matrix products.
    pub precision: Precision,
    /// [`core_round_trip_ns`] just before and just after the run, when the caller measured
    /// it (`run` leaves it `None`): which placement of the cores the timings come from.
    pub core_rtt_ns: Option<(f64, f64)>,
}

impl BenchResult {
    /// Seconds of one training epoch at the median step time (dataset size / [`Net::batch`]
    /// steps).
    pub fn epoch_s(&self) -> f64 {
        self.step_ms / 1e3 * self.net.epoch_examples() as f64 / self.net.batch() as f64
    }

    /// The loss after the last step.
    pub fn final_loss(&self) -> f32 {
        self.losses.last().copied().unwrap_or(f32::NAN)
    }

    /// The result as one line of JSON. `threads` is rayon's thread count; `peak_rss_mb` is
    /// [`peak_rss_mb`] read after the run; `rss_includes_earlier_nets` says whether other nets
    /// ran before in this process (then the peak may be theirs).
    pub fn json_line(
        &self,
        threads: usize,
        peak_rss_mb: Option<f64>,
        rss_includes_earlier_nets: bool,
    ) -> String {
        // Numbers by hand: the facade has no JSON dependency, and NaN must become null.
        let num = |x: f64| if x.is_finite() { format!("{x:.4}") } else { "null".to_string() };
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"net\": \"{}\", \"precision\": \"{}\", \"threads\": {threads}, \"step_ms\": {}, \"fwd_ms\": {}, \"bwd_ms\": {}, \
             \"opt_ms\": {}, \"gflops\": {}, \"peak_rss_mb\": {}, \"step_ms_min\": {}, \"step_ms_p90\": {}, \
             \"epoch_s\": {}, \"gflop_per_step\": {}, \"params\": {}, \"steps\": {}, \"warmup\": {}, \
             \"final_loss\": {}, \"rss_includes_earlier_nets\": {rss_includes_earlier_nets}, \
             \"core_rtt_ns\": {}}}",
            self.net,
            self.precision,
            num(self.step_ms),
            num(self.fwd_ms),
            num(self.bwd_ms),
            num(self.opt_ms),
            num(self.gflops),
            peak_rss_mb.map_or("null".to_string(), |m| format!("{m:.1}")),
            num(self.step_ms_min),
            num(self.step_ms_p90),
            num(self.epoch_s()),
            // Shortest exact form: logreg's 0.00401408 would round away at 4 decimals.
            self.gflop_per_step,
            self.params,
            self.steps,
            self.warmup,
            num(self.final_loss() as f64),
            self.core_rtt_ns.map_or("null".to_string(), |(b, a)| format!("[{}, {}]", num(b), num(a))),
        );
        s
    }
}

/// How long one cache line takes to go from one core to another and back (ns, median of
/// five rounds of 2,000 exchanges between two spinning threads), or `None` with fewer than
/// two CPUs or when the exchanges took more than a second (both threads yield after a while
/// of spinning, so on a busy machine they still finish, slowly).
///
/// It tells which placement of the cores a two-thread timing comes from: on the 2-core VMs
/// of BENCHMARKS.md ("Two threads on this VM") it is about 80 ns when the host keeps both
/// vCPUs close and about 350 ns when it does not, and steps that pass data between the
/// threads slow down with it (the VAE's by 1.4x).
pub fn core_round_trip_ns() -> Option<f64> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    #[repr(align(128))]
    struct Line(AtomicU64);
    const EXCHANGES: u64 = 2_000;
    const ROUNDS: u64 = 5;
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let line = Arc::new(Line(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let (line2, stop2) = (Arc::clone(&line), Arc::clone(&stop));
    // The partner answers each odd value with the next even one.
    let partner = std::thread::spawn(move || {
        for i in 0..EXCHANGES * ROUNDS {
            let mut spins = 0u32;
            while line2.0.load(Ordering::Acquire) != 2 * i + 1 {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                spin_or_yield(&mut spins);
            }
            line2.0.store(2 * i + 2, Ordering::Release);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut rounds = Vec::new();
    'rounds: for r in 0..ROUNDS {
        let start = Instant::now();
        for i in r * EXCHANGES..(r + 1) * EXCHANGES {
            line.0.store(2 * i + 1, Ordering::Release);
            let mut spins = 0u32;
            while line.0.load(Ordering::Acquire) != 2 * i + 2 {
                // The clock only now and then: reading it costs as much as a short exchange.
                if spins % 4096 == 4095 && Instant::now() > deadline {
                    break 'rounds;
                }
                spin_or_yield(&mut spins);
            }
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e9 / EXCHANGES as f64);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = partner.join();
    (rounds.len() as u64 == ROUNDS).then(|| median(&sorted(rounds)))
}

/// One step of a wait for the other thread: a spin hint, or after 10,000 of them a yield, in
/// case the other thread waits for this one's CPU.
fn spin_or_yield(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if *spins > 10_000 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Median as Python's `statistics.median` takes it (mean of the middle two for even length).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// One step of a paper net with `Adam(lr=1e-3)` on its fixed batch, timed by phase.
fn paper_step(
    model: &mut Model,
    optimizer: &mut Adam,
    (images, labels): &(Tensor, Vec<usize>),
    seed: u64,
    precision: Precision,
) -> (f32, Phases) {
    let t0 = Instant::now();
    let tape = Tape::new(Mode::Train, seed);
    tape.set_precision(precision);
    // `clone` is O(1): the tape shares the batch's storage, as torch reuses `x`.
    let loss = model.loss(tape.constant(images.clone()), labels);
    let t1 = Instant::now();
    let grads = loss.backward();
    let value = loss.item();
    drop(tape);
    let t2 = Instant::now();
    optimizer.step(&mut model.module_mut().params_mut(), &grads);
    drop(grads);
    let t3 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    (value, Phases { forward: ms(t0, t1), backward: ms(t1, t2), update: ms(t2, t3) })
}

/// Times `warmup + steps` training steps of `net` and returns the statistics of the last
/// `steps`. The paper's nets train on one fixed synthetic batch (seed 0), as the reference
/// script does; `char_gpt` draws a new batch of ids each step (outside the timed phases), as
/// its reference draws one. The matrix products run in `precision` (`Bf16`: PyTorch's
/// `--autocast bf16`). Uses rayon's global pool as it is.
pub fn run(net: Net, steps: usize, warmup: usize, precision: Precision) -> BenchResult {
    let seed = 0;
    let step_seed = |step: usize| rng::stream_seed(seed, Purpose::Step, step as u64);
    let mut phases = Vec::with_capacity(steps);
    let mut losses = Vec::with_capacity(warmup + steps);
    let params = match Model::new(net, seed) {
        Some(mut model) => {
            let mut optimizer = Adam::new(AdamConfig::default());
            let batch = make_batch(net, rng::stream_seed(seed, Purpose::Data, 0));
            for step in 0..warmup + steps {
                let (loss, p) = paper_step(&mut model, &mut optimizer, &batch, step_seed(step), precision);
                losses.push(loss);
                phases.extend((step >= warmup).then_some(p));
            }
            model.module().num_params()
        }
        None => run_in_pool(|| {
            let mut gpt = char_gpt::CharGpt::new(seed);
            for step in 0..warmup + steps {
                let (x, y) = char_gpt::batch(gpt.model.config(), seed, step as u64);
                let (loss, p) = gpt.step(&x, &y, step_seed(step), precision);
                losses.push(loss);
                phases.extend((step >= warmup).then_some(p));
            }
            gpt.model.num_params()
        }),
    };
    let total = sorted(phases.iter().map(|p| p.forward + p.backward + p.update).collect());
    let step_ms = median(&total);
    let gflop_per_step = net.flops(net.batch()) / 1e9;
    BenchResult {
        net,
        steps,
        warmup,
        params,
        step_ms,
        step_ms_min: total.first().copied().unwrap_or(f64::NAN),
        // The reference script's index: ceil(0.9 n) - 1, at most n - 1.
        step_ms_p90: total
            .get(
                ((0.9 * total.len() as f64).ceil() as usize)
                    .saturating_sub(1)
                    .min(total.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(f64::NAN),
        fwd_ms: median(&sorted(phases.iter().map(|p| p.forward).collect())),
        bwd_ms: median(&sorted(phases.iter().map(|p| p.backward).collect())),
        opt_ms: median(&sorted(phases.iter().map(|p| p.update).collect())),
        gflop_per_step,
        gflops: gflop_per_step / (step_ms / 1e3),
        core_rtt_ns: None,
        losses,
        precision,
    }
}

/// The process's peak resident set size so far in MiB (`VmHWM` of `/proc/self/status`, the
/// figure `/usr/bin/time -v` and `getrusage` report as max RSS), or `None` off Linux.
///
/// It never goes down: with several nets in one process it is the largest of them so far, so
/// run one net per process for a per-net figure.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// The usage text of `examples/bench.rs`.
pub const USAGE: &str = "\
Times one training step (forward incl. loss, backward, Adam step) of the Adam paper's nets,
batch 128, synthetic data, as PyTorch's torch_paper_nets.py does (bench/compare_pytorch.sh);
and of issue 22's character-level GPT (char_gpt: batch 12 x 64 random ids, clipping, AdamW,
EMA), as torch_char_gpt.py --time-steps does.

Usage: cargo run --release --example bench -- [options]

  --nets A,B,...   nets to time, in order (default: logreg,mlp,mlp_nodrop,cnn,vae,char_gpt)
  --threads N      rayon threads, 1 to 1024 (default: rayon's choice, RAYON_NUM_THREADS or all cores)
  --steps N        timed steps per net, 1 to 1000000 (default per net: logreg 300, mlp 60,
                   mlp_nodrop 60, cnn 12, vae 150, char_gpt 30)
  --warmup W       untimed steps before them, 0 to 1000000 (default 3)
  --precision P    f32 (default) or bf16: the matrix products and convolutions take bf16
                   operands and sum in f32, as torch_paper_nets.py --autocast bf16
  --json           print one JSON line per net and nothing else on stdout
  -h, --help       this text

Peak RSS is the process's peak so far: run one net per process (--nets cnn) to get each
net's own figure, as bench/compare_pytorch.sh does.
";

/// The parsed command line of `examples/bench.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchArgs {
    /// `--nets`, in the order given.
    pub nets: Vec<Net>,
    /// `--threads`; `None` leaves rayon's global pool at its default.
    pub threads: Option<usize>,
    /// `--steps`; `None` takes each net's [`Net::default_steps`].
    pub steps: Option<usize>,
    /// `--warmup`.
    pub warmup: usize,
    /// `--json`.
    pub json: bool,
    /// `--precision`.
    pub precision: Precision,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            nets: Net::ALL.to_vec(),
            threads: None,
            steps: None,
            warmup: DEFAULT_WARMUP,
            json: false,
            precision: Precision::F32,
        }
    }
}

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `--help`: print [`USAGE`].
    Help,
    /// Run the benchmark.
    Run(BenchArgs),
}

/// Parses the example's arguments (without the program name); every error is one line
/// naming the argument.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::Arg::{Long, Short};
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = BenchArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("nets") => {
                let list = cli::value(&mut parser, "--nets")?;
                out.nets = list.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?;
            }
            Long("threads") => {
                let value = cli::value(&mut parser, "--threads")?;
                out.threads = Some(cli::parse_count(&value, "--threads", cli::MAX_THREADS)?)
            }
            Long("steps") => {
                out.steps =
                    Some(cli::parse_count(&cli::value(&mut parser, "--steps")?, "--steps", MAX_STEPS)?)
            }
            Long("warmup") => {
                out.warmup =
                    cli::parse_whole(&cli::value(&mut parser, "--warmup")?, "--warmup", 0, MAX_STEPS)?
            }
            Long("json") => out.json = true,
            Long("precision") => {
                let value = cli::value(&mut parser, "--precision")?;
                out.precision = value.parse().map_err(|e: String| CliError::invalid("--precision", e))?;
            }
            other => return Err(cli::unexpected(other)),
        }
    }
    Ok(Command::Run(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> String {
        parse_args(args).unwrap_err().to_string()
    }

    #[test]
    fn parses_flags_and_reports_bad_ones_in_one_line() {
        let Command::Run(a) = parse_args([
            "--nets",
            "cnn,vae",
            "--threads=2",
            "--steps",
            "5",
            "--warmup",
            "0",
            "--json",
            "--precision",
            "bf16",
        ])
        .unwrap() else {
            panic!("expected Run")
        };
        assert_eq!(
            a,
            BenchArgs {
                nets: vec![Net::Cnn, Net::Vae],
                threads: Some(2),
                steps: Some(5),
                warmup: 0,
                json: true,
                precision: Precision::Bf16,
            }
        );
        assert_eq!(
            err(&["--precision", "fp8"]),
            "--precision: unknown precision 'fp8' (expected f32 or bf16)"
        );
        assert_eq!(parse_args(["-h"]).unwrap(), Command::Help);
        assert_eq!(
            err(&["--nets", "mlp,resnet"]),
            "--nets: unknown net 'resnet' (expected one of: logreg, mlp, mlp_nodrop, cnn, vae, char_gpt)"
        );
        assert_eq!(
            err(&["--nets", ""]),
            "--nets: unknown net '' (expected one of: logreg, mlp, mlp_nodrop, cnn, vae, char_gpt)"
        );
        assert_eq!(err(&["--threads", "0"]), "--threads: expected a whole number from 1 to 1024, got '0'");
        assert_eq!(
            err(&["--threads", "1025"]),
            "--threads: expected a whole number from 1 to 1024, got '1025'"
        );
        assert_eq!(err(&["--steps"]), "--steps: missing value");
        // Near 2^64, `warmup + steps` wrapped to a few steps and the table was all NaN.
        assert_eq!(
            err(&["--steps", "18446744073709551615"]),
            "--steps: expected a whole number from 1 to 1000000, got '18446744073709551615'"
        );
        assert_eq!(err(&["--warmup", "-1"]), "--warmup: expected a whole number from 0 to 1000000, got '-1'");
        assert_eq!(
            err(&["--warmup", "1000001"]),
            "--warmup: expected a whole number from 0 to 1000000, got '1000001'"
        );
        assert!(
            USAGE.contains(&format!("1 to {MAX_STEPS} ")) && USAGE.contains(&format!("0 to {MAX_STEPS} "))
        );
        assert!(USAGE.contains(&format!("1 to {} ", cli::MAX_THREADS)));
        assert_eq!(err(&["--json=yes"]), "--json: takes no value, got 'yes'");
        assert_eq!(err(&["--fast"]), "unknown argument '--fast'");
    }

    #[test]
    fn median_and_flops_match_the_reference_script() {
        assert_eq!(median(&[1.0, 2.0, 4.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 8.0]), 3.0);
        // Values of torch_paper_nets.py's `flops(128)`.
        assert_eq!(Net::LogReg.flops(128), 4_014_080.0);
        assert_eq!(Net::Mlp.flops(128), 1_177_088_000.0);
        assert_eq!(Net::MlpNoDrop.flops(128), 1_177_088_000.0);
        assert_eq!(Net::Cnn.flops(128), 34_296_115_200.0);
        assert_eq!(Net::Vae.flops(128), 559_360_000.0);
        assert_eq!(Net::CharGpt.flops(12), char_gpt::flops(GptConfig::default(), 12));
        assert_eq!((Net::CharGpt.batch(), Net::Cnn.batch()), (12, 128));
    }
}
