//! Weight averaging: a running average of the parameters (and buffers) over optimizer steps,
//! evaluated in place of the last iterate.
//!
//! Three schemes ([`Averaging`]):
//!
//! ```text
//! Temporal (the paper's section 7.2), theta_bar_0 = 0, t counting the updates:
//!     theta_bar_t = beta2 theta_bar_{t-1} + (1 - beta2) theta_t
//!     theta_hat_t = theta_bar_t / (1 - beta2^t)                  (the estimate used)
//! Ema (torch.optim.swa_utils.get_ema_multi_avg_fn(decay), no bias correction):
//!     W_1 = theta_1,   W_t = decay W_{t-1} + (1 - decay) theta_t  (t > 1)
//! Swa (torch.optim.swa_utils.get_swa_multi_avg_fn(), the running mean):
//!     W_1 = theta_1,   W_t = W_{t-1} + (theta_t - W_{t-1}) / t    (t > 1)
//! ```
//!
//! EMA and SWA are `torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=...,
//! use_buffers=True)` step for step: the first update copies the model (`n_averaged == 0`),
//! later ones are `torch._foreach_lerp_(avg, current, w)` with `w = 1 - decay` (EMA) or
//! `w = 1 / (n_averaged + 1)` (SWA), computed in torch's two-branch lerp (`moments::lerp`).
//! Buffers are averaged with the parameters, as `use_buffers=True` does: batch norm's running
//! mean and variance like weights. Whole-number counters ([`ValueKind::Count`], batch norm's
//! `num_batches_tracked`) are `int64` in torch, where the average is computed in `f32` and
//! truncated toward zero: EMA's `trunc(decay a + (1 - decay) b)` (so the averaged count lags
//! the model's by about `1 / (1 - decay)`), and SWA's `trunc(a + (b - a) / (n + 1))`, which
//! is `get_swa_avg_fn`'s form because torch 2.15's `get_swa_multi_avg_fn` refuses integer
//! tensors (its `addcdiv` raises). The temporal average has no counterpart in torch; its
//! counters follow the model. A counter only matters to a batch norm with `momentum=None`.
//!
//! The average holds copies, not the model: [`WeightAverage::update`] reads the current values
//! by name after each optimizer step, [`WeightAverage::averaged`] gives the tensors to
//! evaluate with (the facade's `adamant::average::with_averaged` swaps them into a module),
//! and [`WeightAverage::state`] / [`WeightAverage::load_state`] save and restore it exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use adamant_tensor::Tensor;

use crate::moments::lerp;

/// Which running average of the weights [`WeightAverage`] keeps (formulas in the module
/// docs). Rates are `f64` because torch's are Python floats: `1 - decay` is taken in `f64`
/// and rounded to `f32` once, as torch passes it to its `f32` kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Averaging {
    /// The paper's temporal average (section 7.2) with its bias correction:
    /// `theta_bar_t = beta2 theta_bar_{t-1} + (1 - beta2) theta_t`,
    /// `theta_hat_t = theta_bar_t / (1 - beta2^t)`, `theta_bar_0 = 0`.
    Temporal {
        /// Decay rate, in `[0, 1)`.
        beta2: f64,
    },
    /// PyTorch's EMA (`get_ema_multi_avg_fn(decay)`): `W_1 = theta_1`,
    /// `W_t = decay W_{t-1} + (1 - decay) theta_t`, no bias correction.
    Ema {
        /// Decay rate, in `[0, 1]`.
        decay: f64,
    },
    /// Stochastic weight averaging (`get_swa_multi_avg_fn()`): the equally weighted mean of
    /// every iterate, `W_t = W_{t-1} + (theta_t - W_{t-1}) / t`.
    Swa,
}

impl Averaging {
    /// Checks the rate: `beta2` in `[0, 1)` (at 1 the correction divides by zero), `decay` in
    /// `[0, 1]` (torch's range).
    pub fn check(self) -> Result<Averaging, AverageError> {
        let bad = |what: &str, value: f64, range: &str| {
            Err(AverageError::Invalid(format!("{what} must be in {range}, got {value}")))
        };
        match self {
            Averaging::Temporal { beta2 } if !(0.0..1.0).contains(&beta2) => bad("beta2", beta2, "[0, 1)"),
            Averaging::Ema { decay } if !(0.0..=1.0).contains(&decay) => bad("decay", decay, "[0, 1]"),
            _ => Ok(self),
        }
    }
}

impl fmt::Display for Averaging {
    /// `temporal:BETA2`, `ema:DECAY` or `swa`, as [`FromStr`] reads it (shortest `f64` text, so
    /// the rate reads back to the same bits).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Averaging::Temporal { beta2 } => write!(f, "temporal:{beta2}"),
            Averaging::Ema { decay } => write!(f, "ema:{decay}"),
            Averaging::Swa => write!(f, "swa"),
        }
    }
}

impl FromStr for Averaging {
    type Err = AverageError;

    /// `temporal:BETA2`, `ema:DECAY` or `swa`, with the rate checked ([`Averaging::check`]).
    fn from_str(s: &str) -> Result<Averaging, AverageError> {
        let rate = |text: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| AverageError::Invalid(format!("'{}' is not a number", text.escape_debug())))
        };
        let averaging = match s.split_once(':') {
            None if s == "swa" => Averaging::Swa,
            Some(("temporal", r)) => Averaging::Temporal { beta2: rate(r)? },
            Some(("ema", r)) => Averaging::Ema { decay: rate(r)? },
            _ => {
                return Err(AverageError::Invalid(format!(
                    "'{}': expected temporal:BETA2, ema:DECAY or swa",
                    s.escape_debug()
                )))
            }
        };
        averaging.check()
    }
}

/// How a tensor is averaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A parameter or an `f32` buffer (running statistics): averaged by the formula.
    Float,
    /// A whole-number counter held as `f32` (`num_batches_tracked`): averaged as torch does
    /// its `int64` tensors, truncating toward zero (see the module docs).
    Count,
}

/// Why an averaging setting or a saved average cannot be used.
#[derive(Clone, Debug, PartialEq)]
pub enum AverageError {
    /// A rate out of range or a spelling not understood.
    Invalid(String),
    /// The saved average does not fit the model (names, shapes) or is malformed.
    State(String),
}

impl fmt::Display for AverageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AverageError::Invalid(why) => write!(f, "weight averaging: {why}"),
            AverageError::State(why) => write!(f, "weight average: {why}"),
        }
    }
}

impl std::error::Error for AverageError {}

/// One averaged tensor.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    name: String,
    kind: ValueKind,
    /// The running state: `theta_bar` for the temporal average, the average itself otherwise.
    value: Tensor,
}

/// The saved state of a [`WeightAverage`], exact to the bit.
#[derive(Clone, Debug, PartialEq)]
pub struct AverageState {
    /// The scheme.
    pub averaging: Averaging,
    /// Updates taken (torch's `n_averaged`; the temporal average's `t`).
    pub updates: u64,
    /// The running state of every tensor, by name, in the model's order: `theta_bar` for the
    /// temporal average, the average for EMA and SWA. Empty before the first update.
    pub tensors: Vec<(String, Tensor, ValueKind)>,
}

/// A running average of a model's weights (and buffers) over optimizer steps.
///
/// ```
/// use adamant_optim::average::{Averaging, ValueKind, WeightAverage};
/// use adamant_tensor::Tensor;
///
/// let mut swa = WeightAverage::new(Averaging::Swa);
/// for x in [1.0, 2.0, 6.0] {
///     let w = Tensor::from_vec(vec![x], &[1]);
///     swa.update([("w", &w, ValueKind::Float)]);
/// }
/// assert_eq!(swa.averaged()[0].1.data(), &[3.0]);
/// ```
#[derive(Clone, Debug)]
pub struct WeightAverage {
    averaging: Averaging,
    updates: u64,
    entries: Vec<Entry>,
}

impl WeightAverage {
    /// An empty average (no update yet).
    ///
    /// # Panics
    /// If the rate is out of range ([`Averaging::check`]; parse user input with
    /// [`Averaging::from_str`], which refuses it with an error).
    pub fn new(averaging: Averaging) -> WeightAverage {
        if let Err(e) = averaging.check() {
            panic!("WeightAverage::new: {e}");
        }
        WeightAverage { averaging, updates: 0, entries: Vec::new() }
    }

    /// The scheme.
    pub fn averaging(&self) -> Averaging {
        self.averaging
    }

    /// Updates taken so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Folds the current values `(name, tensor, kind)` into the average: the parameters after
    /// an optimizer step, then the buffers. The first update fixes the names, their order and
    /// shapes.
    ///
    /// # Panics
    /// If a later update's names, kinds or shapes differ from the first one's (a programmer
    /// error: the average belongs to one model).
    pub fn update<'a>(&mut self, current: impl IntoIterator<Item = (&'a str, &'a Tensor, ValueKind)>) {
        let first = self.updates == 0 && self.entries.is_empty();
        let n = self.updates;
        let mut seen = 0;
        for (i, (name, x, kind)) in current.into_iter().enumerate() {
            seen += 1;
            if first {
                let value = match self.averaging {
                    // theta_bar_1 = beta2 * 0 + (1 - beta2) theta_1, as the later updates compute it.
                    Averaging::Temporal { beta2 } => {
                        let mut bar = Tensor::zeros(x.shape());
                        blend(self.averaging, kind, bar.data_mut(), x.data(), n, beta2);
                        bar
                    }
                    // torch copies the model on the first update (n_averaged == 0).
                    Averaging::Ema { .. } | Averaging::Swa => x.clone(),
                };
                self.entries.push(Entry { name: name.to_string(), kind, value });
                continue;
            }
            let entry = self.entries.get_mut(i).unwrap_or_else(|| {
                panic!("WeightAverage::update: '{name}' is not among the tensors of the first update")
            });
            assert!(
                entry.name == name && entry.kind == kind && entry.value.shape() == x.shape(),
                "WeightAverage::update: tensor {i} is '{name}' {kind:?} {:?}, the first update's was '{}' {:?} {:?}",
                x.shape(),
                entry.name,
                entry.kind,
                entry.value.shape()
            );
            let rate = match self.averaging {
                Averaging::Temporal { beta2 } => beta2,
                Averaging::Ema { decay } => decay,
                Averaging::Swa => 0.0,
            };
            blend(self.averaging, kind, entry.value.data_mut(), x.data(), n, rate);
        }
        assert!(
            first || seen == self.entries.len(),
            "WeightAverage::update: {seen} tensors, the first update had {}",
            self.entries.len()
        );
        self.updates += 1;
    }

    /// The averaged tensors by name, in the order of the updates: the bias-corrected estimate
    /// `theta_hat_t` for the temporal average (its counters as last seen), the average itself
    /// for EMA and SWA. Empty before the first update.
    pub fn averaged(&self) -> Vec<(String, Tensor)> {
        let correction = match self.averaging {
            // 1 - beta2^t in f64, as the reference computes it, rounded once to f32.
            Averaging::Temporal { beta2 } => Some((1.0 - beta2.powf(self.updates as f64)) as f32),
            Averaging::Ema { .. } | Averaging::Swa => None,
        };
        self.entries
            .iter()
            .map(|e| {
                let value = match (correction, e.kind) {
                    (Some(c), ValueKind::Float) => {
                        let data = e.value.data().iter().map(|&bar| bar / c).collect();
                        Tensor::from_vec(data, e.value.shape())
                    }
                    _ => e.value.clone(),
                };
                (e.name.clone(), value)
            })
            .collect()
    }

    /// The state to save: everything [`WeightAverage::load_state`] needs to continue exactly.
    pub fn state(&self) -> AverageState {
        AverageState {
            averaging: self.averaging,
            updates: self.updates,
            tensors: self.entries.iter().map(|e| (e.name.clone(), e.value.clone(), e.kind)).collect(),
        }
    }

    /// Replaces the average with a saved one of the same scheme. On error nothing changes.
    pub fn load_state(&mut self, state: AverageState) -> Result<(), AverageError> {
        if state.averaging != self.averaging {
            return Err(AverageError::State(format!(
                "it was kept as {}, this run averages as {}",
                state.averaging, self.averaging
            )));
        }
        if (state.updates == 0) != state.tensors.is_empty() {
            return Err(AverageError::State(format!(
                "{} updates but {} tensors",
                state.updates,
                state.tensors.len()
            )));
        }
        self.updates = state.updates;
        self.entries =
            state.tensors.into_iter().map(|(name, value, kind)| Entry { name, kind, value }).collect();
        Ok(())
    }
}

/// One element-wise update of a running state `avg` with the current values `x`, after `n`
/// earlier updates, at `rate` (`beta2` or `decay`; unused by SWA).
fn blend(averaging: Averaging, kind: ValueKind, avg: &mut [f32], x: &[f32], n: u64, rate: f64) {
    match (averaging, kind) {
        // torch._foreach_lerp_(avg, x, 1 - decay): the Python float 1 - decay, rounded to f32.
        (Averaging::Temporal { .. } | Averaging::Ema { .. }, ValueKind::Float) => {
            let w = (1.0 - rate) as f32;
            avg.iter_mut().zip(x).for_each(|(a, &b)| *a = lerp(*a, b, w));
        }
        // torch._foreach_lerp_(avg, x, 1 / (n_averaged + 1)), the weight an f32 division.
        (Averaging::Swa, ValueKind::Float) => {
            let w = 1.0 / (n + 1) as f32;
            avg.iter_mut().zip(x).for_each(|(a, &b)| *a = lerp(*a, b, w));
        }
        // int64 in torch: `a * decay + b * (1 - decay)` in f32, copied back truncated.
        (Averaging::Ema { .. }, ValueKind::Count) => {
            let (keep, take) = (rate as f32, (1.0 - rate) as f32);
            avg.iter_mut().zip(x).for_each(|(a, &b)| *a = (*a * keep + b * take).trunc());
        }
        // get_swa_avg_fn on int64: `a + (b - a) / (n + 1)`, the division in f32, truncated.
        (Averaging::Swa, ValueKind::Count) => {
            let t = (n + 1) as f32;
            avg.iter_mut().zip(x).for_each(|(a, &b)| *a = (*a + (b - *a) / t).trunc());
        }
        // The temporal average's counters follow the model.
        (Averaging::Temporal { .. }, ValueKind::Count) => avg.copy_from_slice(x),
    }
}

/// Metadata keys and the tensor prefix of an average inside a file (`write_into`).
const SCHEME: &str = "scheme";
const UPDATES: &str = "updates";
const ORDER: &str = "order";
const COUNTS: &str = "counts";

impl AverageState {
    /// Adds the state to a file being assembled: each tensor as `"{prefix}{name}"`, the
    /// scheme, the update count, the tensors' order and which are counters as metadata keys
    /// `"{prefix}scheme"` and so on. A checkpoint puts the average beside the model this way.
    pub fn write_into(
        &self,
        prefix: &str,
        tensors: &mut Vec<(String, Tensor)>,
        metadata: &mut BTreeMap<String, String>,
    ) {
        metadata.insert(format!("{prefix}{SCHEME}"), self.averaging.to_string());
        metadata.insert(format!("{prefix}{UPDATES}"), self.updates.to_string());
        let names: Vec<&str> = self.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
        metadata.insert(format!("{prefix}{ORDER}"), names.join(","));
        let counts: Vec<&str> = self
            .tensors
            .iter()
            .filter(|(_, _, k)| *k == ValueKind::Count)
            .map(|(n, _, _)| n.as_str())
            .collect();
        metadata.insert(format!("{prefix}{COUNTS}"), counts.join(","));
        for (name, t, _) in &self.tensors {
            tensors.push((format!("{prefix}{name}"), t.clone()));
        }
    }

    /// Reads back what [`AverageState::write_into`] added under `prefix`, taking its tensors
    /// out of `tensors`; `Ok(None)` when the file has no average (its scheme key is absent).
    /// Every malformed entry is an error, not a panic.
    pub fn read_from(
        prefix: &str,
        tensors: &mut Vec<(String, Tensor)>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Option<AverageState>, AverageError> {
        let bad = |why: String| AverageError::State(why);
        let Some(scheme) = metadata.get(&format!("{prefix}{SCHEME}")) else { return Ok(None) };
        let field = |k: &str| {
            metadata
                .get(&format!("{prefix}{k}"))
                .ok_or_else(|| bad(format!("metadata '{prefix}{k}' is missing")))
        };
        let averaging: Averaging = scheme.parse()?;
        let updates_text = field(UPDATES)?;
        let updates: u64 = updates_text
            .parse()
            .map_err(|_| bad(format!("'{prefix}{UPDATES}' is not a number: '{updates_text}'")))?;
        let list = |text: &str| -> Vec<String> {
            text.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        let order = list(field(ORDER)?);
        let counts = list(field(COUNTS)?);
        let (mine, others): (Vec<_>, Vec<_>) =
            std::mem::take(tensors).into_iter().partition(|(name, _)| name.starts_with(prefix));
        *tensors = others;
        let mut by_name: BTreeMap<String, Tensor> =
            mine.into_iter().map(|(n, t)| (n[prefix.len()..].to_string(), t)).collect();
        let mut out = Vec::with_capacity(order.len());
        for name in order {
            let t =
                by_name.remove(&name).ok_or_else(|| bad(format!("tensor '{prefix}{name}' is missing")))?;
            let kind = if counts.contains(&name) { ValueKind::Count } else { ValueKind::Float };
            out.push((name, t, kind));
        }
        if let Some(extra) = by_name.keys().next() {
            return Err(bad(format!("tensor '{prefix}{extra}' is not in '{prefix}{ORDER}'")));
        }
        if let Some(c) = counts.iter().find(|c| !out.iter().any(|(n, _, _)| n == *c)) {
            return Err(bad(format!("counter '{c}' is not in '{prefix}{ORDER}'")));
        }
        if (updates == 0) != out.is_empty() {
            return Err(bad(format!("{updates} updates but {} tensors", out.len())));
        }
        Ok(Some(AverageState { averaging, updates, tensors: out }))
    }

    /// Checks the state against the tensors it must average, `(name, shape, kind)` in order:
    /// the same names, order, shapes and kinds (or no tensor at all before the first update).
    pub fn validate<'a>(
        &self,
        expected: impl IntoIterator<Item = (&'a str, &'a [usize], ValueKind)>,
    ) -> Result<(), AverageError> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        let expected: Vec<_> = expected.into_iter().collect();
        if expected.len() != self.tensors.len() {
            return Err(AverageError::State(format!(
                "it averages {} tensors, the model has {}",
                self.tensors.len(),
                expected.len()
            )));
        }
        for ((name, t, kind), (want, shape, want_kind)) in self.tensors.iter().zip(expected) {
            if name != want || t.shape() != shape || *kind != want_kind {
                return Err(AverageError::State(format!(
                    "it holds '{name}' {kind:?} {:?} where the model has '{want}' {want_kind:?} {shape:?}",
                    t.shape()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(avg: &mut WeightAverage, x: &[f32], count: f32) {
        let (w, c) = (Tensor::from_vec(x.to_vec(), &[x.len()]), Tensor::scalar(count));
        avg.update([("w", &w, ValueKind::Float), ("n", &c, ValueKind::Count)]);
    }

    #[test]
    fn spellings_round_trip_and_bad_rates_are_refused() {
        for a in [Averaging::Temporal { beta2: 0.999 }, Averaging::Ema { decay: 0.9 }, Averaging::Swa] {
            assert_eq!(a.to_string().parse::<Averaging>(), Ok(a));
        }
        for bad in ["", "ema", "ema:", "ema:1.5", "ema:-0.1", "ema:nan", "temporal:1", "swa:1", "EMA:0.9"] {
            assert!(bad.parse::<Averaging>().is_err(), "{bad:?} was accepted");
        }
        let e = "temporal:1".parse::<Averaging>().unwrap_err().to_string();
        assert_eq!(e, "weight averaging: beta2 must be in [0, 1), got 1");
    }

    #[test]
    fn ema_copies_first_then_lerps_and_truncates_counters() {
        let mut ema = WeightAverage::new(Averaging::Ema { decay: 0.75 });
        update(&mut ema, &[4.0], 1.0);
        update(&mut ema, &[8.0], 2.0);
        let avg = ema.averaged();
        assert_eq!(avg[0].1.data(), &[5.0]);
        // 1 * 0.75 + 2 * 0.25 = 1.25, truncated as torch's int64 copy_ does.
        assert_eq!(avg[1].1.item(), 1.0);
    }

    #[test]
    fn swa_is_the_running_mean_and_temporal_is_bias_corrected() {
        let mut swa = WeightAverage::new(Averaging::Swa);
        for (i, x) in [3.0, 5.0, 10.0].into_iter().enumerate() {
            update(&mut swa, &[x], (i + 1) as f32);
        }
        let avg = swa.averaged();
        assert_eq!((avg[0].1.data(), avg[1].1.item()), (&[6.0][..], 1.0));
        // A constant sequence: the corrected temporal average is the constant from step 1.
        let mut temporal = WeightAverage::new(Averaging::Temporal { beta2: 0.9 });
        for _ in 0..3 {
            update(&mut temporal, &[2.0], 7.0);
            let avg = temporal.averaged();
            assert!((avg[0].1.data()[0] - 2.0).abs() < 1e-6, "{:?}", avg[0].1.data());
            assert_eq!(avg[1].1.item(), 7.0);
        }
    }

    #[test]
    fn state_round_trips_exactly_through_a_file_layout() {
        let mut ema = WeightAverage::new(Averaging::Ema { decay: 0.999 });
        update(&mut ema, &[0.1, 0.2], 1.0);
        update(&mut ema, &[0.3, -0.7], 2.0);
        let (mut tensors, mut meta) = (vec![("model/w".to_string(), Tensor::ones(&[1]))], BTreeMap::new());
        ema.state().write_into("average/", &mut tensors, &mut meta);
        let back = AverageState::read_from("average/", &mut tensors, &meta).unwrap().unwrap();
        assert_eq!(back, ema.state());
        assert_eq!(tensors.len(), 1, "the model's tensor is left for the caller");
        let mut again = WeightAverage::new(Averaging::Ema { decay: 0.999 });
        again.load_state(back.clone()).unwrap();
        update(&mut again, &[1.0, 1.0], 3.0);
        update(&mut ema, &[1.0, 1.0], 3.0);
        assert_eq!(again.averaged(), ema.averaged());
        assert!(WeightAverage::new(Averaging::Swa).load_state(back.clone()).is_err());
        let shapes = [("w", &[2][..], ValueKind::Float), ("n", &[][..], ValueKind::Count)];
        assert!(back.validate(shapes).is_ok());
        let e = back.validate([("w", &[3][..], ValueKind::Float), ("n", &[][..], ValueKind::Count)]);
        assert_eq!(
            e.unwrap_err().to_string(),
            "weight average: it holds 'w' Float [2] where the model has 'w' Float [3]"
        );
        assert_eq!(AverageState::read_from("average/", &mut vec![], &BTreeMap::new()), Ok(None));
    }

    #[test]
    #[should_panic(expected = "tensor 0 is 'v'")]
    fn a_later_update_of_another_model_panics() {
        let mut ema = WeightAverage::new(Averaging::Ema { decay: 0.5 });
        let w = Tensor::ones(&[2]);
        ema.update([("w", &w, ValueKind::Float)]);
        ema.update([("v", &w, ValueKind::Float)]);
    }
}
