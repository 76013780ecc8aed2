//! Every learning-rate schedule with a PyTorch counterpart gives the rates
//! `torch.optim.lr_scheduler` gives, and a [`Plateau`] follows `ReduceLROnPlateau` epoch by
//! epoch.
//!
//! The rates come from `tests/fixtures/gen_schedules.py` (torch 2.15), which names each case
//! by adamant's spelling of it: the test parses that spelling, so it also pins what the
//! spelling means (and that `Display` writes it back). Optimizer step `t` must run at the
//! rate PyTorch's canonical loop gives step `t` (its `last_epoch = t - 1`).
//!
//! How close: where PyTorch evaluates the same closed form (`LambdaLR` with the Noam lambda,
//! `OneCycleLR`, `ReduceLROnPlateau`'s `lr * factor`), adamant computes the same `f64` value
//! and must round it to the same `f32`, bit for bit. PyTorch's chainable schedulers
//! (`StepLR`, `ExponentialLR`, `LinearLR`, `CosineAnnealingLR`) multiply the previous rate
//! by a ratio each step and drift from the closed form by a few `f64` ulps, so for them
//! "agree" is a relative error below 1e-7 (an `f32` ulp is 6e-8 to 1.2e-7 relative).

use std::sync::OnceLock;

use adamant_optim::schedule::{Plateau, Schedule, Scheduler};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/schedules_torch.json");

/// Relative tolerance against PyTorch's chainable schedulers.
const CHAINABLE_TOLERANCE: f64 = 1e-7;

fn fixture() -> &'static Value {
    static FIXTURE_JSON: OnceLock<Value> = OnceLock::new();
    FIXTURE_JSON.get_or_init(|| {
        let text = std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("reading {FIXTURE}: {e}"));
        serde_json::from_str(&text).expect("fixture is valid JSON")
    })
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().expect("array of numbers").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().expect("array of counts").iter().map(|x| x.as_u64().expect("count")).collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// The base rate as adamant holds it; the generator chose f32 values, so this is exact.
fn base_lr(case: &Value) -> f32 {
    let base = case["base_lr"].as_f64().expect("base_lr");
    assert_eq!(base as f32 as f64, base, "{case}: the fixture's base rates are f32 values");
    base as f32
}

/// The fixture's cases of one kind (`"noam"`, `"onecycle"`, ...), by their spelling's name.
fn schedules(kind: &str) -> Vec<&'static Value> {
    let all = fixture()["schedules"].as_array().expect("schedules");
    let cases: Vec<&Value> =
        all.iter().filter(|c| str_of(&c["spec"]).split(':').next() == Some(kind)).collect();
    assert!(!cases.is_empty(), "the fixture has no '{kind}' case");
    cases
}

/// Checks one case: `lr_at(base, t)` against PyTorch's rate of step `t` for every recorded
/// `t`, and a [`Scheduler`] stepping through all of them sets the same rates.
fn check(case: &Value) {
    let spec = str_of(&case["spec"]);
    let schedule: Schedule = spec.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(schedule.to_string(), spec, "Display writes the fixture's spelling back");
    let base = base_lr(case);
    let exact = case["closed_form"].as_bool().expect("closed_form");
    let steps = u64s(&case["steps"]);
    let want = f64s(&case["lrs"]);
    assert_eq!(steps.len(), want.len());
    let mut scheduler = Scheduler::new(schedule, base);
    let mut optimizer = adamant_optim::build("sgd", &Default::default()).unwrap();
    let mut rates = vec![0.0f32];
    for _ in 1..=*steps.last().unwrap() {
        rates.push(scheduler.step(&mut *optimizer));
    }
    for (&t, &w) in steps.iter().zip(&want) {
        let got = schedule.lr_at(base, t);
        assert_eq!(rates[t as usize], got, "{spec}: the scheduler's step {t}");
        if exact {
            assert_eq!(got, w as f32, "{spec} at t = {t}: got {got}, torch {w} ({})", str_of(&case["torch"]));
        } else {
            let rel = ((got as f64 - w) / w).abs();
            assert!(rel < CHAINABLE_TOLERANCE, "{spec} at t = {t}: got {got}, torch {w} (relative {rel:e})");
        }
    }
}

#[test]
fn fixture_is_from_torch_2_15() {
    assert!(str_of(&fixture()["torch_version"]).starts_with("2.15."));
}

#[test]
fn step_matches_steplr() {
    schedules("step").into_iter().for_each(check);
}

#[test]
fn exp_matches_exponentiallr_far_out() {
    schedules("exp").into_iter().for_each(check);
}

#[test]
fn warmup_matches_linearlr() {
    schedules("warmup").into_iter().for_each(check);
}

#[test]
fn cosine_matches_cosineannealinglr_including_past_t_max() {
    schedules("cosine").into_iter().for_each(check);
}

#[test]
fn noam_matches_lambdalr_with_the_transformers_lambda() {
    // The paper's setting, a scaled one, and noam:1,1 (which is inverse-sqrt).
    let cases = schedules("noam");
    assert!(cases.len() >= 3);
    cases.into_iter().for_each(check);
    // The paper's peak: d_model^-0.5 * warmup^-0.5 at step 4000, i.e. 1 / sqrt(512 * 4000).
    let paper: Schedule = "noam:4000,512".parse().unwrap();
    assert_eq!(paper.lr_at(1.0, 4000), (1.0 / (512.0f64 * 4000.0).sqrt()) as f32);
}

#[test]
fn onecycle_matches_onecyclelr_two_and_three_phases() {
    let mut cases = schedules("onecycle");
    cases.extend(schedules("onecycle-three-phase"));
    assert!(cases.iter().any(|c| str_of(&c["spec"]) == "onecycle:1"), "the one-step cycle is covered");
    cases.into_iter().for_each(check);
}

#[test]
fn plateau_matches_reducelronplateau_epoch_by_epoch() {
    let cases = fixture()["plateaus"].as_array().expect("plateaus");
    assert!(cases.len() >= 6);
    for case in cases {
        let spec = str_of(&case["spec"]);
        let plateau: Plateau = spec.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plateau.to_string(), spec, "Display writes the fixture's spelling back");
        let base = base_lr(case);
        let metrics = f64s(&case["metrics"]);
        let (lrs, bests) = (f64s(&case["lr"]), f64s(&case["best"]));
        let (bad, cooldown) = (u64s(&case["num_bad_epochs"]), u64s(&case["cooldown_counter"]));
        // A constant schedule, one step per epoch: the plateau alone sets the rate.
        let mut scheduler = Scheduler::new(Schedule::Constant, base).with_plateau(plateau);
        let mut optimizer = adamant_optim::build("sgd", &Default::default()).unwrap();
        let mut previous = base as f64;
        for (epoch, &metric) in metrics.iter().enumerate() {
            scheduler.step(&mut *optimizer);
            let cut = scheduler.observe(metric);
            let (_, state) = scheduler.plateau().unwrap();
            let at = format!("{spec}, epoch {}, metric {metric}", epoch + 1);
            // The rate is PyTorch's f64 to the bit (the same multiplications), and so is
            // the f32 the next step runs at.
            assert_eq!(state.lr, lrs[epoch], "{at}: lr");
            assert_eq!(scheduler.next_lr(), lrs[epoch] as f32, "{at}: next step's rate");
            assert_eq!(cut, lrs[epoch] != previous, "{at}: whether it cut");
            assert_eq!(state.best, bests[epoch], "{at}: best");
            assert_eq!(state.num_bad_epochs, bad[epoch], "{at}: num_bad_epochs");
            assert_eq!(state.cooldown_counter, cooldown[epoch], "{at}: cooldown_counter");
            previous = lrs[epoch];
        }
    }
}

#[test]
fn plateau_fixture_exercises_every_mechanism() {
    // The cases must reach what they are there to pin: cooldown, min_lr, both modes, both
    // threshold modes, and a cut skipped by eps. Checked on the fixture, so that a
    // regenerated fixture cannot silently lose one.
    let cases = fixture()["plateaus"].as_array().expect("plateaus");
    let parsed: Vec<(Plateau, &Value)> =
        cases.iter().map(|c| (str_of(&c["spec"]).parse().unwrap(), c)).collect();
    let any = |f: &dyn Fn(&Plateau, &Value) -> bool| parsed.iter().any(|(p, c)| f(p, c));
    let lrs = |c: &Value| f64s(&c["lr"]);
    assert!(any(&|_, c| u64s(&c["cooldown_counter"]).iter().any(|&n| n > 0)), "cooldown");
    assert!(any(&|p, c| p.min_lr > 0.0 && lrs(c).contains(&p.min_lr)), "min_lr reached");
    for mode in ["min", "max"] {
        for threshold_mode in ["rel", "abs"] {
            assert!(
                any(&|p, c| p.mode.to_string() == mode
                    && p.threshold_mode.to_string() == threshold_mode
                    && lrs(c).iter().any(|&lr| lr < c["base_lr"].as_f64().unwrap())),
                "a cut in {mode}/{threshold_mode}"
            );
        }
    }
    // eps: the last rate is above min_lr, yet the cut to max(lr * factor, min_lr) would
    // lower it by no more than eps, so the epochs past patience that follow leave it.
    assert!(
        any(&|p, c| {
            let last = *lrs(c).last().unwrap();
            last > p.min_lr && last - (last * p.factor).max(p.min_lr) <= p.eps
        }),
        "a cut skipped by eps"
    );
}

#[test]
fn plateau_on_a_chainable_schedule_matches_both_torch_schedulers_stepping_one_optimizer() {
    // StepLR / ExponentialLR / LinearLR stepped every step and ReduceLROnPlateau every epoch
    // multiply the same rate: adamant's plateau cutting the base rate gives those rates, with
    // cuts during the warmup and between decays. (Chainable: a few f64 ulps of drift.)
    let cases = fixture()["chained"].as_array().expect("chained");
    assert!(cases.len() >= 3);
    for case in cases {
        let spec = str_of(&case["spec"]);
        let schedule: Schedule = spec.parse().unwrap_or_else(|e| panic!("{e}"));
        let plateau: Plateau = str_of(&case["plateau"]).parse().unwrap_or_else(|e| panic!("{e}"));
        let base = base_lr(case);
        let per_epoch = case["steps_per_epoch"].as_u64().expect("steps_per_epoch") as usize;
        let (metrics, want) = (f64s(&case["metrics"]), f64s(&case["lrs"]));
        assert_eq!(want.len(), metrics.len() * per_epoch);
        let mut scheduler = Scheduler::new(schedule, base).with_plateau(plateau);
        let mut optimizer = adamant_optim::build("sgd", &Default::default()).unwrap();
        let mut cuts = 0;
        for (epoch, &metric) in metrics.iter().enumerate() {
            for (i, &w) in want[epoch * per_epoch..][..per_epoch].iter().enumerate() {
                let got = scheduler.step(&mut *optimizer) as f64;
                let rel = ((got - w) / w).abs();
                let t = epoch * per_epoch + i + 1;
                assert!(rel < CHAINABLE_TOLERANCE, "{spec} + {plateau}, step {t}: got {got}, torch {w}");
            }
            cuts += scheduler.observe(metric) as usize;
        }
        assert!(cuts >= 2, "{spec} + {plateau}: the case cuts the rate ({cuts} cuts)");
    }
}
