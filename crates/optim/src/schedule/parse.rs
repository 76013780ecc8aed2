//! The command-line spellings of schedules (`step:30,0.1`): [`Schedule`]'s `Display` and
//! `FromStr`, their one-line errors, and the argument reader [`Args`] the plateau's
//! spelling shares.

use std::fmt;
use std::str::FromStr;

use super::Schedule;

/// `torch.optim.lr_scheduler.StepLR`'s default `gamma`, used by `step:STEPS`.
const DEFAULT_STEP_GAMMA: f64 = 0.1;
/// `torch.optim.lr_scheduler.LinearLR`'s default `start_factor`, used by `warmup:STEPS`.
const DEFAULT_START_FACTOR: f64 = 1.0 / 3.0;
/// `OneCycleLR`'s defaults for `pct_start`, `div_factor` and `final_div_factor`.
const DEFAULT_PCT_START: f64 = 0.3;
const DEFAULT_DIV_FACTOR: f64 = 25.0;
const DEFAULT_FINAL_DIV_FACTOR: f64 = 1e4;

/// The command-line spellings, for error messages.
const SPELLINGS: &str = "constant, inverse-sqrt, step:STEPS[,GAMMA], exp:GAMMA, \
                         warmup:STEPS[,START_FACTOR], cosine:T_MAX[,ETA_MIN], \
                         warmup-cosine:WARMUP,T_MAX[,ETA_MIN], noam:WARMUP,D_MODEL[,SCALE], \
                         onecycle:TOTAL_STEPS[,PCT_START[,DIV_FACTOR[,FINAL_DIV_FACTOR]]], \
                         onecycle-three-phase:TOTAL_STEPS[,PCT_START[,DIV_FACTOR[,FINAL_DIV_FACTOR]]]";

/// Why a schedule (or a plateau) was refused: a spelling that does not parse, or a value out
/// of range. Every message is one line naming the spelling given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// The name is not one of the known schedules.
    Unknown {
        /// The whole spelling given.
        spec: String,
    },
    /// The schedule got the wrong number of arguments.
    Arguments {
        /// The whole spelling given.
        spec: String,
        /// The form it takes (`"step:STEPS[,GAMMA]"`).
        form: &'static str,
    },
    /// An argument is not a number of the required kind.
    Number {
        /// The whole spelling given.
        spec: String,
        /// The argument (`"STEPS"`).
        field: &'static str,
        /// The kind of number it must be (`"a whole number of steps"`).
        expected: &'static str,
        /// What was given for it.
        found: String,
    },
    /// A value is out of range.
    Invalid {
        /// The schedule, spelled as on the command line.
        spec: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Unknown { spec } => {
                write!(f, "unknown learning-rate schedule '{spec}' (expected one of: {SPELLINGS})")
            }
            ScheduleError::Arguments { spec, form } => {
                write!(f, "learning-rate schedule '{spec}': wrong number of arguments, expected {form}")
            }
            ScheduleError::Number { spec, field, expected, found } => {
                write!(f, "learning-rate schedule '{spec}': {field} must be {expected}, got '{found}'")
            }
            ScheduleError::Invalid { spec, reason } => write!(f, "learning-rate schedule '{spec}': {reason}"),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// `,a,b,c` for the optional trailing arguments `(value, default)`, up to the last one that
/// differs from its default (the ones before it must be written to keep their positions).
pub(super) fn optional_tail(args: &[(String, bool)]) -> String {
    let last = args.iter().rposition(|(_, is_default)| !is_default);
    args[..last.map_or(0, |i| i + 1)].iter().map(|(text, _)| format!(",{text}")).collect()
}

/// An `f64` argument for [`optional_tail`]: its text and whether it is the default.
pub(super) fn number_arg(x: f64, default: f64) -> (String, bool) {
    (x.to_string(), x == default)
}

impl fmt::Display for Schedule {
    /// The command-line spelling; optional arguments are written only when they (or one after
    /// them) differ from their defaults, and numbers in Rust's shortest round-trip form, so
    /// parsing the text gives back an equal schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::InverseSqrt => write!(f, "inverse-sqrt"),
            Schedule::Step { step_size, gamma } => {
                write!(f, "step:{step_size}{}", optional_tail(&[number_arg(gamma, DEFAULT_STEP_GAMMA)]))
            }
            Schedule::Exponential { gamma } => write!(f, "exp:{gamma}"),
            Schedule::LinearWarmup { warmup_steps, start_factor } => write!(
                f,
                "warmup:{warmup_steps}{}",
                optional_tail(&[number_arg(start_factor, DEFAULT_START_FACTOR)])
            ),
            Schedule::CosineAnnealing { t_max, eta_min } => {
                write!(f, "cosine:{t_max}{}", optional_tail(&[number_arg(eta_min, 0.0)]))
            }
            Schedule::WarmupCosine { warmup_steps, t_max, eta_min } => {
                write!(
                    f,
                    "warmup-cosine:{warmup_steps},{t_max}{}",
                    optional_tail(&[number_arg(eta_min, 0.0)])
                )
            }
            Schedule::Noam { warmup_steps, d_model, scale } => {
                write!(f, "noam:{warmup_steps},{d_model}{}", optional_tail(&[number_arg(scale, 1.0)]))
            }
            Schedule::OneCycle { total_steps, pct_start, div_factor, final_div_factor, three_phase } => {
                let name = if three_phase { "onecycle-three-phase" } else { "onecycle" };
                let tail = optional_tail(&[
                    number_arg(pct_start, DEFAULT_PCT_START),
                    number_arg(div_factor, DEFAULT_DIV_FACTOR),
                    number_arg(final_div_factor, DEFAULT_FINAL_DIV_FACTOR),
                ]);
                write!(f, "{name}:{total_steps}{tail}")
            }
        }
    }
}

/// The arguments of one spelling `name:a,b,c`, read by position with errors that name the
/// spelling and the argument.
pub(super) struct Args<'a> {
    /// The whole spelling, for error messages.
    pub spec: &'a str,
    /// The name before the colon, trimmed.
    pub name: &'a str,
    /// The comma-separated arguments after it, trimmed (none without a colon).
    args: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// Splits `spec` into its name and arguments.
    pub fn split(spec: &'a str) -> Args<'a> {
        let (name, args) = match spec.split_once(':') {
            Some((name, rest)) => (name.trim(), rest.split(',').map(str::trim).collect()),
            None => (spec.trim(), Vec::new()),
        };
        Args { spec, name, args }
    }

    /// Checks that there are `min..=max` arguments (`form` is the spelling to suggest).
    pub fn count(&self, form: &'static str, min: usize, max: usize) -> Result<(), ScheduleError> {
        // `constant:` has one (empty) argument, so a stray colon is an argument-count error.
        if self.args.len() < min || self.args.len() > max {
            return Err(ScheduleError::Arguments { spec: self.spec.to_string(), form });
        }
        Ok(())
    }

    /// Argument `i` as a whole number of steps (it must be present).
    pub fn steps(&self, i: usize, field: &'static str) -> Result<u64, ScheduleError> {
        self.args[i].parse::<u64>().map_err(|_| self.not_a(field, "a whole number of steps", self.args[i]))
    }

    /// Argument `i` as a whole number (a count that is not of steps; it must be present).
    pub fn whole(&self, i: usize, field: &'static str) -> Result<u64, ScheduleError> {
        self.args[i].parse::<u64>().map_err(|_| self.not_a(field, "a whole number", self.args[i]))
    }

    /// Argument `i` as a whole number of epochs, or `default` when it is not given.
    pub fn epochs_or(&self, i: usize, field: &'static str, default: u64) -> Result<u64, ScheduleError> {
        match self.args.get(i) {
            None => Ok(default),
            Some(a) => a.parse::<u64>().map_err(|_| self.not_a(field, "a whole number of epochs", a)),
        }
    }

    /// Argument `i` as a number, or `default` when it is not given.
    pub fn number(&self, i: usize, field: &'static str, default: f64) -> Result<f64, ScheduleError> {
        match self.args.get(i) {
            None => Ok(default),
            Some(a) => a.parse::<f64>().map_err(|_| self.not_a(field, "a number", a)),
        }
    }

    /// Argument `i` as the index of one of `words` (`expected` lists them for the error), or
    /// `default` when it is not given.
    pub fn word(
        &self,
        i: usize,
        field: &'static str,
        words: &[&str],
        expected: &'static str,
        default: usize,
    ) -> Result<usize, ScheduleError> {
        match self.args.get(i) {
            None => Ok(default),
            Some(a) => words.iter().position(|w| w == a).ok_or_else(|| self.not_a(field, expected, a)),
        }
    }

    fn not_a(&self, field: &'static str, expected: &'static str, found: &str) -> ScheduleError {
        ScheduleError::Number { spec: self.spec.to_string(), field, expected, found: found.to_string() }
    }

    /// `Invalid` errors of a value's validation, reported in the user's spelling rather than
    /// the normalised one.
    pub fn respell(&self, e: ScheduleError) -> ScheduleError {
        match e {
            ScheduleError::Invalid { reason, .. } => {
                ScheduleError::Invalid { spec: self.spec.to_string(), reason }
            }
            other => other,
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Parses the command-line spellings: `constant`, `inverse-sqrt`, `step:STEPS[,GAMMA]`
    /// (GAMMA defaults to `StepLR`'s 0.1), `exp:GAMMA`, `warmup:STEPS[,START_FACTOR]`
    /// (START_FACTOR defaults to `LinearLR`'s 1/3), `cosine:T_MAX[,ETA_MIN]`,
    /// `warmup-cosine:WARMUP,T_MAX[,ETA_MIN]` (ETA_MIN defaults to 0),
    /// `noam:WARMUP,D_MODEL[,SCALE]` (SCALE defaults to 1), and
    /// `onecycle:TOTAL_STEPS[,PCT_START[,DIV_FACTOR[,FINAL_DIV_FACTOR]]]` (defaults
    /// `OneCycleLR`'s 0.3, 25, 1e4) or `onecycle-three-phase:` with the same arguments. The
    /// result is validated; every error is one line naming the problem.
    fn from_str(spec: &str) -> Result<Schedule, ScheduleError> {
        let a = Args::split(spec);
        let (form, min, max): (&'static str, usize, usize) = match a.name {
            "constant" => ("constant", 0, 0),
            "inverse-sqrt" => ("inverse-sqrt", 0, 0),
            "step" => ("step:STEPS[,GAMMA]", 1, 2),
            "exp" => ("exp:GAMMA", 1, 1),
            "warmup" => ("warmup:STEPS[,START_FACTOR]", 1, 2),
            "cosine" => ("cosine:T_MAX[,ETA_MIN]", 1, 2),
            "warmup-cosine" => ("warmup-cosine:WARMUP,T_MAX[,ETA_MIN]", 2, 3),
            "noam" => ("noam:WARMUP,D_MODEL[,SCALE]", 2, 3),
            "onecycle" => ("onecycle:TOTAL_STEPS[,PCT_START[,DIV_FACTOR[,FINAL_DIV_FACTOR]]]", 1, 4),
            "onecycle-three-phase" => {
                ("onecycle-three-phase:TOTAL_STEPS[,PCT_START[,DIV_FACTOR[,FINAL_DIV_FACTOR]]]", 1, 4)
            }
            _ => return Err(ScheduleError::Unknown { spec: spec.to_string() }),
        };
        a.count(form, min, max)?;
        let schedule = match a.name {
            "constant" => Schedule::Constant,
            "inverse-sqrt" => Schedule::InverseSqrt,
            "step" => Schedule::Step {
                step_size: a.steps(0, "STEPS")?,
                gamma: a.number(1, "GAMMA", DEFAULT_STEP_GAMMA)?,
            },
            // `exp` has exactly one argument (checked above), so the default is never used.
            "exp" => Schedule::Exponential { gamma: a.number(0, "GAMMA", f64::NAN)? },
            "warmup" => Schedule::LinearWarmup {
                warmup_steps: a.steps(0, "STEPS")?,
                start_factor: a.number(1, "START_FACTOR", DEFAULT_START_FACTOR)?,
            },
            "cosine" => Schedule::CosineAnnealing {
                t_max: a.steps(0, "T_MAX")?,
                eta_min: a.number(1, "ETA_MIN", 0.0)?,
            },
            "warmup-cosine" => Schedule::WarmupCosine {
                warmup_steps: a.steps(0, "WARMUP")?,
                t_max: a.steps(1, "T_MAX")?,
                eta_min: a.number(2, "ETA_MIN", 0.0)?,
            },
            "noam" => Schedule::Noam {
                warmup_steps: a.steps(0, "WARMUP")?,
                d_model: a.whole(1, "D_MODEL")?,
                scale: a.number(2, "SCALE", 1.0)?,
            },
            "onecycle" | "onecycle-three-phase" => Schedule::OneCycle {
                total_steps: a.steps(0, "TOTAL_STEPS")?,
                pct_start: a.number(1, "PCT_START", DEFAULT_PCT_START)?,
                div_factor: a.number(2, "DIV_FACTOR", DEFAULT_DIV_FACTOR)?,
                final_div_factor: a.number(3, "FINAL_DIV_FACTOR", DEFAULT_FINAL_DIV_FACTOR)?,
                three_phase: a.name == "onecycle-three-phase",
            },
            _ => unreachable!("names were matched above"),
        };
        schedule.validate().map_err(|e| a.respell(e))?;
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        let one_cycle = |total_steps, pct_start, div_factor, final_div_factor, three_phase| {
            Schedule::OneCycle { total_steps, pct_start, div_factor, final_div_factor, three_phase }
        };
        let cases = [
            ("constant", Schedule::Constant),
            ("inverse-sqrt", Schedule::InverseSqrt),
            ("step:30,0.1", Schedule::Step { step_size: 30, gamma: 0.1 }),
            ("step:30", Schedule::Step { step_size: 30, gamma: 0.1 }),
            ("step:7,0.5", Schedule::Step { step_size: 7, gamma: 0.5 }),
            ("exp:0.99", Schedule::Exponential { gamma: 0.99 }),
            ("warmup:500", Schedule::LinearWarmup { warmup_steps: 500, start_factor: 1.0 / 3.0 }),
            ("warmup:500,0.01", Schedule::LinearWarmup { warmup_steps: 500, start_factor: 0.01 }),
            ("cosine:10000", Schedule::CosineAnnealing { t_max: 10000, eta_min: 0.0 }),
            ("cosine:10000,1e-5", Schedule::CosineAnnealing { t_max: 10000, eta_min: 1e-5 }),
            (
                "warmup-cosine:500,10000",
                Schedule::WarmupCosine { warmup_steps: 500, t_max: 10000, eta_min: 0.0 },
            ),
            (
                "warmup-cosine:0,10000,0.0001",
                Schedule::WarmupCosine { warmup_steps: 0, t_max: 10000, eta_min: 1e-4 },
            ),
            ("noam:4000,512", Schedule::Noam { warmup_steps: 4000, d_model: 512, scale: 1.0 }),
            ("noam: 4000, 512, 2", Schedule::Noam { warmup_steps: 4000, d_model: 512, scale: 2.0 }),
            ("onecycle:1000", one_cycle(1000, 0.3, 25.0, 1e4, false)),
            ("onecycle:1000,0.25", one_cycle(1000, 0.25, 25.0, 1e4, false)),
            ("onecycle:1000,0.3,25,100", one_cycle(1000, 0.3, 25.0, 100.0, false)),
            ("onecycle:1000,0.3,10", one_cycle(1000, 0.3, 10.0, 1e4, false)),
            ("onecycle-three-phase:50", one_cycle(50, 0.3, 25.0, 1e4, true)),
            ("onecycle-three-phase:50,0.1,5,1e3", one_cycle(50, 0.1, 5.0, 1e3, true)),
        ];
        for (text, want) in cases {
            let got: Schedule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            // Display writes a spelling that parses back to the same schedule.
            assert_eq!(got.to_string().parse::<Schedule>().unwrap(), got, "{text} -> {got}");
        }
        assert_eq!(Schedule::Step { step_size: 30, gamma: 0.1 }.to_string(), "step:30");
        assert_eq!(Schedule::Exponential { gamma: 0.99 }.to_string(), "exp:0.99");
        assert_eq!(
            Schedule::Noam { warmup_steps: 4000, d_model: 512, scale: 1.0 }.to_string(),
            "noam:4000,512"
        );
        // Defaults are left out, except where a later argument needs their position.
        assert_eq!(one_cycle(1000, 0.3, 25.0, 1e4, false).to_string(), "onecycle:1000");
        assert_eq!(one_cycle(1000, 0.3, 25.0, 100.0, false).to_string(), "onecycle:1000,0.3,25,100");
        assert_eq!(one_cycle(9, 0.5, 25.0, 1e4, true).to_string(), "onecycle-three-phase:9,0.5");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let err = |s: &str| s.parse::<Schedule>().unwrap_err();
        let cases: [(&str, &str); 24] = [
            ("linear", "unknown learning-rate schedule 'linear' (expected one of: constant, inverse-sqrt"),
            ("", "unknown learning-rate schedule ''"),
            ("constant:1", "'constant:1': wrong number of arguments, expected constant"),
            ("exp", "'exp': wrong number of arguments, expected exp:GAMMA"),
            ("step:1,2,3", "'step:1,2,3': wrong number of arguments, expected step:STEPS[,GAMMA]"),
            ("warmup-cosine:500", "expected warmup-cosine:WARMUP,T_MAX[,ETA_MIN]"),
            ("step:3.5", "'step:3.5': STEPS must be a whole number of steps, got '3.5'"),
            ("step:-1", "STEPS must be a whole number of steps, got '-1'"),
            ("exp:fast", "'exp:fast': GAMMA must be a number, got 'fast'"),
            ("step:0,0.1", "'step:0,0.1': STEPS must be at least 1"),
            ("exp:nan", "'exp:nan': GAMMA must be finite and >= 0, got NaN"),
            ("warmup:10,0", "START_FACTOR must be in (0, 1], got 0"),
            ("cosine:100,-1", "ETA_MIN must be finite and >= 0, got -1"),
            ("warmup-cosine:500,500", "T_MAX (500) must be greater than WARMUP (500)"),
            ("noam:4000", "'noam:4000': wrong number of arguments, expected noam:WARMUP,D_MODEL[,SCALE]"),
            ("noam:0,512", "'noam:0,512': WARMUP must be at least 1"),
            ("noam:10,0", "D_MODEL must be at least 1"),
            ("noam:10,512,0", "SCALE must be finite and > 0, got 0"),
            ("noam:10,5.5", "D_MODEL must be a whole number, got '5.5'"),
            ("onecycle", "expected onecycle:TOTAL_STEPS[,PCT_START[,DIV_FACTOR[,FINAL_DIV_FACTOR]]]"),
            ("onecycle:0", "'onecycle:0': TOTAL_STEPS must be at least 1"),
            ("onecycle:100,1.5", "PCT_START must be in [0, 1], got 1.5"),
            ("onecycle-three-phase:100,0.3,0", "DIV_FACTOR must be finite and > 0, got 0"),
            ("onecycle:10,0.1", "PCT_START * TOTAL_STEPS must not be exactly 1"),
        ];
        for (text, want) in cases {
            let msg = err(text).to_string();
            assert!(msg.contains(want), "{text}: '{msg}' lacks '{want}'");
            assert!(!msg.contains('\n'), "{text}: multi-line message '{msg}'");
        }
        let msg = err("onecycle:100,0.3,25,inf").to_string();
        assert!(msg.contains("FINAL_DIV_FACTOR must be finite and > 0, got inf"), "{msg}");
    }
}
