//! Learning-rate schedules, usable with any [`Optimizer`].
//!
//! A [`Schedule`] is a pure function of the base learning rate and the optimizer step
//! `t = 1, 2, ...` ([`Schedule::lr_at`]); a [`Scheduler`] owns a schedule, the base rate and
//! the position, and sets the optimizer's learning rate **before** each optimizer step:
//!
//! ```
//! use adamant_autodiff::{Mode, Param, Tape};
//! use adamant_optim::schedule::{Schedule, Scheduler};
//! use adamant_optim::{Optimizer, Sgd, SgdConfig};
//! use adamant_tensor::Tensor;
//!
//! let mut w = Param::new("w", Tensor::from_vec(vec![1.0], &[1]));
//! let mut sgd = Sgd::new(SgdConfig { lr: 0.1, ..Default::default() });
//! let mut scheduler = Scheduler::new("step:2,0.5".parse::<Schedule>().unwrap(), 0.1);
//! for t in 1..=4 {
//!     let tape = Tape::new(Mode::Train, 0);
//!     let grads = tape.param(&w).sum().backward();
//!     drop(tape);
//!     scheduler.step(&mut sgd); // sets the lr of optimizer step t, lr_at(0.1, t)
//!     sgd.step(&mut [&mut w], &grads);
//! }
//! assert_eq!(scheduler.position(), 4);
//! assert_eq!(sgd.lr(), 0.05); // steps 1-2 used 0.1, steps 3-4 used 0.05
//! ```
//!
//! # Counting, and how it lines up with `torch.optim.lr_scheduler`
//!
//! PyTorch's loop is `optimizer.step(); scheduler.step()`, and its schedules are functions of
//! `last_epoch`, the number of `scheduler.step()` calls so far. Optimizer step `t` therefore
//! runs with `last_epoch = t - 1`. adamant counts optimizer steps instead, and every schedule
//! that has a PyTorch counterpart is defined so that **`lr_at(base, t)` is the learning rate
//! PyTorch's scheduler gives optimizer step `t`**, i.e. its formula at `last_epoch = t - 1`:
//! [`Schedule::Step`] is `StepLR`, [`Schedule::Exponential`] is `ExponentialLR`,
//! [`Schedule::LinearWarmup`] is `LinearLR` with `end_factor = 1`, and
//! [`Schedule::CosineAnnealing`] is `CosineAnnealingLR` (the tests pin all four to values
//! PyTorch computed). The "epoch" of those names is whatever the caller steps the scheduler
//! on; [`Scheduler`] steps once per optimizer step, so here it is always an iteration.
//!
//! The arithmetic is done in `f64` and rounded once to `f32` (the optimizers' learning rate),
//! which is why the rates and factors are `f64`: `0.99f32.powi(1000)` is off from
//! `0.99^1000` by 1e-5 relative (`0.99` is not an `f32`), a hundred `f32` roundings.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use crate::optimizer::Optimizer;
use crate::state::StateError;

/// `torch.optim.lr_scheduler.StepLR`'s default `gamma`, used by `step:STEPS`.
const DEFAULT_STEP_GAMMA: f64 = 0.1;
/// `torch.optim.lr_scheduler.LinearLR`'s default `start_factor`, used by `warmup:STEPS`.
const DEFAULT_START_FACTOR: f64 = 1.0 / 3.0;

/// The command-line spellings, for error messages.
const SPELLINGS: &str =
    "constant, inverse-sqrt, step:STEPS[,GAMMA], exp:GAMMA, warmup:STEPS[,START_FACTOR], \
                         cosine:T_MAX[,ETA_MIN], warmup-cosine:WARMUP,T_MAX[,ETA_MIN]";

/// A learning-rate schedule: the rate of optimizer step `t = 1, 2, ...` as a function of the
/// base rate (see [`Schedule::lr_at`] for the formulas).
///
/// It is plain data, so it prints, compares and reproduces; [`fmt::Display`] writes the
/// command-line spelling that [`FromStr`] reads back to an equal value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate at every step.
    Constant,
    /// `base / sqrt(t)`: the decay `alpha_t = alpha / sqrt(t)` of the Adam paper's
    /// logistic-regression experiment (section 6.1), with `t` the paper's 1-based timestep.
    InverseSqrt,
    /// `base * gamma^floor((t - 1) / step_size)`: `StepLR`, the rate multiplied by `gamma`
    /// after every `step_size` optimizer steps (steps 1..=step_size use the base rate).
    Step {
        /// Optimizer steps between decays (at least 1).
        step_size: u64,
        /// Multiplicative factor of each decay (finite, >= 0).
        gamma: f64,
    },
    /// `base * gamma^(t - 1)`: `ExponentialLR`.
    Exponential {
        /// Multiplicative factor per step (finite, >= 0).
        gamma: f64,
    },
    /// `base * (s + (1 - s) * min(t - 1, warmup_steps) / warmup_steps)`: `LinearLR` with
    /// `start_factor = s`, `end_factor = 1`, `total_iters = warmup_steps`. Step 1 uses
    /// `s * base`, steps `warmup_steps + 1` onwards the base rate.
    LinearWarmup {
        /// Steps of the ramp (at least 1).
        warmup_steps: u64,
        /// Fraction of the base rate at step 1, in (0, 1] as `LinearLR` requires.
        start_factor: f64,
    },
    /// `eta_min + (base - eta_min) (1 + cos(pi (t - 1) / t_max)) / 2`: `CosineAnnealingLR`.
    /// Step 1 uses the base rate and step `t_max + 1` uses `eta_min`. Past that the rate
    /// climbs back along the same cosine (period `2 t_max`), exactly as PyTorch's does; use
    /// [`Schedule::WarmupCosine`] for a rate that stays at `eta_min`.
    CosineAnnealing {
        /// Half-period of the cosine, in steps (at least 1).
        t_max: u64,
        /// The lowest rate, an absolute rate like PyTorch's (finite, >= 0).
        eta_min: f64,
    },
    /// Linear warmup from `base / warmup_steps` at step 1 to `base` at step `warmup_steps`,
    /// then cosine annealing to `eta_min`, then `eta_min` for good. With `u = t - 1`:
    ///
    /// ```text
    /// u <  W:          base * (u + 1) / W
    /// W <= u <= T:     eta_min + (base - eta_min) (1 + cos(pi (u - W) / (T - W))) / 2
    /// u >  T:          eta_min
    /// ```
    ///
    /// `t_max` (`T`) counts from the start of training, warmup included, and means what it
    /// means for [`Schedule::CosineAnnealing`]: step `T + 1` is the first at `eta_min`. With
    /// `warmup_steps = 0` this is `CosineAnnealing` up to step `T + 1`. The warmup starts
    /// at `base / W` rather than 0 so that no step is wasted at rate 0.
    WarmupCosine {
        /// Steps of the warmup ramp (may be 0).
        warmup_steps: u64,
        /// Step count at which the cosine reaches `eta_min`; greater than `warmup_steps`.
        t_max: u64,
        /// The final rate, absolute (finite, >= 0).
        eta_min: f64,
    },
}

/// Why a schedule was refused: a spelling that does not parse, or a value out of range.
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

impl Schedule {
    /// The learning rate of optimizer step `t` (1-based) for base rate `base_lr`.
    ///
    /// # Panics
    /// If `t == 0` (steps count from 1) or the schedule is invalid ([`Schedule::validate`]).
    pub fn lr_at(&self, base_lr: f32, t: u64) -> f32 {
        assert!(t >= 1, "Schedule::lr_at: optimizer steps count from 1, got t = 0");
        if let Err(e) = self.validate() {
            panic!("Schedule::lr_at: {e}");
        }
        let base = base_lr as f64;
        // PyTorch's `last_epoch` for optimizer step t (see the module documentation).
        let u = t - 1;
        let cosine =
            |eta_min: f64, progress: f64| eta_min + (base - eta_min) * (1.0 + (PI * progress).cos()) / 2.0;
        let lr = match *self {
            Schedule::Constant => base,
            Schedule::InverseSqrt => base / (t as f64).sqrt(),
            Schedule::Step { step_size, gamma } => base * gamma.powf((u / step_size) as f64),
            Schedule::Exponential { gamma } => base * gamma.powf(u as f64),
            Schedule::LinearWarmup { warmup_steps, start_factor } => {
                let done = u.min(warmup_steps) as f64 / warmup_steps as f64;
                base * (start_factor + (1.0 - start_factor) * done)
            }
            Schedule::CosineAnnealing { t_max, eta_min } => cosine(eta_min, u as f64 / t_max as f64),
            Schedule::WarmupCosine { warmup_steps, t_max, eta_min } => {
                if u < warmup_steps {
                    base * (u + 1) as f64 / warmup_steps as f64
                } else if u <= t_max {
                    cosine(eta_min, (u - warmup_steps) as f64 / (t_max - warmup_steps) as f64)
                } else {
                    eta_min
                }
            }
        };
        lr as f32
    }

    /// Checks every field's range (the ranges are on the variants' fields).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let invalid = |reason: String| Err(ScheduleError::Invalid { spec: self.to_string(), reason });
        let bad_rate = |x: f64| !x.is_finite() || x < 0.0;
        match *self {
            Schedule::Constant | Schedule::InverseSqrt => Ok(()),
            Schedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    invalid("STEPS must be at least 1".to_string())
                } else if bad_rate(gamma) {
                    invalid(format!("GAMMA must be finite and >= 0, got {gamma}"))
                } else {
                    Ok(())
                }
            }
            Schedule::Exponential { gamma } => {
                if bad_rate(gamma) {
                    invalid(format!("GAMMA must be finite and >= 0, got {gamma}"))
                } else {
                    Ok(())
                }
            }
            Schedule::LinearWarmup { warmup_steps, start_factor } => {
                if warmup_steps == 0 {
                    invalid("STEPS must be at least 1".to_string())
                } else if !(start_factor > 0.0 && start_factor <= 1.0) {
                    invalid(format!("START_FACTOR must be in (0, 1], got {start_factor}"))
                } else {
                    Ok(())
                }
            }
            Schedule::CosineAnnealing { t_max, eta_min } => {
                if t_max == 0 {
                    invalid("T_MAX must be at least 1".to_string())
                } else if bad_rate(eta_min) {
                    invalid(format!("ETA_MIN must be finite and >= 0, got {eta_min}"))
                } else {
                    Ok(())
                }
            }
            Schedule::WarmupCosine { warmup_steps, t_max, eta_min } => {
                if t_max <= warmup_steps {
                    invalid(format!("T_MAX ({t_max}) must be greater than WARMUP ({warmup_steps})"))
                } else if bad_rate(eta_min) {
                    invalid(format!("ETA_MIN must be finite and >= 0, got {eta_min}"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    /// The command-line spelling; optional arguments are written only when they differ from
    /// their defaults, and numbers in Rust's shortest round-trip form, so parsing the text
    /// gives back an equal schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `",{x}"`, or nothing when `x` is the default the parser fills in.
        let optional = |x: f64, default: f64| if x == default { String::new() } else { format!(",{x}") };
        match *self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::InverseSqrt => write!(f, "inverse-sqrt"),
            Schedule::Step { step_size, gamma } => {
                write!(f, "step:{step_size}{}", optional(gamma, DEFAULT_STEP_GAMMA))
            }
            Schedule::Exponential { gamma } => write!(f, "exp:{gamma}"),
            Schedule::LinearWarmup { warmup_steps, start_factor } => {
                write!(f, "warmup:{warmup_steps}{}", optional(start_factor, DEFAULT_START_FACTOR))
            }
            Schedule::CosineAnnealing { t_max, eta_min } => {
                write!(f, "cosine:{t_max}{}", optional(eta_min, 0.0))
            }
            Schedule::WarmupCosine { warmup_steps, t_max, eta_min } => {
                write!(f, "warmup-cosine:{warmup_steps},{t_max}{}", optional(eta_min, 0.0))
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Parses the command-line spellings: `constant`, `inverse-sqrt`, `step:STEPS[,GAMMA]`
    /// (GAMMA defaults to `StepLR`'s 0.1), `exp:GAMMA`, `warmup:STEPS[,START_FACTOR]`
    /// (START_FACTOR defaults to `LinearLR`'s 1/3), `cosine:T_MAX[,ETA_MIN]` and
    /// `warmup-cosine:WARMUP,T_MAX[,ETA_MIN]` (ETA_MIN defaults to 0). The result is
    /// validated; every error is one line naming the problem.
    fn from_str(spec: &str) -> Result<Schedule, ScheduleError> {
        let (name, args): (&str, Vec<&str>) = match spec.split_once(':') {
            Some((name, rest)) => (name.trim(), rest.split(',').map(str::trim).collect()),
            None => (spec.trim(), Vec::new()),
        };
        let (form, min, max): (&'static str, usize, usize) = match name {
            "constant" => ("constant", 0, 0),
            "inverse-sqrt" => ("inverse-sqrt", 0, 0),
            "step" => ("step:STEPS[,GAMMA]", 1, 2),
            "exp" => ("exp:GAMMA", 1, 1),
            "warmup" => ("warmup:STEPS[,START_FACTOR]", 1, 2),
            "cosine" => ("cosine:T_MAX[,ETA_MIN]", 1, 2),
            "warmup-cosine" => ("warmup-cosine:WARMUP,T_MAX[,ETA_MIN]", 2, 3),
            _ => return Err(ScheduleError::Unknown { spec: spec.to_string() }),
        };
        // `constant:` has one (empty) argument, so a stray colon is an argument-count error.
        if args.len() < min || args.len() > max {
            return Err(ScheduleError::Arguments { spec: spec.to_string(), form });
        }
        let steps = |i: usize, field: &'static str| -> Result<u64, ScheduleError> {
            args[i].parse::<u64>().map_err(|_| ScheduleError::Number {
                spec: spec.to_string(),
                field,
                expected: "a whole number of steps",
                found: args[i].to_string(),
            })
        };
        let number = |i: usize, field: &'static str, default: f64| -> Result<f64, ScheduleError> {
            match args.get(i) {
                None => Ok(default),
                Some(a) => a.parse::<f64>().map_err(|_| ScheduleError::Number {
                    spec: spec.to_string(),
                    field,
                    expected: "a number",
                    found: a.to_string(),
                }),
            }
        };
        let schedule = match name {
            "constant" => Schedule::Constant,
            "inverse-sqrt" => Schedule::InverseSqrt,
            "step" => Schedule::Step {
                step_size: steps(0, "STEPS")?,
                gamma: number(1, "GAMMA", DEFAULT_STEP_GAMMA)?,
            },
            // `exp` has exactly one argument (checked above), so the default is never used.
            "exp" => Schedule::Exponential { gamma: number(0, "GAMMA", f64::NAN)? },
            "warmup" => Schedule::LinearWarmup {
                warmup_steps: steps(0, "STEPS")?,
                start_factor: number(1, "START_FACTOR", DEFAULT_START_FACTOR)?,
            },
            "cosine" => {
                Schedule::CosineAnnealing { t_max: steps(0, "T_MAX")?, eta_min: number(1, "ETA_MIN", 0.0)? }
            }
            "warmup-cosine" => Schedule::WarmupCosine {
                warmup_steps: steps(0, "WARMUP")?,
                t_max: steps(1, "T_MAX")?,
                eta_min: number(2, "ETA_MIN", 0.0)?,
            },
            _ => unreachable!("names were matched above"),
        };
        // Report range errors in the user's spelling rather than the normalised one.
        schedule.validate().map_err(|e| match e {
            ScheduleError::Invalid { reason, .. } => {
                ScheduleError::Invalid { spec: spec.to_string(), reason }
            }
            other => other,
        })?;
        Ok(schedule)
    }
}

/// Key of [`Scheduler::position`] in [`Scheduler::state`].
pub const POSITION_KEY: &str = "scheduler.position";
/// Key of [`Scheduler::base_lr`] in [`Scheduler::state`].
pub const BASE_LR_KEY: &str = "scheduler.base_lr";

/// Largest integer that `f64` holds exactly: positions are saved as `f64`.
const MAX_EXACT_POSITION: f64 = 9_007_199_254_740_992.0;

/// A [`Schedule`] with its base rate and position, driving an optimizer's learning rate.
///
/// Call [`Scheduler::step`] **before** each `optimizer.step(...)`: it advances the position
/// to `t` and sets the optimizer's rate to `lr_at(base_lr, t)`, so optimizer step 1 runs at
/// `lr_at(base_lr, 1)`. (This is the opposite order to PyTorch's `optimizer.step();
/// scheduler.step()`, and gives the same rates: PyTorch sets step 1's rate when the
/// scheduler is built.) Parameter groups' learning-rate multipliers apply on top.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduler {
    schedule: Schedule,
    base_lr: f32,
    position: u64,
}

impl Scheduler {
    /// A scheduler at position 0 (no step taken yet).
    ///
    /// # Panics
    /// If the schedule is invalid ([`Schedule::validate`]; schedules parsed from text are
    /// already valid) or `base_lr` is negative or not finite.
    pub fn new(schedule: Schedule, base_lr: f32) -> Scheduler {
        if let Err(e) = schedule.validate() {
            panic!("Scheduler::new: {e}");
        }
        assert!(
            base_lr.is_finite() && base_lr >= 0.0,
            "Scheduler::new: base learning rate must be finite and >= 0, got {base_lr}"
        );
        Scheduler { schedule, base_lr, position: 0 }
    }

    /// Advances to the next optimizer step `t` and sets `optimizer`'s learning rate to
    /// `lr_at(base_lr, t)`, which it returns. Call it before `optimizer.step(...)`.
    pub fn step<O: Optimizer + ?Sized>(&mut self, optimizer: &mut O) -> f32 {
        self.position += 1;
        let lr = self.schedule.lr_at(self.base_lr, self.position);
        optimizer.set_lr(lr);
        lr
    }

    /// The number of optimizer steps whose rate this scheduler has set (0 before the first).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The rate the next [`Scheduler::step`] will set.
    pub fn next_lr(&self) -> f32 {
        self.schedule.lr_at(self.base_lr, self.position + 1)
    }

    /// The base learning rate the schedule scales.
    pub fn base_lr(&self) -> f32 {
        self.base_lr
    }

    /// Sets the base learning rate the schedule scales from the next step on (a resumed run
    /// told to use another rate).
    ///
    /// # Panics
    /// If `base_lr` is negative or not finite, as [`Scheduler::new`].
    pub fn set_base_lr(&mut self, base_lr: f32) {
        assert!(
            base_lr.is_finite() && base_lr >= 0.0,
            "Scheduler::set_base_lr: base learning rate must be finite and >= 0, got {base_lr}"
        );
        self.base_lr = base_lr;
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The position and base rate as plain scalars under [`POSITION_KEY`] and
    /// [`BASE_LR_KEY`], both exact in `f64`. The keys do not collide with an optimizer's, so
    /// they can be merged into [`crate::OptimizerState::scalars`] and saved with it.
    ///
    /// The schedule itself is configuration, not state: a resumed run gives it again.
    pub fn state(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([
            (POSITION_KEY.to_string(), self.position as f64),
            (BASE_LR_KEY.to_string(), self.base_lr as f64),
        ])
    }

    /// Restores [`Scheduler::state`], so the next [`Scheduler::step`] sets the rate the saved
    /// scheduler's next step would have. Other keys in `state` are ignored (it may be a whole
    /// optimizer's scalars). On error nothing changes.
    pub fn load_state(&mut self, state: &BTreeMap<String, f64>) -> Result<(), StateError> {
        let get = |key: &str| {
            state.get(key).copied().ok_or_else(|| StateError::Missing { what: format!("scalar '{key}'") })
        };
        let position = get(POSITION_KEY)?;
        let base_lr = get(BASE_LR_KEY)?;
        if !((0.0..=MAX_EXACT_POSITION).contains(&position) && position.fract() == 0.0) {
            return Err(StateError::Format {
                message: format!("'{POSITION_KEY}' must be a whole number of steps, got {position}"),
            });
        }
        // The base rate was saved from an f32, so it must convert back exactly.
        if !(base_lr.is_finite() && base_lr >= 0.0 && (base_lr as f32) as f64 == base_lr) {
            return Err(StateError::Format {
                message: format!("'{BASE_LR_KEY}' must be a finite f32 learning rate >= 0, got {base_lr}"),
            });
        }
        self.position = position as u64;
        self.base_lr = base_lr as f32;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build, OptimizerOptions};
    use adamant_autodiff::{Gradients, Param};
    use adamant_tensor::Tensor;

    /// The rates of steps `1..=want.len()` agree with `want` to `f32` precision. PyTorch
    /// computes in `f64` (and its chainable forms drift by a few `f64` ulps), adamant rounds
    /// to `f32`, so "agree" is a relative error below 1e-7 (an `f32` ulp is 6e-8 to 1.2e-7).
    fn assert_rates(s: Schedule, base: f32, want: &[f64]) {
        for (i, &w) in want.iter().enumerate() {
            let t = i as u64 + 1;
            let got = s.lr_at(base, t) as f64;
            assert!(((got - w) / w).abs() < 1e-7, "{s} at t = {t}: got {got}, want {w}");
        }
    }

    // The `TORCH_*` values below were produced with torch 2.15.0 by
    // /tmp/torchbench/bin/python, running `SGD([p], lr=0.1)` with the named scheduler in the
    // canonical loop `for t in 1..=N: record(opt.param_groups[0]["lr"]); opt.step();
    // sched.step()`, so entry t-1 is the rate optimizer step t used.

    /// `StepLR(step_size=3, gamma=0.1)`, 10 steps.
    const TORCH_STEP: [f64; 10] = [
        0.1,
        0.1,
        0.1,
        0.010000000000000002,
        0.010000000000000002,
        0.010000000000000002,
        0.0010000000000000002,
        0.0010000000000000002,
        0.0010000000000000002,
        0.00010000000000000003,
    ];
    /// `ExponentialLR(gamma=0.9)`, 8 steps.
    const TORCH_EXP: [f64; 8] = [
        0.1,
        0.09000000000000001,
        0.08100000000000002,
        0.07290000000000002,
        0.06561000000000002,
        0.05904900000000002,
        0.05314410000000002,
        0.04782969000000002,
    ];
    /// `ExponentialLR(gamma=0.99)` at steps 500 and 1000.
    const TORCH_EXP_099_T500_T1000: (f64, f64) = (0.0006636851557994564, 4.360732061682621e-06);
    /// `CosineAnnealingLR(T_max=10, eta_min=0.001)`, 25 steps (past T_max it rises again).
    const TORCH_COSINE: [f64; 25] = [
        0.1,
        0.09757729755661011,
        0.0905463412215599,
        0.07959536998847742,
        0.0657963412215599,
        0.0505,
        0.03520365877844011,
        0.02140463001152259,
        0.010453658778440109,
        0.0034227024433899004,
        0.001,
        0.0034227024433899004,
        0.01045365877844014,
        0.02140463001152267,
        0.035203658778440255,
        0.05050000000000022,
        0.06579634122156018,
        0.07959536998847777,
        0.09054634122156031,
        0.09757729755661054,
        0.10000000000000045,
        0.09757729755661054,
        0.09054634122156033,
        0.07959536998847778,
        0.0657963412215602,
    ];
    /// `LinearLR(start_factor=0.25, end_factor=1.0, total_iters=4)`, 7 steps.
    const TORCH_LINEAR: [f64; 7] = [
        0.025,
        0.043750000000000004,
        0.06250000000000001,
        0.08125000000000002,
        0.10000000000000002,
        0.10000000000000002,
        0.10000000000000002,
    ];
    /// `LinearLR(total_iters=5)` with the default `start_factor = 1/3`, 7 steps.
    const TORCH_LINEAR_DEFAULT: [f64; 7] = [
        0.03333333333333333,
        0.04666666666666667,
        0.060000000000000005,
        0.07333333333333335,
        0.08666666666666668,
        0.1,
        0.1,
    ];

    #[test]
    fn step_matches_torch_steplr_and_closed_form() {
        let s = Schedule::Step { step_size: 3, gamma: 0.1 };
        assert_rates(s, 0.1, &TORCH_STEP);
        // The off-by-one: steps 1..=3 at the base rate, the first decay at step 4.
        assert_eq!(s.lr_at(0.1, 3), 0.1);
        assert_eq!(s.lr_at(0.1, 4), (0.1f64 * 0.1) as f32);
        assert_eq!(s.lr_at(2.0, 31), (2.0 * 0.1f64.powi(10)) as f32);
    }

    #[test]
    fn exponential_matches_torch_exponentiallr() {
        assert_rates(Schedule::Exponential { gamma: 0.9 }, 0.1, &TORCH_EXP);
        // Far out, PyTorch's repeated multiplication and the closed form still agree in f32.
        let s = Schedule::Exponential { gamma: 0.99 };
        let (w500, w1000) = TORCH_EXP_099_T500_T1000;
        assert!(((s.lr_at(0.1, 500) as f64 - w500) / w500).abs() < 1e-7);
        assert!(((s.lr_at(0.1, 1000) as f64 - w1000) / w1000).abs() < 1e-7);
    }

    #[test]
    fn cosine_matches_torch_cosineannealinglr_including_past_t_max() {
        let s = Schedule::CosineAnnealing { t_max: 10, eta_min: 0.001 };
        assert_rates(s, 0.1, &TORCH_COSINE);
        // Closed form: halfway (u = 5) is the mean of base and eta_min; step 11 hits eta_min.
        assert_eq!(s.lr_at(0.1, 6), ((0.1f32 as f64 + 0.001) / 2.0) as f32);
        assert_eq!(s.lr_at(0.1, 11), 0.001);
    }

    #[test]
    fn linear_warmup_matches_torch_linearlr() {
        assert_rates(Schedule::LinearWarmup { warmup_steps: 4, start_factor: 0.25 }, 0.1, &TORCH_LINEAR);
        let parsed: Schedule = "warmup:5".parse().unwrap();
        assert_rates(parsed, 0.1, &TORCH_LINEAR_DEFAULT);
        assert_eq!(parsed.lr_at(0.1, 1_000_000), 0.1);
    }

    #[test]
    fn inverse_sqrt_is_the_papers_alpha_over_sqrt_t() {
        let s = Schedule::InverseSqrt;
        for t in [1u64, 2, 4, 9, 100, 12345] {
            let want = (0.001f32 as f64 / (t as f64).sqrt()) as f32;
            assert_eq!(s.lr_at(0.001, t), want, "t = {t}");
        }
        assert_eq!(s.lr_at(0.001, 1), 0.001);
        assert_eq!(s.lr_at(0.001, 4), 0.0005);
        assert_eq!(s.lr_at(1.0, 100), 0.1);
        assert_eq!(s.lr_at(1.0, 1 << 40), 2f32.powi(-20));
    }

    #[test]
    fn constant_is_constant() {
        for t in [1, 2, 1000, u64::MAX] {
            assert_eq!(Schedule::Constant.lr_at(0.3, t), 0.3);
        }
    }

    #[test]
    fn warmup_cosine_closed_form() {
        let s = Schedule::WarmupCosine { warmup_steps: 4, t_max: 10, eta_min: 0.01 };
        let base = 0.1f64;
        // Warmup: base * t / W for t = 1..=4.
        for t in 1..=4u64 {
            assert_eq!(s.lr_at(0.1, t), (0.1f32 as f64 * t as f64 / 4.0) as f32, "t = {t}");
        }
        assert_eq!(s.lr_at(0.1, 4), 0.1);
        // Cosine over u = t - 1 in [4, 10]: peak at step 5, eta_min at step 11, then held.
        assert_eq!(s.lr_at(0.1, 5), 0.1);
        let mid = 0.01 + (base - 0.01) * (1.0 + (PI * 3.0 / 6.0).cos()) / 2.0;
        assert!((s.lr_at(0.1, 8) as f64 - mid).abs() < 1e-8);
        assert_eq!(s.lr_at(0.1, 11), 0.01);
        assert_eq!(s.lr_at(0.1, 12), 0.01);
        assert_eq!(s.lr_at(0.1, 1_000_000), 0.01);
        // Its cosine part is CosineAnnealing over T - W steps, shifted by the warmup.
        let c = Schedule::CosineAnnealing { t_max: 6, eta_min: 0.01 };
        for t in 5..=11u64 {
            assert_eq!(s.lr_at(0.1, t), c.lr_at(0.1, t - 4), "t = {t}");
        }
        // Without warmup it is CosineAnnealing (PyTorch's values) up to step T + 1.
        let no_warmup = Schedule::WarmupCosine { warmup_steps: 0, t_max: 10, eta_min: 0.001 };
        assert_rates(no_warmup, 0.1, &TORCH_COSINE[..11]);
        assert_eq!(no_warmup.lr_at(0.1, 12), 0.001);
    }

    #[test]
    #[should_panic(expected = "count from 1")]
    fn lr_at_zero_panics() {
        Schedule::Constant.lr_at(0.1, 0);
    }

    #[test]
    fn parses_every_spelling() {
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
        ];
        for (text, want) in cases {
            let got: Schedule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            // Display writes a spelling that parses back to the same schedule.
            assert_eq!(got.to_string().parse::<Schedule>().unwrap(), got, "{text} -> {got}");
        }
        assert_eq!(Schedule::Step { step_size: 30, gamma: 0.1 }.to_string(), "step:30");
        assert_eq!(Schedule::Exponential { gamma: 0.99 }.to_string(), "exp:0.99");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let err = |s: &str| s.parse::<Schedule>().unwrap_err();
        let cases: [(&str, &str); 14] = [
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
        ];
        for (text, want) in cases {
            let msg = err(text).to_string();
            assert!(msg.contains(want), "{text}: '{msg}' lacks '{want}'");
            assert!(!msg.contains('\n'), "{text}: multi-line message '{msg}'");
        }
    }

    /// One parameter whose gradient is always 1, so SGD moves it by exactly -lr per step.
    fn unit_grad(p: &Param) -> Gradients {
        let mut g = Gradients::new();
        g.accumulate(p.id(), Tensor::from_vec(vec![1.0], &[1]));
        g
    }

    #[test]
    fn scheduler_drives_the_optimizers_lr() {
        let schedule = Schedule::Step { step_size: 3, gamma: 0.1 };
        let mut opt = build("sgd", &OptimizerOptions { lr: Some(0.1), ..Default::default() }).unwrap();
        let mut w = Param::new("w", Tensor::from_vec(vec![0.0], &[1]));
        let grads = unit_grad(&w);
        let mut scheduler = Scheduler::new(schedule, 0.1);
        assert_eq!(scheduler.position(), 0);
        let mut expected = 0.0f32;
        for t in 1..=TORCH_STEP.len() as u64 {
            assert_eq!(scheduler.next_lr(), schedule.lr_at(0.1, t));
            let lr = scheduler.step(&mut *opt);
            assert_eq!(scheduler.position(), t);
            assert_eq!(lr, schedule.lr_at(0.1, t));
            assert_eq!(opt.lr(), lr, "the optimizer runs step {t} at lr_at({t})");
            assert!(((lr as f64 - TORCH_STEP[t as usize - 1]) / TORCH_STEP[t as usize - 1]).abs() < 1e-7);
            let before = w.value().data()[0];
            opt.step(&mut [&mut w], &grads);
            // Plain SGD: w <- w - lr * 1, so the step used exactly the scheduled rate.
            assert_eq!(w.value().data()[0], before - lr);
            expected -= lr;
        }
        assert_eq!(w.value().data()[0], expected);
    }

    #[test]
    fn state_round_trip_resumes_at_the_same_position() {
        let schedule: Schedule = "warmup-cosine:5,40,0.001".parse().unwrap();
        let mut opt = build("sgd", &OptimizerOptions::default()).unwrap();

        // An uninterrupted run of 30 steps.
        let mut full = Scheduler::new(schedule, 0.05);
        let rates: Vec<f32> = (0..30).map(|_| full.step(&mut *opt)).collect();

        // 12 steps, save (through an optimizer state's scalars and its bytes), resume in a
        // scheduler made with another base rate, which the saved one overrides.
        let mut first = Scheduler::new(schedule, 0.05);
        for _ in 0..12 {
            first.step(&mut *opt);
        }
        let mut saved = opt.state_dict();
        saved.scalars.extend(first.state());
        let restored = crate::OptimizerState::from_bytes(&saved.to_bytes()).unwrap();
        let mut resumed = Scheduler::new(schedule, 0.9);
        resumed.load_state(&restored.scalars).unwrap();
        assert_eq!(resumed, first);
        assert_eq!(resumed.position(), 12);
        let rest: Vec<f32> = (0..18).map(|_| resumed.step(&mut *opt)).collect();
        assert_eq!(rest, rates[12..]);
        assert_eq!(opt.lr(), rates[29]);
    }

    #[test]
    fn load_state_rejects_bad_state_and_changes_nothing() {
        let mut s = Scheduler::new(Schedule::InverseSqrt, 0.01);
        let mut opt = build("sgd", &OptimizerOptions::default()).unwrap();
        s.step(&mut *opt);
        let before = s.clone();
        let good = s.state();
        let with = |key: &str, v: f64| {
            let mut m = good.clone();
            m.insert(key.to_string(), v);
            m
        };
        let mut missing = good.clone();
        missing.remove(POSITION_KEY);
        assert_eq!(
            s.load_state(&missing).unwrap_err(),
            StateError::Missing { what: "scalar 'scheduler.position'".to_string() }
        );
        for bad in [with(POSITION_KEY, -1.0), with(POSITION_KEY, 2.5), with(POSITION_KEY, f64::NAN)] {
            let e = s.load_state(&bad).unwrap_err();
            assert!(e.to_string().contains("'scheduler.position' must be a whole number"), "{e}");
        }
        for bad in [with(BASE_LR_KEY, f64::INFINITY), with(BASE_LR_KEY, -0.1), with(BASE_LR_KEY, 0.1)] {
            // 0.1 as f64 is not an f32 value, so it cannot have been saved by `state`.
            let e = s.load_state(&bad).unwrap_err();
            assert!(e.to_string().contains("'scheduler.base_lr' must be a finite f32"), "{e}");
        }
        assert_eq!(s, before);
    }

    #[test]
    #[should_panic(expected = "STEPS must be at least 1")]
    fn scheduler_refuses_an_invalid_schedule() {
        Scheduler::new(Schedule::Step { step_size: 0, gamma: 0.5 }, 0.1);
    }
}
