//! Learning-rate schedules, usable with any [`Optimizer`](crate::Optimizer).
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
//! # The schedules
//!
//! | spelling (`--schedule`) | [`Schedule`] | PyTorch |
//! |---|---|---|
//! | `constant` | [`Schedule::Constant`] | none |
//! | `inverse-sqrt` | [`Schedule::InverseSqrt`] | `LambdaLR(lambda e: (e + 1) ** -0.5)` |
//! | `step:STEPS[,GAMMA]` | [`Schedule::Step`] | `StepLR` |
//! | `exp:GAMMA` | [`Schedule::Exponential`] | `ExponentialLR` |
//! | `warmup:STEPS[,START_FACTOR]` | [`Schedule::LinearWarmup`] | `LinearLR` |
//! | `cosine:T_MAX[,ETA_MIN]` | [`Schedule::CosineAnnealing`] | `CosineAnnealingLR` |
//! | `warmup-cosine:WARMUP,T_MAX[,ETA_MIN]` | [`Schedule::WarmupCosine`] | none (one formula) |
//! | `noam:WARMUP,D_MODEL[,SCALE]` | [`Schedule::Noam`] | `LambdaLR` with the Transformer's lambda |
//! | `onecycle:TOTAL[,PCT_START[,DIV[,FINAL_DIV]]]` | [`Schedule::OneCycle`] | `OneCycleLR`, rates only |
//! | `onecycle-three-phase:...` (same arguments) | [`Schedule::OneCycle`] | `OneCycleLR(three_phase=True)` |
//!
//! On top of any of them, a [`Plateau`] (`Scheduler::with_plateau`, spelled
//! `plateau:PATIENCE[,...]`) cuts the rate when a metric stops improving, as
//! `ReduceLROnPlateau`; see [`Scheduler::observe`].
//!
//! # Counting, and how it lines up with `torch.optim.lr_scheduler`
//!
//! PyTorch's loop is `optimizer.step(); scheduler.step()`, and its schedules are functions of
//! `last_epoch`, the number of `scheduler.step()` calls so far. Optimizer step `t` therefore
//! runs with `last_epoch = t - 1`. adamant counts optimizer steps instead, and every schedule
//! that has a PyTorch counterpart is defined so that **`lr_at(base, t)` is the learning rate
//! PyTorch's scheduler gives optimizer step `t`**, i.e. its formula at `last_epoch = t - 1`
//! (`crates/optim/tests/torch_schedules.rs` pins every one of them to rates PyTorch computed,
//! written by `tests/fixtures/gen_schedules.py`). The "epoch" of those names is whatever the
//! caller steps the scheduler on; [`Scheduler`] steps once per optimizer step, so here it is
//! always an iteration.
//!
//! The arithmetic is done in `f64` and rounded once to `f32` (the optimizers' learning rate),
//! which is why the rates and factors are `f64`: `0.99f32.powi(1000)` is off from
//! `0.99^1000` by 1e-5 relative (`0.99` is not an `f32`), a hundred `f32` roundings.

use std::f64::consts::PI;

mod parse;
mod plateau;
mod scheduler;

pub use parse::ScheduleError;
pub use plateau::{Plateau, PlateauMode, PlateauState, ThresholdMode};
pub use scheduler::{Scheduler, BASE_LR_KEY, PLATEAU_KEYS, POSITION_KEY};

/// A learning-rate schedule: the rate of optimizer step `t = 1, 2, ...` as a function of the
/// base rate (see [`Schedule::lr_at`] for the formulas).
///
/// It is plain data, so it prints, compares and reproduces; [`std::fmt::Display`] writes the
/// command-line spelling that [`std::str::FromStr`] reads back to an equal value.
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
    /// The Transformer's inverse-square-root schedule with warmup ("Noam", Vaswani et al.
    /// 2017, section 5.3), as a multiplier of the base rate:
    ///
    /// ```text
    /// lr_at(base, t) = base * scale * d_model^-0.5 * min(t^-0.5, t * warmup^-1.5)
    /// ```
    ///
    /// with `t` the 1-based optimizer step (step 1 is the first update), the paper's
    /// `step_num`. The rate rises linearly to its peak `base * scale * (d_model * warmup)^-0.5`
    /// at `t = warmup` and then decays as `1 / sqrt(t)`. The paper's own rate is `base = 1`,
    /// `scale = 1`, `d_model = 512`, `warmup = 4000` (`noam:4000,512` with `--lr 1`).
    ///
    /// From step `warmup` on it is [`Schedule::InverseSqrt`] times `scale / sqrt(d_model)`;
    /// `noam:1,1` is `inverse-sqrt` at every step (the warmup line `t * 1` is never below
    /// `t^-0.5`). So `inverse-sqrt` is Noam without warmup and without the `d_model` scale.
    ///
    /// PyTorch: `LambdaLR(opt, lambda e: f(e + 1))` with `f` the factor above. `LambdaLR`
    /// calls its lambda with `last_epoch`, which is 0 when it is built and so `t - 1` for
    /// optimizer step `t`; a lambda written with the bare `last_epoch` as the paper's step
    /// would give step 1 the rate 0 (`min(0^-0.5, 0) = 0`) and lag by one step throughout.
    Noam {
        /// Steps of the linear warmup (at least 1).
        warmup_steps: u64,
        /// The model width `d_model` whose `-0.5` power scales the rate (at least 1).
        d_model: u64,
        /// A constant factor (finite, > 0; 1 in the paper).
        scale: f64,
    },
    /// `OneCycleLR` with `anneal_strategy='cos'` (Smith & Topin 2017): the base rate is the
    /// peak `max_lr`. With `initial = max_lr / div_factor`, `min = initial / final_div_factor`,
    /// `u = t - 1` (PyTorch's `last_epoch`) and the phase ends (in `f64`, as PyTorch computes
    /// them) `e1 = pct_start * total_steps - 1`, `e_last = total_steps - 1`:
    ///
    /// ```text
    /// two phases:    [0, e1] initial -> max_lr,  (e1, e_last] max_lr -> min
    /// three phases:  [0, e1] initial -> max_lr,  (e1, e2] max_lr -> initial,  (e2, e_last]
    ///                initial -> min, where e2 = 2 pct_start total_steps - 2
    /// in a phase from (start, a) to (end, b):
    ///                lr = b + (a - b) / 2 * (cos(pi (u - start) / (end - start)) + 1)
    /// ```
    ///
    /// where a phase is the first whose end `u` does not pass (the last if it passes all),
    /// and the first phase starts at 0, later ones at the previous end. The ends are real
    /// numbers, so a boundary can fall between two steps (`pct_start * total_steps` need
    /// not be whole), exactly as in PyTorch; with `pct_start = 0` the first phase is empty
    /// and step 1 is already on the way down.
    ///
    /// Steps past `total_steps` hold the rate of step `total_steps`, which is `min` (PyTorch
    /// raises instead once `last_epoch > total_steps`).
    ///
    /// **Momentum is not cycled.** PyTorch's default `cycle_momentum=True` also moves the
    /// optimizer's momentum (or Adam's beta1) between 0.95 and 0.85 inversely to the rate;
    /// adamant's schedules set the learning rate only, so this is `OneCycleLR(...,
    /// cycle_momentum=False)`, and the optimizer keeps its configured momentum throughout.
    OneCycle {
        /// Length of the cycle in optimizer steps (at least 1).
        total_steps: u64,
        /// Fraction of the cycle spent raising the rate, in [0, 1] (PyTorch's default 0.3).
        pct_start: f64,
        /// `max_lr / initial` (finite, > 0; PyTorch's default 25).
        div_factor: f64,
        /// `initial / min` (finite, > 0; PyTorch's default 1e4).
        final_div_factor: f64,
        /// PyTorch's `three_phase`: come back down to `initial` symmetrically before the
        /// final annealing to `min` (default false).
        three_phase: bool,
    },
}

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
        self.rate(base_lr as f64, t) as f32
    }

    /// [`Schedule::lr_at`] in `f64` for a valid schedule and `t >= 1`, before the rounding to
    /// `f32`; the scheduler calls it with a plateau-reduced base rate, which is not an `f32`.
    fn rate(&self, base: f64, t: u64) -> f64 {
        // PyTorch's `last_epoch` for optimizer step t (see the module documentation).
        let u = t - 1;
        let cosine =
            |eta_min: f64, progress: f64| eta_min + (base - eta_min) * (1.0 + (PI * progress).cos()) / 2.0;
        match *self {
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
            Schedule::Noam { warmup_steps, d_model, scale } => {
                // The factor in the order of operations of the Python lambda the tests pin
                // against, `scale * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)`,
                // then `base * factor` as LambdaLR does: the same f64 value to the last bit.
                let step = t as f64;
                let warmup_line = step * (warmup_steps as f64).powf(-1.5);
                base * (scale * (d_model as f64).powf(-0.5) * step.powf(-0.5).min(warmup_line))
            }
            Schedule::OneCycle { total_steps, pct_start, div_factor, final_div_factor, three_phase } => {
                let initial = base / div_factor;
                let min = initial / final_div_factor;
                // Past the cycle, hold its last rate.
                let u = u.min(total_steps - 1) as f64;
                let first_end = pct_start * total_steps as f64 - 1.0;
                let last_end = (total_steps - 1) as f64;
                // (end step, rate at the phase's start, rate at its end), as `OneCycleLR`.
                let two = [(first_end, initial, base), (last_end, base, min)];
                let three = [
                    (first_end, initial, base),
                    (2.0 * pct_start * total_steps as f64 - 2.0, base, initial),
                    (last_end, initial, min),
                ];
                let phases: &[(f64, f64, f64)] = if three_phase { &three } else { &two };
                let mut start = 0.0;
                for (i, &(end, from, to)) in phases.iter().enumerate() {
                    if u <= end || i == phases.len() - 1 {
                        let pct = (u - start) / (end - start);
                        return to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0);
                    }
                    start = end;
                }
                unreachable!("the last phase is always taken")
            }
        }
    }

    /// Checks every field's range (the ranges are on the variants' fields).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let invalid = |reason: String| Err(ScheduleError::Invalid { spec: self.to_string(), reason });
        let bad_rate = |x: f64| !x.is_finite() || x < 0.0;
        let bad_divisor = |x: f64| !(x.is_finite() && x > 0.0);
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
            Schedule::Noam { warmup_steps, d_model, scale } => {
                if warmup_steps == 0 {
                    invalid("WARMUP must be at least 1".to_string())
                } else if d_model == 0 {
                    invalid("D_MODEL must be at least 1".to_string())
                } else if bad_divisor(scale) {
                    invalid(format!("SCALE must be finite and > 0, got {scale}"))
                } else {
                    Ok(())
                }
            }
            Schedule::OneCycle { total_steps, pct_start, div_factor, final_div_factor, .. } => {
                if total_steps == 0 {
                    invalid("TOTAL_STEPS must be at least 1".to_string())
                } else if !(0.0..=1.0).contains(&pct_start) {
                    invalid(format!("PCT_START must be in [0, 1], got {pct_start}"))
                } else if bad_divisor(div_factor) {
                    invalid(format!("DIV_FACTOR must be finite and > 0, got {div_factor}"))
                } else if bad_divisor(final_div_factor) {
                    invalid(format!("FINAL_DIV_FACTOR must be finite and > 0, got {final_div_factor}"))
                } else if pct_start * total_steps as f64 - 1.0 == 0.0 {
                    // The first phase is [0, 0]: PyTorch divides 0 by 0 at step 1 (a
                    // ZeroDivisionError), and there is no rate to copy.
                    invalid(format!(
                        "PCT_START * TOTAL_STEPS must not be exactly 1 (a warmup phase of zero \
                         length, which PyTorch divides by), got {pct_start} * {total_steps}"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // Closed-form properties; the rates PyTorch computes for every schedule are pinned in
    // `crates/optim/tests/torch_schedules.rs`.
    use super::*;

    #[test]
    fn step_decays_after_every_step_size_steps() {
        let s = Schedule::Step { step_size: 3, gamma: 0.1 };
        // The off-by-one: steps 1..=3 at the base rate, the first decay at step 4.
        assert_eq!(s.lr_at(0.1, 3), 0.1);
        assert_eq!(s.lr_at(0.1, 4), (0.1f32 as f64 * 0.1) as f32);
        assert_eq!(s.lr_at(2.0, 31), (2.0 * 0.1f64.powi(10)) as f32);
    }

    #[test]
    fn cosine_halfway_and_bottom() {
        let s = Schedule::CosineAnnealing { t_max: 10, eta_min: 0.001 };
        // Halfway (u = 5) is the mean of base and eta_min; step 11 hits eta_min, then it rises.
        assert_eq!(s.lr_at(0.1, 6), ((0.1f32 as f64 + 0.001) / 2.0) as f32);
        assert_eq!(s.lr_at(0.1, 11), 0.001);
        assert_eq!(s.lr_at(0.1, 21), 0.1);
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
        // Without warmup it is CosineAnnealing up to step T + 1, and holds eta_min after.
        let no_warmup = Schedule::WarmupCosine { warmup_steps: 0, t_max: 10, eta_min: 0.001 };
        let cosine = Schedule::CosineAnnealing { t_max: 10, eta_min: 0.001 };
        for t in 1..=11u64 {
            assert_eq!(no_warmup.lr_at(0.1, t), cosine.lr_at(0.1, t), "t = {t}");
        }
        assert_eq!(no_warmup.lr_at(0.1, 12), 0.001);
    }

    #[test]
    fn noam_warms_up_linearly_peaks_at_warmup_then_is_scaled_inverse_sqrt() {
        let s = Schedule::Noam { warmup_steps: 100, d_model: 64, scale: 2.0 };
        let peak = 2.0 / (64.0f64 * 100.0).sqrt(); // scale * (d_model * warmup)^-0.5 = 0.025
        assert_eq!(s.lr_at(1.0, 100), peak as f32);
        // Linear through the origin during warmup: step t is t / warmup of the peak.
        for t in [1u64, 2, 37, 99] {
            let want = peak * t as f64 / 100.0;
            assert!((s.lr_at(1.0, t) as f64 - want).abs() <= want * 1e-7, "t = {t}");
        }
        // From the peak on: inverse-sqrt times scale / sqrt(d_model).
        for t in [100u64, 101, 400, 10_000, 1 << 30] {
            let want = Schedule::InverseSqrt.lr_at(1.0, t) as f64 * 2.0 / 8.0;
            assert!((s.lr_at(1.0, t) as f64 - want).abs() <= want * 1e-7, "t = {t}");
        }
        assert!(s.lr_at(1.0, 99) < s.lr_at(1.0, 100) && s.lr_at(1.0, 101) < s.lr_at(1.0, 100));
        // noam:1,1 is inverse-sqrt exactly.
        let plain = Schedule::Noam { warmup_steps: 1, d_model: 1, scale: 1.0 };
        for t in [1u64, 2, 3, 4, 9, 1000, 123_457] {
            assert_eq!(plain.lr_at(0.01, t), Schedule::InverseSqrt.lr_at(0.01, t), "t = {t}");
        }
    }

    #[test]
    fn onecycle_rises_to_max_then_anneals_to_min_and_holds() {
        // 100 steps, pct_start 0.3: the first phase ends at u = 29 (step 30), at max_lr.
        let s: Schedule = "onecycle:100".parse().unwrap();
        let (max, initial) = (0.5f64, 0.5 / 25.0);
        assert_eq!(s.lr_at(0.5, 1), initial as f32);
        assert_eq!(s.lr_at(0.5, 30), 0.5);
        assert_eq!(s.lr_at(0.5, 100), (initial / 1e4) as f32);
        // Rising, then falling, strictly.
        for t in 1..30u64 {
            assert!(s.lr_at(0.5, t) < s.lr_at(0.5, t + 1), "t = {t}");
        }
        for t in 30..100u64 {
            assert!(s.lr_at(0.5, t) > s.lr_at(0.5, t + 1), "t = {t}");
        }
        // The middle of the second phase (u = 64, halfway from u = 29 to u = 99) is the mean.
        let mid_down = s.rate(max, 30 + 35);
        assert!((mid_down - (max + initial / 1e4) / 2.0).abs() < 1e-15);
        // Past total_steps: the last rate, held (PyTorch raises there).
        for t in [101u64, 102, 1_000_000] {
            assert_eq!(s.lr_at(0.5, t), s.lr_at(0.5, 100), "t = {t}");
        }
    }

    #[test]
    fn onecycle_three_phase_comes_back_down_symmetrically() {
        // 20 steps, pct_start 0.3: up over u in [0, 5], down over (5, 10], then to min.
        let s: Schedule = "onecycle-three-phase:20".parse().unwrap();
        let initial = (0.1f32 as f64 / 25.0) as f32;
        assert_eq!(s.lr_at(0.1, 1), initial);
        assert_eq!(s.lr_at(0.1, 6), 0.1);
        assert_eq!(s.lr_at(0.1, 11), initial);
        for d in 1..5u64 {
            assert_eq!(s.lr_at(0.1, 6 - d), s.lr_at(0.1, 6 + d), "{d} steps either side of the peak");
        }
        assert_eq!(s.lr_at(0.1, 20), (0.1f32 as f64 / 25.0 / 1e4) as f32);
        assert_eq!(s.lr_at(0.1, 21), s.lr_at(0.1, 20));
    }

    #[test]
    #[should_panic(expected = "count from 1")]
    fn lr_at_zero_panics() {
        Schedule::Constant.lr_at(0.1, 0);
    }
}
