//! The settings of a character-level GPT run ([`Recipe`]), their command line, and one
//! training step of them ([`Trainer`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use adamant::autodiff::{Gradients, Mode, Tape};
use adamant::average;
use adamant::checkpoint::RunIdentity;
use adamant::data::locate::search_roots;
use adamant::data::text::{random_windows, CharCorpus};
use adamant::distributed::DataParallel;
use adamant::layers::nets::{Gpt, GptConfig};
use adamant::layers::Params;
use adamant::optim::options::{build_with_settings, OptimizerOptions, OptionValue};
use adamant::optim::{clip_grad_norm, Averaging, Optimizer, ParamGroup, Schedule, Scheduler, WeightAverage};
use adamant::tensor::rng::{self, Purpose};
use adamant::tensor::{Ids, Precision};
use adamant::train::TrainError;

use crate::cli::{self, CliError, OptimizerArgs};
use adamant::tensorboard::TrainLog;

/// Most steps `--steps` accepts.
pub const MAX_STEPS: usize = 10_000_000;
/// Largest `--block`, `--embd`: beyond any model this example can train on a CPU.
pub const MAX_WIDTH: usize = 1 << 14;
/// Largest `--layers` and `--heads`.
pub const MAX_DEPTH: usize = 1024;
/// The most memory a run's parameters, optimizer state and activations may be estimated to
/// need before the command line refuses it (hostile sizes must not exhaust memory).
pub const MAX_RUN_BYTES: f64 = 8e9;
/// The corpus file a directory given to `--data`, or a data root, holds.
pub const CORPUS_FILE: &str = "input.txt";
/// The corpus' directory under a data root.
pub const CORPUS_DIR: &str = "shakespeare";

/// An optimizer's hyperparameters in effect, as `(option, value)` text, for a run's identity.
pub type OptimizerSettings = Vec<(String, String)>;

/// Every setting of a run: the model's sizes, the data, and the AdamW recipe of
/// `torch_char_gpt.py`. [`Recipe::default`] is the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Optimizer steps (`--steps`, the reference's `--iters`; 2,000).
    pub steps: usize,
    /// Windows per minibatch (`--batch-size`; 12).
    pub batch_size: usize,
    /// Minibatches whose gradients are summed into one step (`--accumulate`; 1).
    pub accumulate: usize,
    /// Context length `T` (`--block`; 64).
    pub block: usize,
    /// Transformer blocks (`--layers`; 4).
    pub layers: usize,
    /// Attention heads (`--heads`; 4).
    pub heads: usize,
    /// Width of the residual stream (`--embd`; 128).
    pub embd: usize,
    /// The optimizer and its options (`--optimizer`, `--lr`, ...; AdamW with the recipe's
    /// settings where none is given, see [`Recipe::optimizer_options`]).
    pub optimizer: OptimizerArgs,
    /// Steps of the linear warmup (`--warmup`; 100; 0 for none).
    pub warmup: usize,
    /// The rate the cosine ends at, absolute (`--min-lr`; 1e-4).
    pub min_lr: f64,
    /// Global gradient-norm clipping (`--clip`; 1.0); `None` (`--clip 0`) clips nothing.
    pub clip: Option<f32>,
    /// Weight average kept beside the weights (`--ema`; decay 0.99); `None` with `--no-ema`.
    pub average: Option<Averaging>,
    /// Seed of the initial weights, the batches and the samples (`--seed`; 0).
    pub seed: u64,
    /// Steps between two validations (`--eval-every`; 250).
    pub eval_every: usize,
    /// The precision of the matrix products in training and validation (`--precision`; f32).
    pub precision: Precision,
}

impl Default for Recipe {
    fn default() -> Recipe {
        let gpt = GptConfig::default();
        Recipe {
            steps: 2000,
            batch_size: 12,
            accumulate: 1,
            block: gpt.block,
            layers: gpt.layers,
            heads: gpt.heads,
            embd: gpt.embd,
            optimizer: OptimizerArgs::default(),
            warmup: 100,
            min_lr: 1e-4,
            clip: Some(1.0),
            average: Some(Averaging::Ema { decay: 0.99 }),
            seed: 0,
            eval_every: 250,
            precision: Precision::F32,
        }
    }
}

/// The recipe's peak learning rate when `--lr` is not given, whatever the optimizer.
pub const DEFAULT_LR: f32 = 1e-3;
/// Weight decay of the AdamW recipe, on parameters with two or more axes.
pub const DEFAULT_WEIGHT_DECAY: f32 = 0.1;

impl Recipe {
    /// The optimizer's name (`adamw` unless `--optimizer` says otherwise).
    pub fn optimizer_name(&self) -> &str {
        self.optimizer.name.as_deref().unwrap_or("adamw")
    }

    /// The options the optimizer is built with: those given, over the defaults of
    /// `torch_char_gpt.py`. Every optimizer gets the peak rate 1e-3 unless `--lr` is given;
    /// AdamW and Adam get betas (0.9, 0.99) and eps 1e-8, AdamW also weight decay 0.1; SGD
    /// gets Nesterov momentum 0.9. The others keep their own defaults (their references').
    pub fn optimizer_options(&self) -> OptimizerOptions {
        let mut defaults = OptimizerOptions { lr: Some(DEFAULT_LR), ..Default::default() };
        match self.optimizer_name() {
            "adamw" | "adam" => {
                defaults.betas = Some((0.9, 0.99));
                defaults.eps = Some(1e-8);
                if self.optimizer_name() == "adamw" {
                    defaults.weight_decay = Some(DEFAULT_WEIGHT_DECAY);
                }
            }
            "sgd" => {
                defaults.momentum = Some(0.9);
                defaults.nesterov = true;
            }
            _ => {}
        }
        self.optimizer.options.or(&defaults)
    }

    /// The peak learning rate.
    pub fn lr(&self) -> f32 {
        match self.optimizer_options().get("lr") {
            Some(OptionValue::Number(lr)) => lr,
            _ => DEFAULT_LR,
        }
    }

    /// The optimizer, with weight decay on parameters of two or more axes only (the linear
    /// weights and both embeddings, as nanoGPT groups them), and its settings for the run's
    /// identity.
    pub fn build_optimizer(&self) -> Result<(Box<dyn Optimizer + Send>, OptimizerSettings), CliError> {
        let (mut optimizer, settings) =
            build_with_settings(self.optimizer_name(), &self.optimizer_options())?;
        optimizer.add_param_group(ParamGroup::no_decay_for_biases());
        Ok((optimizer, settings.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    /// Linear warmup over `warmup` steps, then a cosine to `min_lr` at the last step.
    ///
    /// The reference's `lr_at(s)` (1-based step `s`) is `lr s / W` for `s <= W`, then the
    /// cosine at `(s - W) / (N - W)`. [`Schedule::WarmupCosine`] gives the same warmup and
    /// reaches `min_lr` at step `N` with `t_max = N - 1`; its cosine runs at
    /// `(s - 1 - W) / (N - 1 - W)`, a phase of less than one step apart (at most
    /// `(lr - min_lr) pi / 2 / (N - W)` in rate: 7e-7 of 1e-3 in the reference run).
    pub fn schedule(&self) -> Schedule {
        let t_max = (self.steps as u64 - 1).max(self.warmup as u64 + 1);
        Schedule::WarmupCosine { warmup_steps: self.warmup as u64, t_max, eta_min: self.min_lr }
    }

    /// The model's sizes for a vocabulary of `vocab` characters.
    pub fn gpt_config(&self, vocab: usize) -> GptConfig {
        GptConfig { vocab, block: self.block, layers: self.layers, heads: self.heads, embd: self.embd }
    }

    /// Checks what [`Recipe::gpt_config`] and the schedule need, and that the run fits in
    /// memory ([`MAX_RUN_BYTES`]); the error names the flag.
    pub fn validate(&self) -> Result<(), CliError> {
        if !self.embd.is_multiple_of(self.heads) {
            return Err(CliError::invalid(
                "--heads",
                format!("must divide --embd {}, got {}", self.embd, self.heads),
            ));
        }
        if self.warmup >= self.steps {
            return Err(CliError::invalid(
                "--warmup",
                format!(
                    "must be below --steps {} (the cosine needs a step), got {}",
                    self.steps, self.warmup
                ),
            ));
        }
        if self.eval_every > self.steps {
            return Err(CliError::invalid(
                "--eval-every",
                format!("must be at most --steps {}, got {}", self.steps, self.eval_every),
            ));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            return Err(CliError::invalid(
                "--min-lr",
                format!("must be finite and >= 0, got {}", self.min_lr),
            ));
        }
        let bytes = self.estimated_bytes();
        if bytes > MAX_RUN_BYTES {
            return Err(CliError::invalid(
                "--embd",
                format!(
                    "--layers {} --embd {} --block {} --batch-size {} would need about {:.0} GB (at most {:.0} GB)",
                    self.layers,
                    self.embd,
                    self.block,
                    self.batch_size,
                    bytes / 1e9,
                    MAX_RUN_BYTES / 1e9
                ),
            ));
        }
        Ok(())
    }

    /// A rough upper estimate of the run's memory in bytes: parameters with gradients,
    /// optimizer state and the weight average (8 copies), and the activations a step keeps
    /// for the backward (about 20 values of width `C` per token and layer, plus the attention
    /// matrices), or an evaluation batch's if that is larger.
    pub fn estimated_bytes(&self) -> f64 {
        let (c, t, l, h) = (self.embd as f64, self.block as f64, self.layers as f64, self.heads as f64);
        let params = self.gpt_config(256).num_params() as f64;
        let rows = (self.batch_size as f64).max(super::EVAL_BATCH as f64);
        let activations = rows * t * l * (20.0 * c + 3.0 * h * t);
        4.0 * (8.0 * params + activations)
    }

    /// The settings that define the run, for its checkpoints: a resume with any of them
    /// changed is refused. The corpus is identified by its content (its characters and an
    /// FNV-1a hash of its token ids), not its path, so a moved data directory still resumes.
    pub fn identity(&self, corpus: &CharCorpus, optimizer: &[(String, String)]) -> RunIdentity {
        let hash = corpus
            .train
            .iter()
            .chain(&corpus.val)
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &id| (h ^ id as u64).wrapping_mul(0x0000_0100_0000_01b3));
        let chars: String = corpus.vocab.chars().iter().collect();
        let vocab = corpus.vocab.len();
        let mut run = RunIdentity::new()
            .with("experiment", "char_gpt")
            .with("corpus", format!("{} tokens, fnv1a {hash:016x}", corpus.train.len() + corpus.val.len()))
            .with("train_tokens", corpus.train.len())
            .with("vocab", format!("{chars:?}"))
            .with("model", format!("{:?}", self.gpt_config(vocab)))
            .with("seed", self.seed)
            .with("steps", self.steps)
            .with("batch_size", self.batch_size)
            .with("accumulate", self.accumulate)
            .with("optimizer", self.optimizer_name())
            // The schedule is the warmup, the rate's floor and the length (`steps`, above).
            .with("warmup", self.warmup)
            .with("min_lr", self.min_lr)
            .with("clip", self.clip.map_or("none".to_string(), |c| c.to_string()))
            .with("average", self.average.map_or("none".to_string(), |a| a.to_string()))
            .with("eval_every", self.eval_every)
            .with("adamant_version", env!("CARGO_PKG_VERSION"));
        // Only when set: f32 runs keep the identity their checkpoints had.
        if self.precision != Precision::F32 {
            run.set("precision", self.precision);
        }
        for (option, value) in optimizer {
            run.set(format!("optimizer.{option}"), value);
        }
        run
    }
}

/// The corpus a run reads: `--data` (a file, or a directory holding `input.txt`), else the
/// first `<root>/shakespeare/input.txt` of the data roots (`$ADAMANT_DATA`, `./datasets`,
/// `/usr/share/datasets`). The error lists every place looked at.
pub fn find_corpus(data: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = data {
        let file = if path.is_dir() { path.join(CORPUS_FILE) } else { path.to_path_buf() };
        return if file.is_file() {
            Ok(file)
        } else {
            Err(CliError::invalid("--data", format!("no corpus file {}", cli::quote_path(&file))))
        };
    }
    let candidates: Vec<PathBuf> =
        search_roots().iter().map(|r| r.join(CORPUS_DIR).join(CORPUS_FILE)).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|p| cli::quote_path(p)).collect();
        CliError::invalid(
            "--data",
            format!(
                "not given, and no corpus at {} (set $ADAMANT_DATA or pass --data FILE)",
                looked.join(", ")
            ),
        )
    })
}

/// A run of the recipe in memory: the model, its optimizer and schedule, the weight
/// average, and the training tokens batches are drawn from. [`Trainer::step`] is one step of
/// `torch_char_gpt.py`'s loop.
pub struct Trainer<'d> {
    /// The model being trained.
    pub model: Gpt,
    /// Its optimizer (decay only on parameters of two or more axes).
    pub optimizer: Box<dyn Optimizer + Send>,
    /// Warmup and cosine ([`Recipe::schedule`]).
    pub scheduler: Scheduler,
    /// The weight average, when the recipe keeps one.
    pub average: Option<WeightAverage>,
    /// Steps taken so far.
    pub step: u64,
    /// The optimizer's settings, as the run's identity records them.
    pub optimizer_settings: OptimizerSettings,
    recipe: Recipe,
    train: &'d [usize],
}

impl<'d> Trainer<'d> {
    /// A fresh run: the model initialised from the recipe's seed for a vocabulary of `vocab`
    /// ids, over the training tokens `train`. The error names the flag of a bad setting.
    ///
    /// # Panics
    /// If `train` holds fewer than `block + 2` tokens ([`super::check_corpus`] says so as an
    /// error first).
    pub fn new(recipe: &Recipe, vocab: usize, train: &'d [usize]) -> Result<Trainer<'d>, CliError> {
        recipe.validate()?;
        assert!(
            train.len() >= recipe.block + 2,
            "Trainer::new: {} training tokens for --block {}",
            train.len(),
            recipe.block
        );
        let model = Gpt::new(recipe.gpt_config(vocab), &mut rng::stream(recipe.seed, Purpose::Init, 0));
        let (optimizer, optimizer_settings) = recipe.build_optimizer()?;
        optimizer.check_params(&model.params()).map_err(|e| CliError::invalid("--optimizer", e))?;
        let scheduler = Scheduler::new(recipe.schedule(), recipe.lr());
        Ok(Trainer {
            model,
            optimizer,
            scheduler,
            average: recipe.average.map(WeightAverage::new),
            step: 0,
            optimizer_settings,
            recipe: recipe.clone(),
            train,
        })
    }

    /// One optimizer step, the reference's `step(s)`: set the step's learning rate, draw
    /// `accumulate` minibatches of windows, sum the gradients of their mean cross-entropy
    /// (divided by `accumulate`, so the step is the mean over every window), clip the global
    /// norm, update, and update the weight average. Returns the step's mean loss.
    ///
    /// Minibatch `j` of step `s` is drawn from stream `(s - 1) * accumulate + j` of the seed's
    /// data streams: a function of the step, so a resumed run draws what an uninterrupted one
    /// would.
    ///
    /// With a `log`, the step is also written to TensorBoard on its logged steps (loss, rate,
    /// time, histograms, the optimizer's internals): the hooks sit here, around the optimizer
    /// step, because the optimizer's state before and after it and the clipped gradients it
    /// used exist only here. Logging only reads, so the step's result is the same bits with or
    /// without it; the only error is an event file that cannot be written.
    ///
    /// Over several processes (`ranks`, data-parallel), every process draws the whole
    /// minibatches (the same streams) and takes its rows of each ([`DataParallel::rows`]),
    /// with its per-example randomness keyed by their place in the minibatch; its loss is
    /// weighted by its share of the rows, and the gradients are summed across the processes
    /// before the clipping, so the norm clipped is the whole batch's and every process takes
    /// the step one process takes (up to the order of the sum). The loss returned is the
    /// whole batch's, the same on every process (a non-finite one is seen by all). Only one
    /// process should log (`log` `None` elsewhere).
    pub fn step(
        &mut self,
        ranks: DataParallel<'_>,
        mut log: Option<&mut TrainLog>,
    ) -> Result<f32, TrainError> {
        // Only a logged run reads the clock: `train/step_ms` is forward, backward and update.
        let started = log.is_some().then(Instant::now);
        self.step += 1;
        self.scheduler.step(&mut *self.optimizer);
        let (k, b, block) = (self.recipe.accumulate, self.recipe.batch_size, self.recipe.block);
        let shared = ranks.size() > 1;
        let rows = ranks.rows(b);
        let mut grads: Option<Gradients> = None;
        // One process: the minibatches' mean losses; shared: this process's rows' loss sums.
        let (mut loss_sum, mut shard_loss_sum) = (0.0f32, 0.0f64);
        for j in 0..k {
            let stream = (self.step - 1) * k as u64 + j as u64;
            let (mut x, mut y) = random_windows(
                self.train,
                b,
                block,
                &mut rng::stream(self.recipe.seed, Purpose::Data, stream),
            );
            if shared {
                if rows.is_empty() {
                    continue; // more processes than windows: this one has none
                }
                let mine = |ids: &Ids| {
                    Ids::from_vec(
                        ids.data()[rows.start * block..rows.end * block].to_vec(),
                        &[rows.len(), block],
                    )
                };
                (x, y) = (mine(&x), mine(&y));
            }
            let tape = Tape::new(Mode::Train, rng::stream_seed(self.recipe.seed, Purpose::Step, stream));
            tape.set_precision(self.recipe.precision);
            tape.set_example_offset(rows.start);
            let loss = self.model.loss(&tape, &x, &y);
            let micro = if shared {
                shard_loss_sum += loss.item() as f64 * rows.len() as f64;
                // The mean over the step's windows: this share's mean weighted by its rows.
                loss.mul_scalar(rows.len() as f32 / (b * k) as f32).backward()
            } else {
                loss_sum += loss.item();
                // One minibatch is left as it is (the same bits as without accumulation).
                if k == 1 {
                    loss.backward()
                } else {
                    loss.mul_scalar(1.0 / k as f32).backward()
                }
            };
            match grads.as_mut() {
                None => grads = Some(micro),
                Some(total) => total.add(micro),
            }
        }
        let loss = if shared {
            let mut sums = [shard_loss_sum];
            ranks.sum(&mut sums);
            (sums[0] / (b * k) as f64) as f32
        } else {
            loss_sum / k as f32
        };
        // Before the clipping: the norm clipped is the whole batch's.
        let mut grads =
            ranks.sum_gradients(&self.model.params(), grads).expect("every step has at least one window");
        if let Some(max_norm) = self.recipe.clip {
            clip_grad_norm(&mut grads, max_norm);
        }
        if let Some(log) = log.as_deref_mut() {
            log.before_update(self.step, &self.model.params());
        }
        self.optimizer.step(&mut self.model.params_mut(), &grads);
        if let Some(average) = self.average.as_mut() {
            average::update(average, &self.model);
        }
        if let (Some(log), Some(started)) = (log, started) {
            let seconds = started.elapsed().as_secs_f64();
            let examples = self.recipe.batch_size * k;
            log.after_update(
                self.step,
                loss,
                seconds,
                examples,
                &self.model.params(),
                &grads,
                &*self.optimizer,
            )?;
        }
        Ok(loss)
    }

    /// The recipe the trainer runs.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }
}
