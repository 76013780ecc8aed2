//! [`Logger`]: what a training loop writes to TensorBoard, under which tags, how often.

use std::path::Path;

use adamant_autodiff::{Gradients, Param};
use adamant_optim::{Optimizer, ParamMoments};
use rayon::prelude::*;

use super::proto::SummaryValue;
use super::writer::{histogram_value, scalar, EventWriter, TensorBoardError};
use crate::history::EpochMetrics;

/// What a [`Logger`] writes and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct LogOptions {
    /// Log every this many steps (and always step 1); at least 1. Default 10.
    pub every: u64,
    /// Histograms of every parameter and its gradient (`weights/<param>`,
    /// `grads/<param>`) at the logged steps. Default true.
    pub histograms: bool,
    /// The optimizer's internals per parameter under `optim/` at the logged steps, for
    /// optimizers that keep Adam's moments ([`Optimizer::moments`]). Default false.
    pub optimizer_state: bool,
    /// How many fixed coordinates of each parameter get their raw `m`, `v`, `m_hat`, `v_hat`
    /// plotted (the first, middle and last, for 3). Default 3.
    pub traced_coordinates: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { every: 10, histograms: true, optimizer_state: false, traced_coordinates: 3 }
    }
}

/// The scalars of one training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepScalars {
    /// The step's training loss.
    pub loss: f32,
    /// The learning rate the step used.
    pub lr: f32,
    /// Milliseconds per step, averaged over the steps since the last logged one (forward,
    /// backward and update; not the logging).
    pub step_ms: f64,
    /// Training examples per second over the same steps.
    pub examples_per_second: f64,
}

/// Writes a run's TensorBoard events with adamant's tags:
///
/// | tags | when | what |
/// |---|---|---|
/// | `train/loss`, `train/lr`, `train/step_ms`, `train/examples_per_second` | logged steps | [`StepScalars`] |
/// | `weights/<param>`, `grads/<param>` (histograms) | logged steps | [`LogOptions::histograms`] |
/// | `optim/<param>/...`, `optim/bias_correction1`, `optim/bias_correction2` | logged steps | [`LogOptions::optimizer_state`] |
/// | `train/epoch_loss`, `train/epoch_accuracy`, `test/loss`, `test/accuracy`, `test_ema/loss`, `test_ema/accuracy` | each epoch's last step | [`EpochMetrics`] |
///
/// The optimizer's internals, per parameter tensor with `m`, `v` its moments at step `t`,
/// `v_hat = v / (1 - beta2^t)`, `g` its gradient and `dtheta` the update just made:
/// `grad_norm` = ||g||, `m_norm` = ||m||, `update_norm` = ||dtheta||, `update_to_weight` =
/// ||dtheta|| / ||theta before the update||, `sqrt_v_hat_mean` and `sqrt_v_hat_std` over the
/// coordinates, `effective_lr_median` (the median of `lr / (sqrt(v_hat) + eps)`) with the
/// histogram `effective_lr`, and for a few fixed coordinates `i` the raw series
/// `coord_<i>/m`, `coord_<i>/v`, `coord_<i>/m_hat`, `coord_<i>/v_hat`.
///
/// A training loop calls [`Logger::before_update`] just before the optimizer step and
/// [`Logger::after_update`] just after it, every step; only the logged steps cost anything.
/// [`fit`](crate::train::fit) does this when [`FitConfig::tensorboard`](crate::train::FitConfig::tensorboard) is set.
/// Logging reads and copies, never writes, the model and the optimizer: a run's weights are
/// the same bits with and without it.
pub struct Logger {
    writer: EventWriter,
    options: LogOptions,
    /// The parameters' values before the update of a logged step (for `update_norm`).
    before: Vec<Vec<f32>>,
}

impl Logger {
    /// A new run in `dir` ([`EventWriter::create`]).
    pub fn create(dir: &Path, options: LogOptions) -> Result<Logger, TensorBoardError> {
        Ok(Logger { writer: EventWriter::create(dir)?, options: checked(options), before: Vec::new() })
    }

    /// The run in `dir`, continued after a resume from the checkpoint of `step`
    /// ([`EventWriter::resume`]).
    pub fn resume(dir: &Path, step: u64, options: LogOptions) -> Result<Logger, TensorBoardError> {
        Ok(Logger { writer: EventWriter::resume(dir, step)?, options: checked(options), before: Vec::new() })
    }

    /// What this logger writes.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// The event file, for tags of your own.
    pub fn writer(&mut self) -> &mut EventWriter {
        &mut self.writer
    }

    /// Whether `step` is logged: step 1 and every [`LogOptions::every`]-th.
    pub fn logs(&self, step: u64) -> bool {
        step == 1 || step.is_multiple_of(self.options.every)
    }

    /// Call just before the optimizer updates `params` at `step`: on a logged step with
    /// [`LogOptions::optimizer_state`], keeps a copy of the values to measure the update by.
    pub fn before_update(&mut self, step: u64, params: &[&Param]) {
        if !(self.options.optimizer_state && self.logs(step)) {
            return;
        }
        self.before.resize_with(params.len(), Vec::new);
        for (copy, p) in self.before.iter_mut().zip(params) {
            copy.clear();
            copy.extend_from_slice(p.value().data());
        }
    }

    /// Call just after the optimizer updated `params` from `grads` at `step`: on a logged step,
    /// writes the step's scalars, the histograms and the optimizer's internals, and flushes.
    pub fn after_update(
        &mut self,
        step: u64,
        scalars: &StepScalars,
        params: &[&Param],
        grads: &Gradients,
        optimizer: &dyn Optimizer,
    ) -> Result<(), TensorBoardError> {
        if !self.logs(step) {
            return Ok(());
        }
        let mut values = vec![
            scalar("train/loss", scalars.loss),
            scalar("train/lr", scalars.lr),
            scalar("train/step_ms", scalars.step_ms as f32),
            scalar("train/examples_per_second", scalars.examples_per_second as f32),
        ];
        if self.options.histograms {
            let histograms: Vec<Vec<SummaryValue>> = params
                .par_iter()
                .map(|p| {
                    let weights = histogram_value(&format!("weights/{}", p.name()), p.value().data());
                    let grad =
                        grads.get(p).and_then(|g| histogram_value(&format!("grads/{}", p.name()), g.data()));
                    weights.into_iter().chain(grad).collect()
                })
                .collect();
            values.extend(histograms.into_iter().flatten());
        }
        if self.options.optimizer_state {
            values.extend(self.optimizer_values(params, grads, optimizer));
        }
        self.writer.write_values(step, values)?;
        self.writer.flush()
    }

    /// The `optim/` values of a logged step (empty for optimizers without Adam's moments).
    fn optimizer_values(
        &self,
        params: &[&Param],
        grads: &Gradients,
        optimizer: &dyn Optimizer,
    ) -> Vec<SummaryValue> {
        let moments = optimizer.moments(params);
        let Some(first) = moments.first() else { return Vec::new() };
        let (bc1, bc2) = first.bias_corrections();
        let mut values =
            vec![scalar("optim/bias_correction1", bc1 as f32), scalar("optim/bias_correction2", bc2 as f32)];
        let traced = self.options.traced_coordinates;
        let per_param: Vec<Vec<SummaryValue>> = moments
            .par_iter()
            .filter_map(|m| {
                let index = params.iter().position(|p| p.id() == m.id)?;
                let p = params[index];
                let before = self.before.get(index).filter(|b| b.len() == m.first.len());
                let grad = grads.get(p).map(|g| g.data());
                Some(param_values(p.name(), m, p.value().data(), before.map(Vec::as_slice), grad, traced))
            })
            .collect();
        values.extend(per_param.into_iter().flatten());
        values
    }

    /// Writes an epoch's metrics at its last step.
    pub fn log_epoch(&mut self, metrics: &EpochMetrics) -> Result<(), TensorBoardError> {
        let mut values = vec![scalar("train/epoch_loss", metrics.train_loss as f32)];
        let optional = [
            ("train/epoch_accuracy", metrics.train_accuracy),
            ("test/loss", Some(metrics.test_loss)),
            ("test/accuracy", metrics.test_accuracy),
            ("test_ema/loss", metrics.averaged_test_loss),
            ("test_ema/accuracy", metrics.averaged_test_accuracy),
        ];
        values.extend(optional.into_iter().filter_map(|(tag, v)| Some(scalar(tag, v? as f32))));
        self.writer.write_values(metrics.step, values)?;
        self.writer.flush()
    }

    /// Hands everything written so far to the operating system.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.writer.flush()
    }
}

fn checked(options: LogOptions) -> LogOptions {
    LogOptions { every: options.every.max(1), ..options }
}

/// The fixed coordinates traced of a tensor of `n` values: `count` of them spread evenly from
/// the first to the last.
pub fn traced_coordinates(n: usize, count: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = match (n, count) {
        (0, _) | (_, 0) => Vec::new(),
        (_, 1) => vec![0],
        _ => (0..count).map(|k| k * (n - 1) / (count - 1)).collect(),
    };
    picked.dedup();
    picked
}

/// The `optim/<name>/` values of one parameter.
fn param_values(
    name: &str,
    m: &ParamMoments<'_>,
    theta: &[f32],
    before: Option<&[f32]>,
    grad: Option<&[f32]>,
    traced: usize,
) -> Vec<SummaryValue> {
    let tag = |what: &str| format!("optim/{name}/{what}");
    let (bc1, bc2) = m.bias_corrections();
    let mut values = vec![scalar(&tag("m_norm"), sum_squares(m.first).sqrt() as f32)];
    if let Some(g) = grad {
        values.push(scalar(&tag("grad_norm"), sum_squares(g).sqrt() as f32));
    }
    if let Some(before) = before {
        let update = distance_squared(theta, before).sqrt();
        values.push(scalar(&tag("update_norm"), update as f32));
        let weight = sum_squares(before).sqrt();
        if weight > 0.0 {
            values.push(scalar(&tag("update_to_weight"), (update / weight) as f32));
        }
    }
    // sqrt(v_hat) and the effective step size lr / (sqrt(v_hat) + eps), per coordinate, in
    // f32 as the update computes them; their sums in f64.
    let n = m.second.len();
    let (scale, lr, eps) = ((1.0 / bc2) as f32, m.lr, m.eps);
    let mut effective = vec![0f32; n];
    let (mut roots, mut squares) = ([0f64; 8], [0f64; 8]);
    let mut pieces = effective.chunks_exact_mut(8).zip(m.second.chunks_exact(8));
    for (out, v) in &mut pieces {
        for j in 0..8 {
            let v_hat = v[j] * scale;
            let root = v_hat.sqrt();
            roots[j] += root as f64;
            squares[j] += v_hat as f64;
            out[j] = lr / (root + eps);
        }
    }
    let done = n - n % 8;
    for (j, (out, &v)) in effective[done..].iter_mut().zip(&m.second[done..]).enumerate() {
        let v_hat = v * scale;
        roots[j] += v_hat.sqrt() as f64;
        squares[j] += v_hat as f64;
        *out = lr / (v_hat.sqrt() + eps);
    }
    if n > 0 {
        let mean = roots.iter().sum::<f64>() / n as f64;
        let variance = (squares.iter().sum::<f64>() / n as f64 - mean * mean).max(0.0);
        values.push(scalar(&tag("sqrt_v_hat_mean"), mean as f32));
        values.push(scalar(&tag("sqrt_v_hat_std"), variance.sqrt() as f32));
        values.extend(histogram_value(&tag("effective_lr"), &effective));
        values.push(scalar(&tag("effective_lr_median"), median(&effective)));
    }
    for i in traced_coordinates(n, traced) {
        let (mi, vi) = (m.first[i], m.second[i]);
        values.push(scalar(&tag(&format!("coord_{i}/m")), mi));
        values.push(scalar(&tag(&format!("coord_{i}/v")), vi));
        values.push(scalar(&tag(&format!("coord_{i}/m_hat")), (mi as f64 / bc1) as f32));
        values.push(scalar(&tag(&format!("coord_{i}/v_hat")), (vi as f64 / bc2) as f32));
    }
    values
}

/// `sum(x^2)` in f64, in eight lanes summed at the end: the compiler keeps them in vector
/// registers where one running sum would wait on each addition.
fn sum_squares(x: &[f32]) -> f64 {
    let mut sums = [0f64; 8];
    let mut pieces = x.chunks_exact(8);
    for piece in &mut pieces {
        for j in 0..8 {
            sums[j] += piece[j] as f64 * piece[j] as f64;
        }
    }
    sums.iter().sum::<f64>() + pieces.remainder().iter().map(|&v| v as f64 * v as f64).sum::<f64>()
}

/// `sum((a - b)^2)` in f64, in lanes as [`sum_squares`].
fn distance_squared(a: &[f32], b: &[f32]) -> f64 {
    let mut sums = [0f64; 8];
    let (mut pa, mut pb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut pa).zip(&mut pb) {
        for j in 0..8 {
            let d = x[j] as f64 - y[j] as f64;
            sums[j] += d * d;
        }
    }
    let tail: f64 =
        pa.remainder().iter().zip(pb.remainder()).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    sums.iter().sum::<f64>() + tail
}

/// The median of non-negative values (the mean of the middle two for an even count), as
/// numpy's `median`. Non-negative floats order as their bits do, so the middle ones are found
/// by their top 16 bits first (one counting pass), then among the few values that share them:
/// two passes over the data instead of a selection that moves every value.
fn median(values: &[f32]) -> f32 {
    let n = values.len();
    let (lower, upper) = middle_pair(values, n.saturating_sub(1) / 2, n / 2);
    if n % 2 == 1 {
        upper
    } else {
        ((lower as f64 + upper as f64) / 2.0) as f32
    }
}

/// The `low`-th and `high`-th smallest (from 0, `low <= high`) of non-negative values.
fn middle_pair(values: &[f32], low: usize, high: usize) -> (f32, f32) {
    let mut counts = vec![0u32; 1 << 16];
    for v in values {
        counts[(v.to_bits() >> 16) as usize] += 1;
    }
    // The cell holding rank `rank`, and how many values lie in the cells below it.
    let cell_of = |rank: usize| {
        let (mut cell, mut below) = (0, 0usize);
        while below + counts[cell] as usize <= rank {
            below += counts[cell] as usize;
            cell += 1;
        }
        (cell as u32, below)
    };
    let ((low_cell, low_below), (high_cell, high_below)) = (cell_of(low), cell_of(high));
    // The values of both cells, in one pass, in order of cell (low_cell <= high_cell).
    let mut picked: Vec<u32> =
        values.iter().map(|v| v.to_bits()).filter(|b| b >> 16 == low_cell || b >> 16 == high_cell).collect();
    let in_low = picked.iter().filter(|b| *b >> 16 == low_cell).count();
    let (_, &mut a, _) = picked.select_nth_unstable(low - low_below);
    let high_index = if high_cell == low_cell { high - low_below } else { in_low + high - high_below };
    let (_, &mut b, _) = picked.select_nth_unstable(high_index);
    (f32::from_bits(a), f32::from_bits(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_numpys() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0]), 5.0);
        assert_eq!(median(&[0.0, 1e-8, 1e-3, 0.5, 7.0, 2.0]), ((1e-3f32 as f64 + 0.5) / 2.0) as f32);
        // Against a sort, on values sharing their top bits and not, odd and even counts.
        let mut state = 12345u64;
        for n in [1, 2, 7, 100, 1001, 4096] {
            let values: Vec<f32> = (0..n)
                .map(|i| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let r = (state >> 40) as f32 / (1u64 << 24) as f32;
                    if i % 3 == 0 {
                        1.0 + r * 1e-3
                    } else {
                        r * 1e4
                    }
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            let expected = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                ((sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0) as f32
            };
            assert_eq!(median(&values), expected, "n = {n}");
        }
    }

    #[test]
    fn traced_coordinates_are_spread_and_distinct() {
        assert_eq!(traced_coordinates(10, 3), vec![0, 4, 9]);
        assert_eq!(traced_coordinates(2, 3), vec![0, 1]);
        assert_eq!(traced_coordinates(1, 3), vec![0]);
        assert_eq!(traced_coordinates(5, 1), vec![0]);
        assert!(traced_coordinates(0, 3).is_empty());
        assert!(traced_coordinates(5, 0).is_empty());
    }
}
