//! Building an optimizer by name from command-line style options.
//!
//! [`OptimizerOptions`] has one optional field per `torch.optim` hyperparameter; [`build`]
//! makes the named optimizer with the given options and `torch.optim`'s defaults for the
//! rest. An option the optimizer does not have, or an invalid value, is an error naming it.

use std::fmt;

use crate::{
    Adadelta, AdadeltaConfig, Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Adamax,
    AdamaxConfig, NAdam, NAdamConfig, Optimizer, RAdam, RAdamConfig, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};

/// The names [`build`] accepts.
pub const OPTIMIZER_NAMES: &[&str] =
    &["sgd", "adam", "adamw", "adamax", "nadam", "radam", "adagrad", "rmsprop", "adadelta"];

/// Hyperparameters as given on a command line; `None` means the optimizer's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerOptions {
    /// `--lr`
    pub lr: Option<f32>,
    /// `--betas B1,B2`
    pub betas: Option<(f32, f32)>,
    /// `--eps`
    pub eps: Option<f32>,
    /// `--weight-decay`
    pub weight_decay: Option<f32>,
    /// `--amsgrad` (adam, adamw)
    pub amsgrad: bool,
    /// `--momentum` (sgd, rmsprop)
    pub momentum: Option<f32>,
    /// `--dampening` (sgd)
    pub dampening: Option<f32>,
    /// `--nesterov` (sgd)
    pub nesterov: bool,
    /// `--alpha` (rmsprop's smoothing constant)
    pub alpha: Option<f32>,
    /// `--centered` (rmsprop)
    pub centered: bool,
    /// `--rho` (adadelta)
    pub rho: Option<f32>,
    /// `--lr-decay` (adagrad)
    pub lr_decay: Option<f32>,
    /// `--initial-accumulator-value` (adagrad)
    pub initial_accumulator_value: Option<f32>,
    /// `--momentum-decay` (nadam)
    pub momentum_decay: Option<f32>,
    /// `--no-bias-correction` (adam)
    pub no_bias_correction: bool,
}

/// Why [`build`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsError {
    /// The optimizer name is not one of [`OPTIMIZER_NAMES`].
    UnknownOptimizer(String),
    /// An option was given to an optimizer that does not have it.
    NotApplicable {
        /// The option, as spelled on the command line.
        option: &'static str,
        /// The optimizer.
        optimizer: String,
    },
    /// An option's value is out of range.
    Invalid {
        /// The option, as spelled on the command line.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::UnknownOptimizer(name) => {
                write!(
                    f,
                    "--optimizer: unknown optimizer '{name}' (expected one of: {})",
                    OPTIMIZER_NAMES.join(", ")
                )
            }
            OptionsError::NotApplicable { option, optimizer } => {
                write!(f, "{option}: not an option of {optimizer}")
            }
            OptionsError::Invalid { option, reason } => write!(f, "{option}: {reason}"),
        }
    }
}

impl std::error::Error for OptionsError {}

fn invalid(option: &'static str, reason: impl Into<String>) -> OptionsError {
    OptionsError::Invalid { option, reason: reason.into() }
}

/// Checks `lo <= x` (or `lo < x` when `open_low`) and `x < hi` (or `x <= hi` when `closed_high`).
fn check_range(
    option: &'static str,
    x: f32,
    lo: f32,
    open_low: bool,
    hi: f32,
    closed_high: bool,
) -> Result<f32, OptionsError> {
    let low_ok = if open_low { x > lo } else { x >= lo };
    let high_ok = if closed_high { x <= hi } else { x < hi };
    // NaN fails both comparisons.
    if !low_ok || !high_ok {
        let l = if open_low { "(" } else { "[" };
        let h = if closed_high { "]" } else { ")" };
        return Err(invalid(option, format!("{x} is outside {l}{lo}, {hi}{h}")));
    }
    Ok(x)
}

impl OptimizerOptions {
    fn lr_or(&self, default: f32) -> Result<f32, OptionsError> {
        let lr = self.lr.unwrap_or(default);
        if !lr.is_finite() || lr < 0.0 {
            return Err(invalid("--lr", format!("learning rate must be a finite number >= 0, got {lr}")));
        }
        Ok(lr)
    }
    fn eps_or(&self, default: f32) -> Result<f32, OptionsError> {
        check_range("--eps", self.eps.unwrap_or(default), 0.0, false, f32::INFINITY, false)
    }
    fn weight_decay_or(&self, default: f32) -> Result<f32, OptionsError> {
        check_range("--weight-decay", self.weight_decay.unwrap_or(default), 0.0, false, f32::INFINITY, false)
    }
    fn betas_or(&self, default: (f32, f32)) -> Result<(f32, f32), OptionsError> {
        let (b1, b2) = self.betas.unwrap_or(default);
        Ok((
            check_range("--betas", b1, 0.0, false, 1.0, false)?,
            check_range("--betas", b2, 0.0, false, 1.0, false)?,
        ))
    }

    /// Errors if any option outside `allowed` was given.
    fn only(&self, optimizer: &str, allowed: &[&'static str]) -> Result<(), OptionsError> {
        let given: [(&'static str, bool); 15] = [
            ("--lr", self.lr.is_some()),
            ("--betas", self.betas.is_some()),
            ("--eps", self.eps.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--amsgrad", self.amsgrad),
            ("--momentum", self.momentum.is_some()),
            ("--dampening", self.dampening.is_some()),
            ("--nesterov", self.nesterov),
            ("--alpha", self.alpha.is_some()),
            ("--centered", self.centered),
            ("--rho", self.rho.is_some()),
            ("--lr-decay", self.lr_decay.is_some()),
            ("--initial-accumulator-value", self.initial_accumulator_value.is_some()),
            ("--momentum-decay", self.momentum_decay.is_some()),
            ("--no-bias-correction", self.no_bias_correction),
        ];
        match given.iter().find(|(name, set)| *set && !allowed.contains(name)) {
            Some((option, _)) => {
                Err(OptionsError::NotApplicable { option, optimizer: optimizer.to_string() })
            }
            None => Ok(()),
        }
    }
}

const COMMON: [&str; 4] = ["--lr", "--betas", "--eps", "--weight-decay"];

/// Makes the optimizer `name` with `options` over `torch.optim`'s defaults.
pub fn build(name: &str, options: &OptimizerOptions) -> Result<Box<dyn Optimizer + Send>, OptionsError> {
    let o = options;
    Ok(match name {
        "sgd" => {
            o.only(name, &["--lr", "--weight-decay", "--momentum", "--dampening", "--nesterov"])?;
            let d = SgdConfig::default();
            let momentum = check_range(
                "--momentum",
                o.momentum.unwrap_or(d.momentum),
                0.0,
                false,
                f32::INFINITY,
                false,
            )?;
            let dampening =
                check_range("--dampening", o.dampening.unwrap_or(d.dampening), 0.0, false, 1.0, true)?;
            if o.nesterov && (momentum <= 0.0 || dampening != 0.0) {
                return Err(invalid("--nesterov", "needs --momentum > 0 and --dampening 0"));
            }
            Box::new(Sgd::new(SgdConfig {
                lr: o.lr_or(d.lr)?,
                momentum,
                dampening,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                nesterov: o.nesterov,
            }))
        }
        "adam" => {
            o.only(name, &[COMMON.as_slice(), &["--amsgrad", "--no-bias-correction"]].concat())?;
            let d = AdamConfig::default();
            Box::new(Adam::new(AdamConfig {
                lr: o.lr_or(d.lr)?,
                betas: o.betas_or(d.betas)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                amsgrad: o.amsgrad,
                bias_correction: !o.no_bias_correction,
            }))
        }
        "adamw" => {
            o.only(name, &[COMMON.as_slice(), &["--amsgrad"]].concat())?;
            let d = AdamWConfig::default();
            Box::new(AdamW::new(AdamWConfig {
                lr: o.lr_or(d.lr)?,
                betas: o.betas_or(d.betas)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                amsgrad: o.amsgrad,
            }))
        }
        "adamax" => {
            o.only(name, &COMMON)?;
            let d = AdamaxConfig::default();
            Box::new(Adamax::new(AdamaxConfig {
                lr: o.lr_or(d.lr)?,
                betas: o.betas_or(d.betas)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
            }))
        }
        "nadam" => {
            o.only(name, &[COMMON.as_slice(), &["--momentum-decay"]].concat())?;
            let d = NAdamConfig::default();
            let momentum_decay = check_range(
                "--momentum-decay",
                o.momentum_decay.unwrap_or(d.momentum_decay),
                0.0,
                false,
                f32::INFINITY,
                false,
            )?;
            Box::new(NAdam::new(NAdamConfig {
                lr: o.lr_or(d.lr)?,
                betas: o.betas_or(d.betas)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                momentum_decay,
                ..d
            }))
        }
        "radam" => {
            o.only(name, &COMMON)?;
            let d = RAdamConfig::default();
            Box::new(RAdam::new(RAdamConfig {
                lr: o.lr_or(d.lr)?,
                betas: o.betas_or(d.betas)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                ..d
            }))
        }
        "adagrad" => {
            o.only(name, &["--lr", "--eps", "--weight-decay", "--lr-decay", "--initial-accumulator-value"])?;
            let d = AdagradConfig::default();
            Box::new(Adagrad::new(AdagradConfig {
                lr: o.lr_or(d.lr)?,
                lr_decay: check_range(
                    "--lr-decay",
                    o.lr_decay.unwrap_or(d.lr_decay),
                    0.0,
                    false,
                    f32::INFINITY,
                    false,
                )?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                initial_accumulator_value: check_range(
                    "--initial-accumulator-value",
                    o.initial_accumulator_value.unwrap_or(d.initial_accumulator_value),
                    0.0,
                    false,
                    f32::INFINITY,
                    false,
                )?,
                eps: o.eps_or(d.eps)?,
            }))
        }
        "rmsprop" => {
            o.only(name, &["--lr", "--eps", "--weight-decay", "--alpha", "--momentum", "--centered"])?;
            let d = RmsPropConfig::default();
            Box::new(RmsProp::new(RmsPropConfig {
                lr: o.lr_or(d.lr)?,
                alpha: check_range("--alpha", o.alpha.unwrap_or(d.alpha), 0.0, false, 1.0, true)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
                momentum: check_range(
                    "--momentum",
                    o.momentum.unwrap_or(d.momentum),
                    0.0,
                    false,
                    f32::INFINITY,
                    false,
                )?,
                centered: o.centered,
            }))
        }
        "adadelta" => {
            o.only(name, &["--lr", "--eps", "--weight-decay", "--rho"])?;
            let d = AdadeltaConfig::default();
            Box::new(Adadelta::new(AdadeltaConfig {
                lr: o.lr_or(d.lr)?,
                rho: check_range("--rho", o.rho.unwrap_or(d.rho), 0.0, false, 1.0, true)?,
                eps: o.eps_or(d.eps)?,
                weight_decay: o.weight_decay_or(d.weight_decay)?,
            }))
        }
        other => return Err(OptionsError::UnknownOptimizer(other.to_string())),
    })
}
