//! [`Scheduler`]: a schedule with its base rate, position and optional plateau, driving an
//! optimizer's learning rate, and its state as checkpoint scalars.

use std::collections::BTreeMap;

use super::{Plateau, PlateauState, Schedule};
use crate::optimizer::Optimizer;
use crate::state::StateError;

/// Key of [`Scheduler::position`] in [`Scheduler::state`].
pub const POSITION_KEY: &str = "scheduler.position";
/// Key of [`Scheduler::base_lr`] in [`Scheduler::state`].
pub const BASE_LR_KEY: &str = "scheduler.base_lr";

/// Keys of a plateau's state in [`Scheduler::state`], present exactly when the scheduler
/// has a [`Plateau`]: the rate it has cut the base rate to, `best` (finite, or 0 when
/// infinite), the sign of an infinite `best` (0 when finite: a checkpoint holds finite
/// numbers only), `num_bad_epochs` and `cooldown_counter`.
pub const PLATEAU_KEYS: [&str; 5] = [
    PLATEAU_LR_KEY,
    PLATEAU_BEST_KEY,
    PLATEAU_BEST_INFINITE_KEY,
    PLATEAU_BAD_EPOCHS_KEY,
    PLATEAU_COOLDOWN_KEY,
];
const PLATEAU_LR_KEY: &str = "scheduler.plateau.lr";
const PLATEAU_BEST_KEY: &str = "scheduler.plateau.best";
const PLATEAU_BEST_INFINITE_KEY: &str = "scheduler.plateau.best_infinite";
const PLATEAU_BAD_EPOCHS_KEY: &str = "scheduler.plateau.num_bad_epochs";
const PLATEAU_COOLDOWN_KEY: &str = "scheduler.plateau.cooldown_counter";

/// Largest integer that `f64` holds exactly: positions and counters are saved as `f64`.
const MAX_EXACT_COUNT: f64 = 9_007_199_254_740_992.0;

/// A [`Schedule`] with its base rate and position, driving an optimizer's learning rate.
///
/// Call [`Scheduler::step`] **before** each `optimizer.step(...)`: it advances the position
/// to `t` and sets the optimizer's rate to `lr_at(base_lr, t)`, so optimizer step 1 runs at
/// `lr_at(base_lr, 1)`. (This is the opposite order to PyTorch's `optimizer.step();
/// scheduler.step()`, and gives the same rates: PyTorch sets step 1's rate when the
/// scheduler is built.) Parameter groups' learning-rate multipliers apply on top.
///
/// With a [`Plateau`] ([`Scheduler::with_plateau`]), call [`Scheduler::observe`] once per
/// epoch with the evaluated metric; the plateau's cuts lower the base rate the schedule
/// scales (see [`Scheduler::with_plateau`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduler {
    schedule: Schedule,
    base_lr: f32,
    position: u64,
    plateau: Option<(Plateau, PlateauState)>,
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
        Scheduler { schedule, base_lr, position: 0, plateau: None }
    }

    /// Adds `ReduceLROnPlateau` on top of the schedule, starting fresh.
    ///
    /// **How they combine: the plateau cuts the base rate.** Each cut replaces the base rate
    /// the schedule scales by `max(rate * factor, min_lr)` (skipped when that lowers it by no
    /// more than `eps`), and step `t` then runs at `lr_at(cut base, t)`:
    ///
    /// - With [`Schedule::Constant`] that is PyTorch's `ReduceLROnPlateau` exactly, to the
    ///   bit (`tests/torch_schedules.rs`): the same chain of `lr * factor` in `f64`.
    /// - With `step`, `exp` and `warmup`, it is what PyTorch gives when `StepLR`,
    ///   `ExponentialLR` or `LinearLR` and `ReduceLROnPlateau` step the same optimizer: those
    ///   multiply the current rate by a ratio, so the cuts and the schedule multiply, except
    ///   that `min_lr` bounds the cut base rate here rather than the scheduled rate (a
    ///   decaying schedule still goes below `min_lr`, as it would without the plateau).
    ///   The same test pins this against PyTorch with `min_lr = 0`.
    /// - PyTorch's closed-form schedulers (`LambdaLR`, so `inverse-sqrt` and `noam`, and
    ///   `OneCycleLR`) overwrite a cut at their next step, and the cosine ones' `eta_min` is
    ///   absolute, so PyTorch has no combined behaviour to match there; here the cut scales
    ///   the schedule from the next step on, as for the others.
    ///
    /// (Multiplying the schedule's output by a plateau factor instead would need `min_lr`
    /// divided by the schedule's current value, and would not reproduce PyTorch's repeated
    /// `lr * factor` rounding even with a constant schedule.)
    ///
    /// # Panics
    /// If the plateau is invalid ([`Plateau::validate`]; plateaus parsed from text are
    /// already valid).
    pub fn with_plateau(mut self, plateau: Plateau) -> Scheduler {
        if let Err(e) = plateau.validate() {
            panic!("Scheduler::with_plateau: {e}");
        }
        self.plateau = Some((plateau, plateau.start(self.base_lr as f64)));
        self
    }

    /// Advances to the next optimizer step `t` and sets `optimizer`'s learning rate to
    /// `lr_at(base_lr, t)` (the plateau-cut base rate, with a plateau), which it returns.
    /// Call it before `optimizer.step(...)`.
    pub fn step<O: Optimizer + ?Sized>(&mut self, optimizer: &mut O) -> f32 {
        self.position += 1;
        let lr = self.lr_of(self.position);
        optimizer.set_lr(lr);
        lr
    }

    /// The rate of step `t >= 1`, from the plateau's cut base rate when there is one.
    fn lr_of(&self, t: u64) -> f32 {
        let base = self.plateau.as_ref().map_or(self.base_lr as f64, |(_, state)| state.lr);
        self.schedule.rate(base, t) as f32
    }

    /// Feeds one epoch's metric to the plateau (PyTorch's `ReduceLROnPlateau.step(metric)`):
    /// call it once per epoch, after evaluating, with the metric the plateau's mode expects
    /// (the test loss for `min`, an accuracy for `max`). A cut takes effect from the next
    /// [`Scheduler::step`]. Returns whether the rate was cut; without a plateau it does
    /// nothing and returns false, so a training loop may call it unconditionally.
    pub fn observe(&mut self, metric: f64) -> bool {
        match &mut self.plateau {
            Some((plateau, state)) => plateau.observe(state, metric),
            None => false,
        }
    }

    /// The number of optimizer steps whose rate this scheduler has set (0 before the first).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The rate the next [`Scheduler::step`] will set.
    pub fn next_lr(&self) -> f32 {
        self.lr_of(self.position + 1)
    }

    /// The base learning rate the schedule scales, as configured (a plateau's cuts are in
    /// [`Scheduler::plateau`]'s state).
    pub fn base_lr(&self) -> f32 {
        self.base_lr
    }

    /// Sets the base learning rate the schedule scales from the next step on (a resumed run
    /// told to use another rate). A plateau's cuts so far carry over as a ratio: its cut
    /// rate is scaled by `new / old` (and becomes `new` if the old base rate was 0).
    ///
    /// # Panics
    /// If `base_lr` is negative or not finite, as [`Scheduler::new`].
    pub fn set_base_lr(&mut self, base_lr: f32) {
        assert!(
            base_lr.is_finite() && base_lr >= 0.0,
            "Scheduler::set_base_lr: base learning rate must be finite and >= 0, got {base_lr}"
        );
        if let Some((_, state)) = &mut self.plateau {
            if base_lr != self.base_lr {
                let (old, new) = (self.base_lr as f64, base_lr as f64);
                state.lr = if old > 0.0 { state.lr * new / old } else { new };
            }
        }
        self.base_lr = base_lr;
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The plateau and its current state, if the scheduler has one.
    pub fn plateau(&self) -> Option<(&Plateau, &PlateauState)> {
        self.plateau.as_ref().map(|(p, s)| (p, s))
    }

    /// The position and base rate as plain scalars under [`POSITION_KEY`] and
    /// [`BASE_LR_KEY`], and with a plateau its state under [`PLATEAU_KEYS`], all finite and
    /// exact in `f64`. The keys do not collide with an optimizer's, so they can be merged
    /// into [`crate::OptimizerState::scalars`] and saved with it.
    ///
    /// The schedule and the plateau's settings are configuration, not state: a resumed run
    /// gives them again.
    pub fn state(&self) -> BTreeMap<String, f64> {
        let mut state = BTreeMap::from([
            (POSITION_KEY.to_string(), self.position as f64),
            (BASE_LR_KEY.to_string(), self.base_lr as f64),
        ]);
        if let Some((_, s)) = &self.plateau {
            let (best, infinite) = match s.best {
                b if b.is_finite() => (b, 0.0),
                b => (0.0, b.signum()),
            };
            for (key, value) in [
                (PLATEAU_LR_KEY, s.lr),
                (PLATEAU_BEST_KEY, best),
                (PLATEAU_BEST_INFINITE_KEY, infinite),
                (PLATEAU_BAD_EPOCHS_KEY, s.num_bad_epochs as f64),
                (PLATEAU_COOLDOWN_KEY, s.cooldown_counter as f64),
            ] {
                state.insert(key.to_string(), value);
            }
        }
        state
    }

    /// Restores [`Scheduler::state`], so the next [`Scheduler::step`] and
    /// [`Scheduler::observe`] do what the saved scheduler's would have. Other keys in `state`
    /// are ignored (it may be a whole optimizer's scalars). A state saved without a plateau
    /// (by a scheduler without one, or before plateaus existed) gives a plateau its fresh
    /// state; a plateau's state is refused by a scheduler without a plateau, since its cuts
    /// would be lost. On error nothing changes.
    pub fn load_state(&mut self, state: &BTreeMap<String, f64>) -> Result<(), StateError> {
        let get = |key: &str| {
            state.get(key).copied().ok_or_else(|| StateError::Missing { what: format!("scalar '{key}'") })
        };
        let format = |message: String| Err(StateError::Format { message });
        let position = get(POSITION_KEY)?;
        let base_lr = get(BASE_LR_KEY)?;
        if !is_count(position) {
            return format(format!("'{POSITION_KEY}' must be a whole number of steps, got {position}"));
        }
        // The base rate was saved from an f32, so it must convert back exactly.
        if !(base_lr.is_finite() && base_lr >= 0.0 && (base_lr as f32) as f64 == base_lr) {
            return format(format!("'{BASE_LR_KEY}' must be a finite f32 learning rate >= 0, got {base_lr}"));
        }
        let saved_plateau = PLATEAU_KEYS.iter().any(|k| state.contains_key(*k));
        let plateau = match (&self.plateau, saved_plateau) {
            (None, false) => None,
            (None, true) => {
                return format(
                    "the saved state has a plateau ('scheduler.plateau.*'), this scheduler has none"
                        .to_string(),
                )
            }
            (Some((p, _)), false) => Some((*p, p.start(base_lr))),
            (Some((p, _)), true) => Some((*p, plateau_state(&get)?)),
        };
        self.position = position as u64;
        self.base_lr = base_lr as f32;
        self.plateau = plateau;
        Ok(())
    }
}

/// Whether `x` is a whole number that `f64` holds exactly and `u64` can take.
fn is_count(x: f64) -> bool {
    (0.0..=MAX_EXACT_COUNT).contains(&x) && x.fract() == 0.0
}

/// A plateau's state from its saved scalars (`get` reads one, or says it is missing).
fn plateau_state(get: &dyn Fn(&str) -> Result<f64, StateError>) -> Result<PlateauState, StateError> {
    let bad = |key: &str, what: &str, x: f64| {
        Err(StateError::Format { message: format!("'{key}' must be {what}, got {x}") })
    };
    let lr = get(PLATEAU_LR_KEY)?;
    // Finite as an f32 too: the rates the schedule derives from it are set as f32.
    if !(lr >= 0.0 && lr <= f32::MAX as f64) {
        return bad(PLATEAU_LR_KEY, "a finite learning rate >= 0", lr);
    }
    let best = get(PLATEAU_BEST_KEY)?;
    let infinite = get(PLATEAU_BEST_INFINITE_KEY)?;
    let best = match infinite {
        _ if !best.is_finite() => return bad(PLATEAU_BEST_KEY, "finite", best),
        0.0 => best,
        1.0 | -1.0 if best == 0.0 => infinite * f64::INFINITY,
        _ => return bad(PLATEAU_BEST_INFINITE_KEY, "-1 or 1 with a best of 0, or 0", infinite),
    };
    let mut counts = [0u64; 2];
    for (count, key) in counts.iter_mut().zip([PLATEAU_BAD_EPOCHS_KEY, PLATEAU_COOLDOWN_KEY]) {
        let x = get(key)?;
        if !is_count(x) {
            return bad(key, "a whole number of epochs", x);
        }
        *count = x as u64;
    }
    let [num_bad_epochs, cooldown_counter] = counts;
    Ok(PlateauState { best, num_bad_epochs, cooldown_counter, lr })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build, OptimizerOptions, OptimizerState};
    use adamant_autodiff::{Gradients, Param};
    use adamant_tensor::Tensor;

    /// One parameter whose gradient is always 1, so SGD moves it by exactly -lr per step.
    fn unit_grad(p: &Param) -> Gradients {
        let mut g = Gradients::new();
        g.accumulate(p.id(), Tensor::from_vec(vec![1.0], &[1]));
        g
    }

    /// `state` saved the way a checkpoint saves it: merged into an optimizer's scalars and
    /// through their bytes.
    fn through_bytes(state: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
        let mut saved = build("sgd", &OptimizerOptions::default()).unwrap().state_dict();
        saved.scalars.extend(state);
        OptimizerState::from_bytes(&saved.to_bytes()).unwrap().scalars
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
        for t in 1..=10u64 {
            assert_eq!(scheduler.next_lr(), schedule.lr_at(0.1, t));
            let lr = scheduler.step(&mut *opt);
            assert_eq!(scheduler.position(), t);
            assert_eq!(lr, schedule.lr_at(0.1, t));
            assert_eq!(opt.lr(), lr, "the optimizer runs step {t} at lr_at({t})");
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

        // 12 steps, save, resume in a scheduler made with another base rate, which the saved
        // one overrides.
        let mut first = Scheduler::new(schedule, 0.05);
        for _ in 0..12 {
            first.step(&mut *opt);
        }
        let mut resumed = Scheduler::new(schedule, 0.9);
        resumed.load_state(&through_bytes(first.state())).unwrap();
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
        // A plateau's state, which this scheduler has no plateau for.
        let e = s.load_state(&with("scheduler.plateau.lr", 0.001)).unwrap_err();
        assert!(e.to_string().contains("the saved state has a plateau"), "{e}");
        assert_eq!(s, before);
    }

    #[test]
    #[should_panic(expected = "STEPS must be at least 1")]
    fn scheduler_refuses_an_invalid_schedule() {
        Scheduler::new(Schedule::Step { step_size: 0, gamma: 0.5 }, 0.1);
    }

    /// A loss that improves, stalls long enough for two cuts (patience 2, cooldown 1), and
    /// improves again.
    const LOSSES: [f64; 12] = [1.0, 0.8, 0.8, 0.8, 0.8, 0.9, 0.7, 0.7, 0.7, 0.7, 0.75, 0.6];

    fn plateau() -> Plateau {
        Plateau { patience: 2, factor: 0.5, cooldown: 1, ..Plateau::default() }
    }

    /// Runs `epochs` epochs of 5 steps each, observing `LOSSES`, and returns every rate set.
    fn run(s: &mut Scheduler, epochs: std::ops::Range<usize>) -> Vec<f32> {
        let mut opt = build("sgd", &OptimizerOptions::default()).unwrap();
        let mut rates = Vec::new();
        for epoch in epochs {
            rates.extend((0..5).map(|_| s.step(&mut *opt)));
            s.observe(LOSSES[epoch]);
        }
        rates
    }

    #[test]
    fn plateau_cuts_the_base_rate_the_schedule_scales() {
        let schedule: Schedule = "warmup:8".parse().unwrap();
        let mut s = Scheduler::new(schedule, 0.4).with_plateau(plateau());
        let rates = run(&mut s, 0..LOSSES.len());
        // Epochs 3, 4, 5 are bad (0.8 is not below 0.8 * (1 - 1e-4)): cut after epoch 5;
        // epoch 6 is cooldown, epochs 8, 9, 10 bad: cut after epoch 10.
        let (_, state) = s.plateau().unwrap();
        assert_eq!(state.lr, 0.4f32 as f64 * 0.25);
        assert_eq!((state.best, state.num_bad_epochs, state.cooldown_counter), (0.6, 0, 0));
        for (i, &rate) in rates.iter().enumerate() {
            let t = i as u64 + 1;
            let cuts = if i < 25 {
                1.0
            } else if i < 50 {
                0.5
            } else {
                0.25
            };
            assert_eq!(rate, schedule.rate(0.4f32 as f64 * cuts, t) as f32, "step {t}");
        }
        // Without a plateau, observing does nothing.
        let mut plain = Scheduler::new(schedule, 0.4);
        assert!(!plain.observe(f64::NAN));
        assert_eq!(plain, Scheduler::new(schedule, 0.4));
    }

    #[test]
    fn plateau_state_round_trip_continues_bit_identically() {
        let schedule: Schedule = "onecycle:60,0.25".parse().unwrap();
        let fresh = || Scheduler::new(schedule, 0.3).with_plateau(plateau());
        let mut full = fresh();
        let rates = run(&mut full, 0..LOSSES.len());
        // Stop after every epoch (and before the first: best is still +inf), save, resume.
        for stop in 0..LOSSES.len() {
            let mut first = fresh();
            run(&mut first, 0..stop);
            let state = through_bytes(first.state());
            assert!(state.values().all(|x| x.is_finite()), "checkpoints hold finite numbers only: {state:?}");
            let mut resumed = Scheduler::new(schedule, 0.7).with_plateau(plateau());
            resumed.load_state(&state).unwrap();
            assert_eq!(resumed, first, "stopped after epoch {stop}");
            let rest = run(&mut resumed, stop..LOSSES.len());
            assert_eq!(rest, rates[stop * 5..], "stopped after epoch {stop}");
            assert_eq!(resumed, full);
        }
        // Max mode with an infinite best of the other sign.
        let max = Plateau { mode: super::super::PlateauMode::Max, ..plateau() };
        let mut s = Scheduler::new(schedule, 0.3).with_plateau(max);
        let mut resumed = s.clone();
        s.observe(f64::INFINITY);
        resumed.load_state(&through_bytes(s.state())).unwrap();
        assert_eq!(resumed.plateau().unwrap().1.best, f64::INFINITY);
        assert_eq!(resumed, s);
    }

    #[test]
    fn old_state_without_plateau_keys_gives_a_fresh_plateau() {
        let schedule = Schedule::Constant;
        // Saved by a scheduler without a plateau (as every state before plateaus existed).
        let mut old = Scheduler::new(schedule, 0.25);
        run(&mut old, 0..3);
        let saved = through_bytes(old.state());
        assert!(!saved.keys().any(|k| k.starts_with("scheduler.plateau")));
        let mut s = Scheduler::new(schedule, 0.5).with_plateau(plateau());
        run(&mut s, 0..6); // a cut happened: the loaded state must replace it
        s.load_state(&saved).unwrap();
        assert_eq!(s.position(), 15);
        assert_eq!(s, {
            let mut want = Scheduler::new(schedule, 0.25).with_plateau(plateau());
            want.position = 15;
            want
        });
        assert_eq!(s.plateau().unwrap().1, &plateau().start(0.25));
    }

    #[test]
    fn load_state_rejects_a_bad_plateau_state_and_changes_nothing() {
        let mut s = Scheduler::new(Schedule::Constant, 0.5).with_plateau(plateau());
        run(&mut s, 0..4);
        let before = s.clone();
        let good = s.state();
        let with = |key: &str, v: f64| {
            let mut m = good.clone();
            m.insert(key.to_string(), v);
            m
        };
        let mut partial = good.clone();
        partial.remove(PLATEAU_COOLDOWN_KEY);
        let cases = [
            (partial, "lacks scalar 'scheduler.plateau.cooldown_counter'"),
            (with(PLATEAU_LR_KEY, -1.0), "'scheduler.plateau.lr' must be a finite learning rate >= 0"),
            (with(PLATEAU_LR_KEY, 1e300), "'scheduler.plateau.lr' must be a finite learning rate >= 0"),
            (with(PLATEAU_LR_KEY, f64::NAN), "'scheduler.plateau.lr' must be a finite learning rate >= 0"),
            (with(PLATEAU_BEST_KEY, f64::NAN), "'scheduler.plateau.best' must be finite"),
            (with(PLATEAU_BEST_INFINITE_KEY, 2.0), "'scheduler.plateau.best_infinite' must be -1 or 1"),
            (with(PLATEAU_BEST_INFINITE_KEY, 1.0), "'scheduler.plateau.best_infinite' must be -1 or 1"),
            (with(PLATEAU_BAD_EPOCHS_KEY, 0.5), "'scheduler.plateau.num_bad_epochs' must be a whole number"),
            (with(PLATEAU_COOLDOWN_KEY, -1.0), "'scheduler.plateau.cooldown_counter' must be a whole number"),
        ];
        for (state, want) in cases {
            let e = s.load_state(&state).unwrap_err().to_string();
            assert!(e.contains(want), "'{e}' lacks '{want}'");
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(s, before);
    }

    #[test]
    fn set_base_lr_keeps_the_plateaus_cuts_as_a_ratio() {
        let mut s = Scheduler::new(Schedule::Constant, 0.5).with_plateau(plateau());
        run(&mut s, 0..6); // one cut: 0.25
        assert_eq!(s.next_lr(), 0.25);
        s.set_base_lr(0.5);
        assert_eq!(s.next_lr(), 0.25, "the same base rate changes nothing");
        s.set_base_lr(0.125);
        assert_eq!(s.next_lr(), 0.0625);
        let mut zero = Scheduler::new(Schedule::Constant, 0.0).with_plateau(plateau());
        zero.set_base_lr(0.125);
        assert_eq!(zero.next_lr(), 0.125);
    }
}
