//! makemore: Bengio et al.'s (2003) MLP language model of characters, trained on first names
//! and sampled, exactly as `shared/bench/torch_makemore.py` defines it (Karpathy's makemore,
//! part 2), on the names bundled in `datasets/names/first.txt`, offline.
//!
//! ```text
//! cargo run --release --example makemore
//! cargo run --release --example makemore -- --seed 1 --steps 2000 --json
//! ```
//!
//! Data: name `i` (0-based, file order) trains if `i % 10 < 8`, is dev if `i % 10 == 8`, test
//! if `i % 10 == 9`; vocabulary `'.'` (start and end of a name) then `a`..`z`; one example per
//! character of a name plus the final `'.'`, with the 3 previous characters as context.
//! Model: an `Embedding` 27x10 (N(0, 1)), the 3 context vectors concatenated to 30, `Dense`
//! 30->200, tanh, `Dense` 200->27, softmax cross-entropy (11,897 parameters). Training: Adam
//! (lr 3e-3, betas (0.9, 0.999), eps 1e-8) with the rate cosine-annealed to 3e-5 over the run,
//! batches of 64 examples drawn uniformly with replacement, 10,000 steps. Reported: the mean
//! cross-entropy over every train, dev and test example, then 20 names sampled from the model.
//! With `--ema DECAY` an exponential moving average of the weights (torch's `AveragedModel`
//! with `get_ema_multi_avg_fn(DECAY)`) is kept over the steps and its losses are reported too.
//! With `--tensorboard DIR` the run writes TensorBoard events into `DIR/makemore`: the batch
//! loss, rate, step time and histograms every `--log-every` steps (Adam's internals too with
//! `--log-optimizer-state`), and at the last step the losses of the JSON line as `train/eval_loss`,
//! `val/loss` (dev) and `test/loss` (`train_ema/eval_loss`, ... for the average).
//! With `--distributed` (a build with the cargo feature `mpi`, started by `mpirun -n N`)
//! every process draws the whole batch and takes its 64 / N rows; the gradients are summed
//! across the processes in rank order, so each takes the step one process takes (up to the
//! order of the sum); rank 0 alone prints and writes.

use std::path::PathBuf;
use std::time::Instant;

use adamant::autodiff::{Mode, Tape, Var};
use adamant::average::{self, with_averaged};
use adamant::data::text::{NameExamples, Names};
use adamant::distributed::{mpi_world, DataParallel};
use adamant::layers::{Dense, Embedding, Module, Params};
use adamant::optim::{Adam, AdamConfig, Averaging, Optimizer, Schedule, Scheduler, WeightAverage};
use adamant::prelude::*;
use adamant::tensor::rng::{self, Purpose};
use adamant::tensor::sample::{generate, Generation};
use adamant::tensor::Ids;
use adamant::tensorboard::TrainLog;
use adamant_lab::cli::{self, exit_on_error, CliError};

const CONTEXT: usize = 3;
const EMBED: usize = 10;
const HIDDEN: usize = 200;
const BATCH: usize = 64;
const LR: f32 = 3e-3;
const LR_MIN: f64 = 3e-5;
const SAMPLES: usize = 20;
/// The most steps `--steps` accepts (a hundred times the default).
const MAX_STEPS: usize = 1_000_000;
/// A sampled name stops here if the model never produces `'.'`.
const MAX_NAME_LEN: usize = 50;
/// The names file used when `--data` is not given: bundled in the repository.
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/names/first.txt");

const USAGE: &str = "makemore: Bengio et al.'s MLP language model on first names, then 20 samples

Usage: cargo run --release --example makemore -- [--seed S] [--steps N] [--data PATH] [--ema DECAY] [--json]
                 [--tensorboard DIR [--log-every N] [--log-optimizer-state]] [--distributed]
  --seed S       initial weights, batches and samples (default 0)
  --steps N      training steps of 64 examples (default 10000, at most 1000000); the rate is
                 cosine-annealed from 3e-3 to 3e-5 over them
  --data PATH    a names file (one lowercase name a line), or a directory holding first.txt
                 (default: the bundled datasets/names/first.txt)
  --ema DECAY    also keep an exponential moving average of the weights (DECAY in [0, 1],
                 e.g. 0.999) and report its losses (averaged_train_loss, ... in the JSON)
  --json         end with one JSON line:
                 {\"train_loss\": .., \"dev_loss\": .., \"test_loss\": .., \"step_ms\": ..}
  --distributed  data-parallel training over MPI: start with mpirun -n N (a build with --features mpi);
                 each process takes 64 / N examples of every batch, rank 0 prints and writes
TensorBoard (DIR/makemore; at the end train/eval_loss, val/loss (dev), test/loss, and *_ema/* with --ema):
  ";

struct Args {
    seed: u64,
    steps: usize,
    data: PathBuf,
    ema: Option<Averaging>,
    json: bool,
    tensorboard: Option<PathBuf>,
    log_every: Option<u64>,
    log_optimizer_state: bool,
    distributed: bool,
}

/// The command line, or `None` for `--help`.
fn parse_args() -> Result<Option<Args>, CliError> {
    use adamant_lab::lexopt::prelude::*;
    let mut a = Args {
        seed: 0,
        steps: 10_000,
        data: PathBuf::from(BUNDLED),
        ema: None,
        json: false,
        tensorboard: None,
        log_every: None,
        log_optimizer_state: false,
        distributed: false,
    };
    let mut parser = adamant_lab::lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("seed") => a.seed = cli::parse_seed(&cli::value(&mut parser, "--seed")?, "--seed")?,
            Long("steps") => {
                a.steps = cli::parse_count(&cli::value(&mut parser, "--steps")?, "--steps", MAX_STEPS)?
            }
            Long("data") => a.data = cli::path_value(&mut parser, "--data")?,
            Long("ema") => a.ema = Some(cli::parse_averaging(&cli::value(&mut parser, "--ema")?, "--ema")?),
            Long("json") => a.json = true,
            Long("tensorboard") => a.tensorboard = Some(cli::path_value(&mut parser, "--tensorboard")?),
            Long("log-every") => {
                let v = cli::value(&mut parser, "--log-every")?;
                a.log_every = Some(cli::parse_whole(&v, "--log-every", 1, cli::MAX_EXAMPLES)? as u64)
            }
            Long("log-optimizer-state") => a.log_optimizer_state = true,
            Long("distributed") => a.distributed = true,
            other => return Err(cli::unexpected(other)),
        }
    }
    cli::check_tensorboard_flags(a.tensorboard.as_deref(), a.log_every, a.log_optimizer_state)?;
    if a.data.is_dir() {
        a.data = a.data.join("first.txt");
    }
    Ok(Some(a))
}

/// The model of `torch_makemore.py`: `C` = `emb`, then `mlp` = Linear, Tanh, Linear.
#[derive(adamant::layers::Module)]
struct Mlp {
    emb: Embedding,
    fc1: Dense,
    fc2: Dense,
}

impl Mlp {
    /// PyTorch's initialisation of each layer, from one seeded stream.
    fn new(rng: &mut Rng) -> Mlp {
        Mlp {
            emb: Embedding::new(27, EMBED, rng),
            fc1: Dense::new(CONTEXT * EMBED, HIDDEN, rng),
            fc2: Dense::new(HIDDEN, 27, rng),
        }
    }

    /// Logits `[N, 27]` for contexts `[N, 3]`.
    fn forward<'t>(&self, tape: &'t Tape, contexts: &Ids) -> Var<'t> {
        let n = contexts.shape()[0];
        let x = self.emb.forward(tape, contexts).reshape(&[n, CONTEXT * EMBED]);
        self.fc2.forward(self.fc1.forward(x).tanh())
    }

    /// The mean cross-entropy over every example of a split, without recording a tape.
    fn loss(&self, split: &NameExamples) -> f64 {
        let tape = Tape::inference();
        self.forward(&tape, &split.inputs).cross_entropy(&split.targets).item() as f64
    }

    /// A name drawn character by character from the model's distribution (temperature 1),
    /// starting from the context `'.'`, `'.'`, `'.'` and stopping at the next `'.'`.
    fn sample(&self, names: &Names, rng: &mut Rng) -> String {
        let how = Generation {
            max_new: MAX_NAME_LEN,
            window: CONTEXT,
            stop: Some(0),
            temperature: 1.0,
            top_k: None,
        };
        let next_logits = |context: &[usize]| {
            let tape = Tape::inference();
            self.forward(&tape, &Ids::from_vec(context.to_vec(), &[1, CONTEXT])).value().data().to_vec()
        };
        names.vocab.decode(&generate(&[0; CONTEXT], how, next_logits, rng))
    }
}

fn main() {
    let Some(args) = exit_on_error(parse_args()) else {
        println!("{USAGE}{}", cli::TENSORBOARD_USAGE);
        return;
    };
    // With --distributed every rank runs this program; rank 0 alone writes and prints.
    let world = args.distributed.then(|| exit_on_error(mpi_world()));
    let ranks = DataParallel::new(world.as_deref());
    let rank0 = ranks.writes();
    let names = exit_on_error(
        Names::read(&args.data, CONTEXT).map_err(|e| CliError::invalid("--data", e.to_string())),
    );
    let mut model = Mlp::new(&mut rng::stream(args.seed, Purpose::Init, 0));
    let n_params: usize = model.params().iter().map(|p| p.value().numel()).sum();
    let say = |line: String| {
        if rank0 {
            println!("{line}");
        }
    };
    say(format!(
        "makemore: {} names from {}, {} / {} / {} train / dev / test examples; MLP 27x{EMBED} embedding, context {CONTEXT}, tanh {HIDDEN}, {n_params} parameters",
        names.names.len(),
        names.source.display(),
        names.train.len(),
        names.dev.len(),
        names.test.len(),
    ));

    let mut adam = Adam::new(AdamConfig { lr: LR, ..Default::default() });
    let mut scheduler =
        Scheduler::new(Schedule::CosineAnnealing { t_max: args.steps as u64, eta_min: LR_MIN }, LR);
    // Batches: 64 example indices uniform with replacement, one seeded stream for the run.
    let mut data_rng = rng::stream(args.seed, Purpose::Data, 0);
    let (train_inputs, train_targets) = (names.train.inputs.data(), &names.train.targets);
    let mut contexts = vec![0usize; BATCH * CONTEXT];
    let mut targets = vec![0usize; BATCH];
    let mut ema = args.ema.map(WeightAverage::new);
    // No checkpoints, so never a resume: every run starts its event file afresh.
    let tensorboard = cli::tensorboard_run(
        args.tensorboard.as_deref().filter(|_| rank0),
        "makemore",
        args.log_every,
        args.log_optimizer_state,
    );
    let mut log = tensorboard.map(|tb| exit_on_error(TrainLog::open(&tb, None)));
    let started = Instant::now();
    // This process's rows of every batch (all of them alone).
    let rows = ranks.rows(BATCH);
    let shared = ranks.size() > 1;
    for step in 1..=args.steps {
        let step_started = Instant::now();
        for (b, target) in targets.iter_mut().enumerate() {
            let i = data_rng.random_range(0..train_targets.len());
            contexts[b * CONTEXT..(b + 1) * CONTEXT]
                .copy_from_slice(&train_inputs[i * CONTEXT..(i + 1) * CONTEXT]);
            *target = train_targets[i];
        }
        let tape = Tape::new(Mode::Train, rng::stream_seed(args.seed, Purpose::Step, step as u64));
        let (grads, batch_loss) = if shared {
            // Every process drew the whole batch (the same stream); it takes its rows, its mean
            // loss weighted by their share, so the summed gradient is the whole batch's.
            let mut local = None;
            let mut loss_sum = [0.0f64];
            if !rows.is_empty() {
                tape.set_example_offset(rows.start);
                let mine = Ids::from_vec(
                    contexts[rows.start * CONTEXT..rows.end * CONTEXT].to_vec(),
                    &[rows.len(), CONTEXT],
                );
                let loss = model.forward(&tape, &mine).cross_entropy(&targets[rows.clone()]);
                loss_sum[0] = loss.item() as f64 * rows.len() as f64;
                local = Some(loss.mul_scalar(rows.len() as f32 / BATCH as f32).backward());
            }
            ranks.sum(&mut loss_sum);
            let grads = ranks.sum_gradients(&model.params(), local).expect("a batch has examples");
            (grads, (loss_sum[0] / BATCH as f64) as f32)
        } else {
            let loss = model
                .forward(&tape, &Ids::from_vec(contexts.clone(), &[BATCH, CONTEXT]))
                .cross_entropy(&targets);
            (loss.backward(), loss.item())
        };
        scheduler.step(&mut adam);
        if let Some(log) = log.as_mut() {
            log.before_update(step as u64, &model.params());
        }
        adam.step(&mut model.params_mut(), &grads);
        if let Some(ema) = ema.as_mut() {
            average::update(ema, &model);
        }
        if let Some(log) = log.as_mut() {
            let seconds = step_started.elapsed().as_secs_f64();
            let logged =
                log.after_update(step as u64, batch_loss, seconds, BATCH, &model.params(), &grads, &adam);
            exit_on_error(logged);
        }
        if (step % 1000 == 0 || step == args.steps) && rank0 {
            println!("step {step:>6}: batch loss {batch_loss:.4}, lr {:.2e}", adam.lr());
        }
    }
    // Without the logging's time: the same step_ms as without --tensorboard.
    let logging = log.as_ref().map_or(0.0, TrainLog::seconds_logging);
    let step_ms = 1e3 * (started.elapsed().as_secs_f64() - logging) / args.steps as f64;

    let (train_loss, dev_loss, test_loss) =
        (model.loss(&names.train), model.loss(&names.dev), model.loss(&names.test));
    // Every process took the same steps: a difference is a bug, not noise (alone: no check).
    exit_on_error(ranks.check_same_weights(&model, 1));
    if !rank0 {
        return;
    }
    println!("train loss {train_loss:.4}, dev loss {dev_loss:.4}, test loss {test_loss:.4} ({step_ms:.4} ms per step)");
    let averaged = ema.as_ref().map(|ema| {
        with_averaged(&mut model, ema, |m| (m.loss(&names.train), m.loss(&names.dev), m.loss(&names.test)))
    });
    if let Some((train, dev, test)) = averaged {
        println!("averaged weights: train loss {train:.4}, dev loss {dev:.4}, test loss {test:.4}");
    }
    if let Some(log) = log.as_mut() {
        let mut values =
            vec![("train/eval_loss", train_loss), ("val/loss", dev_loss), ("test/loss", test_loss)];
        if let Some((train, dev, test)) = averaged {
            values.extend([("train_ema/eval_loss", train), ("val_ema/loss", dev), ("test_ema/loss", test)]);
        }
        exit_on_error(log.scalars(args.steps as u64, &values));
    }
    println!("{SAMPLES} samples:");
    for i in 0..SAMPLES {
        println!("  {}", model.sample(&names, &mut rng::stream(args.seed, Purpose::Sample, i as u64)));
    }
    if args.json {
        let averaged = averaged.map_or(String::new(), |(train, dev, test)| {
            format!(", \"averaged_train_loss\": {train}, \"averaged_dev_loss\": {dev}, \"averaged_test_loss\": {test}")
        });
        println!(
            "{{\"train_loss\": {train_loss}, \"dev_loss\": {dev_loss}, \"test_loss\": {test_loss}{averaged}, \"step_ms\": {step_ms}}}"
        );
    }
}
