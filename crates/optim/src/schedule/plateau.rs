//! [`Plateau`]: `torch.optim.lr_scheduler.ReduceLROnPlateau`, cutting the rate when a metric
//! stops improving. It reacts to the metric, not to the step count, so it is not a
//! [`Schedule`](super::Schedule) but a companion a [`Scheduler`](super::Scheduler) carries
//! ([`Scheduler::with_plateau`](super::Scheduler::with_plateau)).

use std::fmt;
use std::str::FromStr;

use super::parse::{number_arg, optional_tail, Args, ScheduleError};

/// The spelling [`Plateau::from_str`] reads, for error messages.
const FORM: &str = "plateau:PATIENCE[,FACTOR[,THRESHOLD[,MODE[,THRESHOLD_MODE[,COOLDOWN[,MIN_LR[,EPS]]]]]]]";

/// Whether the watched metric should go down (a loss) or up (an accuracy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlateauMode {
    /// Lower is better (`mode='min'`, the default).
    #[default]
    Min,
    /// Higher is better (`mode='max'`).
    Max,
}

/// How [`Plateau::threshold`] measures a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThresholdMode {
    /// Relative: better than `best * (1 - threshold)` in `Min` mode, `best * (1 + threshold)`
    /// in `Max` mode (`threshold_mode='rel'`, the default).
    #[default]
    Rel,
    /// Absolute: better than `best - threshold` in `Min` mode, `best + threshold` in `Max`
    /// mode (`threshold_mode='abs'`).
    Abs,
}

/// `ReduceLROnPlateau`'s settings; `Default` gives PyTorch's defaults (`mode='min'`,
/// `factor=0.1`, `patience=10`, `threshold=1e-4`, `threshold_mode='rel'`, `cooldown=0`,
/// `min_lr=0`, `eps=1e-8`).
///
/// Once per epoch the metric is observed ([`Plateau::observe`], through
/// [`Scheduler::observe`](super::Scheduler::observe)), and the state changes exactly as in
/// PyTorch's `ReduceLROnPlateau.step(metric)`:
///
/// ```text
/// if better(metric, best):  best <- metric;  num_bad_epochs <- 0
/// else:                     num_bad_epochs <- num_bad_epochs + 1
/// if cooldown_counter > 0:  cooldown_counter <- cooldown_counter - 1;  num_bad_epochs <- 0
/// if num_bad_epochs > patience:
///     new <- max(lr * factor, min_lr)
///     if lr - new > eps:  lr <- new          (a cut smaller than eps is skipped)
///     cooldown_counter <- cooldown;  num_bad_epochs <- 0
/// ```
///
/// where `better` is [`ThresholdMode`]'s comparison, `best` starts at `+inf` (`Min`) or
/// `-inf` (`Max`), so the first metric is always an improvement, and a NaN metric is never
/// better (it counts as a bad epoch). The reduction happens after `patience + 1` bad
/// epochs in a row; the `cooldown` epochs after a reduction do not count as bad.
///
/// `lr` here is the rate the plateau cuts, the base rate of the scheduler's schedule (see
/// [`Scheduler::with_plateau`](super::Scheduler::with_plateau) for how the two combine).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plateau {
    /// Whether the metric should fall or rise (default [`PlateauMode::Min`]).
    pub mode: PlateauMode,
    /// Multiplies the rate at each reduction, in [0, 1) (default 0.1).
    pub factor: f64,
    /// Bad epochs tolerated before a reduction: the `patience + 1`-th in a row cuts the rate
    /// (default 10).
    pub patience: u64,
    /// Smallest improvement that counts, in [`Plateau::threshold_mode`]'s terms (default 1e-4).
    pub threshold: f64,
    /// Relative or absolute threshold (default [`ThresholdMode::Rel`]).
    pub threshold_mode: ThresholdMode,
    /// Epochs after a reduction during which bad epochs are not counted (default 0).
    pub cooldown: u64,
    /// The rate is never cut below this, an absolute rate (default 0).
    pub min_lr: f64,
    /// A cut that would lower the rate by no more than this is skipped (default 1e-8).
    pub eps: f64,
}

impl Default for Plateau {
    fn default() -> Self {
        Plateau {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// What a [`Plateau`] remembers between epochs: PyTorch's `best`, `num_bad_epochs` and
/// `cooldown_counter`, and the rate it has cut so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauState {
    /// The best metric seen, `+inf` (`Min`) or `-inf` (`Max`) before the first.
    pub best: f64,
    /// Epochs in a row without a significant improvement (reset by a reduction and during
    /// cooldown).
    pub num_bad_epochs: u64,
    /// Epochs of cooldown left.
    pub cooldown_counter: u64,
    /// The rate the plateau has brought the base rate to: the base rate itself until the
    /// first cut. Kept in `f64`, as PyTorch keeps a group's `lr`, so that repeated cuts
    /// round as PyTorch's do.
    pub lr: f64,
}

impl Plateau {
    /// Checks every field's range: `factor` in [0, 1) (PyTorch refuses `factor >= 1`), and
    /// `threshold`, `min_lr`, `eps` finite and >= 0.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let invalid = |reason: String| Err(ScheduleError::Invalid { spec: self.to_string(), reason });
        let bad = |x: f64| !(x.is_finite() && x >= 0.0);
        if !(0.0..1.0).contains(&self.factor) {
            invalid(format!("FACTOR must be in [0, 1), got {}", self.factor))
        } else if bad(self.threshold) {
            invalid(format!("THRESHOLD must be finite and >= 0, got {}", self.threshold))
        } else if bad(self.min_lr) {
            invalid(format!("MIN_LR must be finite and >= 0, got {}", self.min_lr))
        } else if bad(self.eps) {
            invalid(format!("EPS must be finite and >= 0, got {}", self.eps))
        } else {
            Ok(())
        }
    }

    /// The state before any epoch, cutting the base rate `base_lr`.
    pub fn start(&self, base_lr: f64) -> PlateauState {
        PlateauState { best: self.worst(), num_bad_epochs: 0, cooldown_counter: 0, lr: base_lr }
    }

    /// PyTorch's `mode_worse`: the `best` of a fresh state, worse than any metric.
    pub fn worst(&self) -> f64 {
        match self.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    /// Whether `metric` improves on `best` by more than the threshold (PyTorch's
    /// `_is_better`, operation for operation).
    pub fn is_better(&self, metric: f64, best: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (self.threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + self.threshold,
        }
    }

    /// One epoch's metric: updates `state` as the type's documentation shows and returns
    /// whether the rate was cut.
    pub fn observe(&self, state: &mut PlateauState, metric: f64) -> bool {
        if self.is_better(metric, state.best) {
            state.best = metric;
            state.num_bad_epochs = 0;
        } else {
            state.num_bad_epochs = state.num_bad_epochs.saturating_add(1);
        }
        if state.cooldown_counter > 0 {
            state.cooldown_counter -= 1;
            state.num_bad_epochs = 0; // bad epochs in cooldown are ignored
        }
        let mut cut = false;
        if state.num_bad_epochs > self.patience {
            let new = (state.lr * self.factor).max(self.min_lr);
            if state.lr - new > self.eps {
                state.lr = new;
                cut = true;
            }
            state.cooldown_counter = self.cooldown;
            state.num_bad_epochs = 0;
        }
        cut
    }
}

impl fmt::Display for PlateauMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlateauMode::Min => "min",
            PlateauMode::Max => "max",
        })
    }
}

impl fmt::Display for ThresholdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThresholdMode::Rel => "rel",
            ThresholdMode::Abs => "abs",
        })
    }
}

impl fmt::Display for Plateau {
    /// The command-line spelling `plateau:PATIENCE[,FACTOR[,...]]`, written up to the last
    /// argument that differs from its default, so parsing it gives back an equal plateau.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Plateau::default();
        let tail = optional_tail(&[
            number_arg(self.factor, d.factor),
            number_arg(self.threshold, d.threshold),
            (self.mode.to_string(), self.mode == d.mode),
            (self.threshold_mode.to_string(), self.threshold_mode == d.threshold_mode),
            (self.cooldown.to_string(), self.cooldown == d.cooldown),
            number_arg(self.min_lr, d.min_lr),
            number_arg(self.eps, d.eps),
        ]);
        write!(f, "plateau:{}{tail}", self.patience)
    }
}

impl FromStr for Plateau {
    type Err = ScheduleError;

    /// Parses `plateau:PATIENCE[,FACTOR[,THRESHOLD[,MODE[,THRESHOLD_MODE[,COOLDOWN[,MIN_LR[,EPS]]]]]]]`
    /// (MODE `min` or `max`, THRESHOLD_MODE `rel` or `abs`; the defaults are PyTorch's, see
    /// [`Plateau::default`]), e.g. `plateau:5`, `plateau:5,0.5` or `plateau:3,0.1,0.01,max`.
    /// The result is validated; every error is one line naming the problem.
    fn from_str(spec: &str) -> Result<Plateau, ScheduleError> {
        let a = Args::split(spec);
        if a.name != "plateau" {
            let reason = format!("not a plateau (expected {FORM})");
            return Err(ScheduleError::Invalid { spec: spec.to_string(), reason });
        }
        a.count(FORM, 1, 8)?;
        let d = Plateau::default();
        let plateau = Plateau {
            patience: a.epochs_or(0, "PATIENCE", d.patience)?,
            factor: a.number(1, "FACTOR", d.factor)?,
            threshold: a.number(2, "THRESHOLD", d.threshold)?,
            mode: [PlateauMode::Min, PlateauMode::Max]
                [a.word(3, "MODE", &["min", "max"], "'min' or 'max'", 0)?],
            threshold_mode: [ThresholdMode::Rel, ThresholdMode::Abs]
                [a.word(4, "THRESHOLD_MODE", &["rel", "abs"], "'rel' or 'abs'", 0)?],
            cooldown: a.epochs_or(5, "COOLDOWN", d.cooldown)?,
            min_lr: a.number(6, "MIN_LR", d.min_lr)?,
            eps: a.number(7, "EPS", d.eps)?,
        };
        plateau.validate().map_err(|e| a.respell(e))?;
        Ok(plateau)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let d = Plateau::default();
        let cases = [
            ("plateau:10", d),
            ("plateau:5", Plateau { patience: 5, ..d }),
            ("plateau:5,0.5", Plateau { patience: 5, factor: 0.5, ..d }),
            ("plateau:3,0.1,0.01,max", Plateau { patience: 3, threshold: 0.01, mode: PlateauMode::Max, ..d }),
            (
                "plateau: 2, 0.5, 0.05, min, abs, 3, 1e-5, 0",
                Plateau {
                    patience: 2,
                    factor: 0.5,
                    threshold: 0.05,
                    threshold_mode: ThresholdMode::Abs,
                    cooldown: 3,
                    min_lr: 1e-5,
                    eps: 0.0,
                    ..d
                },
            ),
        ];
        for (text, want) in cases {
            let got: Plateau = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string().parse::<Plateau>().unwrap(), got, "{text} -> {got}");
        }
        assert_eq!(Plateau { patience: 4, cooldown: 2, ..d }.to_string(), "plateau:4,0.1,0.0001,min,rel,2");
        assert_eq!(d.to_string(), "plateau:10");
    }

    #[test]
    fn parse_errors_are_one_line() {
        let cases: [(&str, &str); 10] = [
            ("step:3", "'step:3': not a plateau (expected plateau:PATIENCE[,FACTOR"),
            ("plateau", "'plateau': wrong number of arguments, expected plateau:PATIENCE[,FACTOR"),
            ("plateau:1,2,3,4,5,6,7,8,9", "wrong number of arguments"),
            ("plateau:-1", "PATIENCE must be a whole number of epochs, got '-1'"),
            ("plateau:3,half", "FACTOR must be a number, got 'half'"),
            ("plateau:3,1", "'plateau:3,1': FACTOR must be in [0, 1), got 1"),
            ("plateau:3,0.1,-1", "THRESHOLD must be finite and >= 0, got -1"),
            ("plateau:3,0.1,0.1,lowest", "MODE must be 'min' or 'max', got 'lowest'"),
            ("plateau:3,0.1,0.1,max,relative", "THRESHOLD_MODE must be 'rel' or 'abs', got 'relative'"),
            ("plateau:3,0.1,0.1,max,rel,0,inf", "MIN_LR must be finite and >= 0, got inf"),
        ];
        for (text, want) in cases {
            let msg = text.parse::<Plateau>().unwrap_err().to_string();
            assert!(msg.contains(want), "{text}: '{msg}' lacks '{want}'");
            assert!(!msg.contains('\n'), "{text}: multi-line message '{msg}'");
        }
        let msg = "plateau:3,0.1,0.1,max,rel,0,0,-1e-8".parse::<Plateau>().unwrap_err().to_string();
        assert!(msg.contains("EPS must be finite and >= 0, got -0.00000001"), "{msg}");
    }

    #[test]
    fn nan_is_a_bad_epoch_and_the_first_metric_is_always_best() {
        for mode in [PlateauMode::Min, PlateauMode::Max] {
            let p = Plateau { mode, patience: 1, factor: 0.5, ..Plateau::default() };
            let mut s = p.start(1.0);
            assert!(!p.observe(&mut s, f64::NAN));
            assert_eq!((s.best, s.num_bad_epochs), (p.worst(), 1));
            assert!(!p.observe(&mut s, 3.0));
            assert_eq!((s.best, s.num_bad_epochs), (3.0, 0));
            assert!(!p.observe(&mut s, f64::NAN));
            assert!(p.observe(&mut s, f64::NAN), "the second bad epoch in a row passes patience 1");
            assert_eq!((s.lr, s.num_bad_epochs, s.best), (0.5, 0, 3.0));
        }
    }

    #[test]
    fn thresholds_compare_as_pytorch() {
        let p = |mode, threshold_mode| Plateau { mode, threshold_mode, threshold: 0.1, ..Plateau::default() };
        let (min, max, rel, abs) =
            (PlateauMode::Min, PlateauMode::Max, ThresholdMode::Rel, ThresholdMode::Abs);
        // Relative: 10% below (above) best; absolute: 0.1 below (above) best. Equal is not better.
        assert!(p(min, rel).is_better(1.79, 2.0) && !p(min, rel).is_better(1.8, 2.0));
        assert!(p(min, abs).is_better(1.89, 2.0) && !p(min, abs).is_better(1.9, 2.0));
        assert!(p(max, rel).is_better(2.21, 2.0) && !p(max, rel).is_better(2.2, 2.0));
        assert!(p(max, abs).is_better(2.11, 2.0) && !p(max, abs).is_better(2.1, 2.0));
    }
}
