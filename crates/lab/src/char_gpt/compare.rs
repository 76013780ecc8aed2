//! `char_gpt --compare STUDY`: the recipe taken apart, one run per variant from the same
//! seed and data, each a full run of [`super::run`] with its own checkpoint (so an
//! interrupted comparison continues where it stopped, and a finished variant is not rerun).
//!
//! * `recipe`: the AdamW recipe against Adam with an L2 term instead of decoupled decay,
//!   no warmup, no clipping (and no EMA: the recipe's own raw weights, the average does not
//!   change training); Lion and AdaBelief with their usual settings; SGD with Nesterov
//!   momentum.
//! * `warmup`: the paper's own question, at larger rates (3e-3 and 1e-2): with and without
//!   warmup, RAdam (whose rectifier is a warmup computed from beta2), and Adam without bias
//!   correction, all without weight decay so that they differ only in how the first steps are
//!   tamed.
//! * `batch`: batch 12 against 192 (16 accumulated minibatches of 12) at equal numbers of
//!   examples, AdamW against LAMB, the larger batch with the square-root scaling of the rate
//!   (x4) and the warmup (in examples) kept.
//!
//! Each study writes `OUT/char_gpt_<study>.csv` (every validation of every variant),
//! `.svg` (validation loss against examples seen) and `.md` (the table of the README); with
//! `--tensorboard DIR`, each variant's event file goes to `DIR/compare_<study>/<variant>`.

use std::fmt::Write as _;
use std::path::Path;

use adamant::data::text::CharCorpus;
use adamant::optim::options::OptionValue;

use super::args::Args;
use super::{exit_on_run_error, run, Recipe, RunOptions, RunReport, Trainer};
use crate::cli::{self, CliError};
use crate::plot::{line_chart, Series};

/// One of the comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Study {
    /// The recipe's parts and other optimizers.
    Recipe,
    /// Warmup and its automatic replacements at larger rates.
    Warmup,
    /// Large batches with LAMB.
    Batch,
}

impl Study {
    /// Every study, in the order `all` runs them.
    pub const ALL: [Study; 3] = [Study::Recipe, Study::Warmup, Study::Batch];

    /// The name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Study::Recipe => "recipe",
            Study::Warmup => "warmup",
            Study::Batch => "batch",
        }
    }

    /// Parses `--compare`'s value: a study's name or `all`.
    pub fn parse(value: &str) -> Result<Vec<Study>, CliError> {
        if value == "all" {
            return Ok(Study::ALL.to_vec());
        }
        Study::ALL.into_iter().find(|s| s.name() == value).map(|s| vec![s]).ok_or_else(|| {
            CliError::invalid("--compare", format!("expected recipe, warmup, batch or all, got '{value}'"))
        })
    }
}

/// A run of a study: its label in the table and figure, a file-name stem, and its settings.
#[derive(Clone, Debug)]
pub struct Variant {
    /// `AdamW recipe`, `no warmup`, ...
    pub label: String,
    /// The stem of its checkpoint and log in the study's directory.
    pub slug: String,
    /// Its settings.
    pub recipe: Recipe,
}

/// `base` with another optimizer and options (those not given take [`Recipe`]'s defaults
/// for that optimizer), the rate `lr` and the cosine ending at a tenth of it.
fn with_optimizer(base: &Recipe, name: &str, lr: f32, options: &[(&str, OptionValue)]) -> Recipe {
    let mut recipe = base.clone();
    recipe.optimizer.name = Some(name.to_string());
    recipe.optimizer.options = Default::default();
    recipe.optimizer.options.lr = Some(lr);
    for &(option, value) in options {
        recipe.optimizer.options.set(option, value).expect("the studies' options exist");
    }
    recipe.min_lr = lr as f64 / 10.0;
    recipe
}

fn variant(label: &str, slug: &str, recipe: Recipe) -> Variant {
    Variant { label: label.to_string(), slug: slug.to_string(), recipe }
}

/// The runs of `study`, from the command line's recipe `base` (the reference by default).
pub fn variants(study: Study, base: &Recipe) -> Vec<Variant> {
    use OptionValue::{Number, Switch};
    let lr = base.lr();
    let adamw = with_optimizer(base, "adamw", lr, &[]);
    match study {
        Study::Recipe => vec![
            variant("AdamW recipe", "adamw", adamw.clone()),
            variant(
                "Adam + L2 0.1 (not decoupled)",
                "adam_l2",
                with_optimizer(base, "adam", lr, &[("weight_decay", Number(0.1))]),
            ),
            variant("no warmup", "no_warmup", Recipe { warmup: 0, ..adamw.clone() }),
            variant("no clipping", "no_clip", Recipe { clip: None, ..adamw.clone() }),
            variant(
                "Lion (lr / 10, decay x 10)",
                "lion",
                with_optimizer(base, "lion", lr / 10.0, &[("weight_decay", Number(1.0))]),
            ),
            variant(
                "AdaBelief (decay 0.1)",
                "adabelief",
                with_optimizer(base, "adabelief", lr, &[("weight_decay", Number(0.1))]),
            ),
            variant("SGD, Nesterov 0.9, lr 0.1", "sgd", with_optimizer(base, "sgd", 0.1, &[])),
        ],
        Study::Warmup => {
            let mut out = Vec::new();
            for rate in [3e-3f32, 1e-2] {
                let tag = if rate < 5e-3 { "3e-3" } else { "1e-2" };
                let adam = with_optimizer(base, "adam", rate, &[]);
                out.push(variant(
                    &format!("Adam {tag}, warmup {}", base.warmup),
                    &format!("adam_{tag}_warmup"),
                    adam.clone(),
                ));
                out.push(variant(
                    &format!("Adam {tag}, no warmup"),
                    &format!("adam_{tag}_no_warmup"),
                    Recipe { warmup: 0, ..adam.clone() },
                ));
                let radam = with_optimizer(
                    base,
                    "radam",
                    rate,
                    &[("betas", OptionValue::Pair(0.9, 0.99)), ("eps", Number(1e-8))],
                );
                out.push(variant(
                    &format!("RAdam {tag}, no warmup"),
                    &format!("radam_{tag}"),
                    Recipe { warmup: 0, ..radam },
                ));
                let uncorrected = with_optimizer(base, "adam", rate, &[("no_bias_correction", Switch)]);
                out.push(variant(
                    &format!("Adam {tag}, no bias correction, no warmup"),
                    &format!("adam_{tag}_uncorrected"),
                    Recipe { warmup: 0, ..uncorrected },
                ));
            }
            out
        }
        Study::Batch => {
            // 16 minibatches of 12 per step: 1/16 of the steps, rate x sqrt(16), the warmup's
            // examples kept.
            const K: usize = 16;
            let large = |r: Recipe| Recipe {
                accumulate: K,
                steps: (r.steps / K).max(2),
                warmup: (r.warmup / K).min(r.steps / K - 1),
                // Every 25 steps: validations at 20%, 40%, ... of the examples.
                eval_every: (r.steps / K / 5).max(1),
                ..r
            };
            let lamb = with_optimizer(base, "lamb", lr, &[("weight_decay", Number(0.1))]);
            let scaled = |r: &Recipe| {
                let mut r = r.clone();
                let rate = r.lr() * (K as f32).sqrt();
                r.optimizer.options.lr = Some(rate);
                r.min_lr = rate as f64 / 10.0;
                r
            };
            vec![
                variant("AdamW, batch 12", "adamw_12", adamw.clone()),
                variant("AdamW, batch 192 (16 x 12), lr x 4", "adamw_192", large(scaled(&adamw))),
                variant("LAMB, batch 12", "lamb_12", lamb.clone()),
                variant("LAMB, batch 192 (16 x 12), lr x 4", "lamb_192", large(scaled(&lamb))),
            ]
        }
    }
}

/// Runs the studies `args.compare` names, printing one line per finished variant, and
/// writes each study's CSV, SVG and table.
pub fn main(args: &Args, corpus: &CharCorpus, studies: &[Study]) {
    for &study in studies {
        let dir = args.out.join(format!("compare_{}", study.name()));
        // Each variant is a run of its own in TensorBoard too, grouped by study.
        let tensorboard = args.tensorboard.as_ref().map(|tb| tb.join(format!("compare_{}", study.name())));
        let mut results: Vec<(Variant, RunReport)> = Vec::new();
        for v in variants(study, &args.recipe) {
            let trainer = cli::exit_on_error(Trainer::new(&v.recipe, corpus.vocab.len(), &corpus.train));
            let options = RunOptions {
                out: Some(dir.clone()),
                name: v.slug.clone(),
                resume: true,
                resume_override: false,
                verbose: false,
                progress: !args.no_progress,
                interrupt: Some(cli::interrupt_flag()),
                tensorboard: cli::tensorboard_run(
                    tensorboard.as_deref(),
                    &v.slug,
                    args.log_every,
                    args.log_optimizer_state,
                ),
                distributed: None,
            };
            let report = exit_on_run_error(run(trainer, corpus, &options));
            println!(
                "{} / {}: validation loss {:.4} (EMA {}), {:.1} ms per step",
                study.name(),
                v.label,
                report.val_loss(),
                report.val_loss_averaged().map_or("-".to_string(), |e| format!("{e:.4}")),
                step_ms(&report, &v.recipe)
            );
            results.push((v, report));
        }
        cli::exit_on_error(write_study(&args.out, study, &results));
    }
}

/// Mean milliseconds per step over the whole run (from the history, so a variant finished by
/// an earlier process still has its time).
fn step_ms(report: &RunReport, recipe: &Recipe) -> f64 {
    1e3 * report.history.seconds() / recipe.steps as f64
}

/// Examples seen after `step` steps.
fn examples(recipe: &Recipe, step: u64) -> f64 {
    (step as usize * recipe.batch_size * recipe.accumulate) as f64
}

/// The validation loss after exactly a fraction of the run's examples, if the run validated
/// then.
fn val_at(report: &RunReport, recipe: &Recipe, fraction: f64) -> Option<f64> {
    let target = fraction * examples(recipe, recipe.steps as u64);
    report
        .history
        .epochs
        .iter()
        .find(|e| (examples(recipe, e.step) - target).abs() < 0.5)
        .map(|e| e.test_loss)
}

/// Writes `OUT/char_gpt_<study>.csv`, `.svg` and `.md`.
fn write_study(out: &Path, study: Study, results: &[(Variant, RunReport)]) -> Result<(), CliError> {
    let stem = out.join(format!("char_gpt_{}", study.name()));
    let write = |ext: &str, text: &str| {
        let path = stem.with_extension(ext);
        adamant::tensor::io::write_atomic(&path, text.as_bytes())
            .map_err(|e| CliError::invalid("--out", format!("{}: {e}", path.display())))
    };
    let mut csv = String::from("variant,step,examples,train_loss,val_loss,val_loss_ema,lr\n");
    for (v, report) in results {
        for e in &report.history.epochs {
            let ema = e.averaged_test_loss.map_or(String::new(), |a| a.to_string());
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{ema},{}",
                v.slug,
                e.step,
                examples(&v.recipe, e.step),
                e.train_loss,
                e.test_loss,
                e.lr
            );
        }
    }
    write("csv", &csv)?;

    let mut series: Vec<Series> = results
        .iter()
        .map(|(v, r)| Series {
            label: v.label.clone(),
            points: r.history.epochs.iter().map(|e| (examples(&v.recipe, e.step), e.test_loss)).collect(),
        })
        .collect();
    if let Some((v, r)) = results.first().filter(|(_, r)| r.val_loss_averaged().is_some()) {
        series.push(Series {
            label: format!("{}, EMA weights", v.label),
            points: r
                .history
                .epochs
                .iter()
                .filter_map(|e| e.averaged_test_loss.map(|a| (examples(&v.recipe, e.step), a)))
                .collect(),
        });
    }
    let title =
        format!("char_gpt --compare {}: validation loss (seed {})", study.name(), results[0].0.recipe.seed);
    let svg = line_chart(
        &title,
        "training examples (windows of 64 characters)",
        "validation loss (nats)",
        &series,
        false,
    )
    .map_err(|e| CliError::invalid("--compare", e))?;
    write("svg", &svg)?;

    let mut md = String::from(
        "| variant | steps x windows | val loss at 25% / 50% / 100% of the examples | EMA weights at the end | ms per step |\n|---|---|---|---|---|\n",
    );
    for (v, r) in results {
        let at = |f: f64| val_at(r, &v.recipe, f).map_or("-".to_string(), |x| format!("{x:.3}"));
        let ema = r.val_loss_averaged().map_or("-".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            md,
            "| {} | {} x {} | {} / {} / **{}** | {ema} | {:.1} |",
            v.label,
            v.recipe.steps,
            v.recipe.batch_size * v.recipe.accumulate,
            at(0.25),
            at(0.5),
            at(1.0),
            step_ms(r, &v.recipe)
        );
    }
    write("md", &md)
}
