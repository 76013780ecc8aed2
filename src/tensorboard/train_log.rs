//! [`TrainLog`]: a [`Logger`] with the bookkeeping a training loop needs around it, the step
//! time and examples averaged over the steps since the last logged one and the time the
//! logging itself takes. [`fit`](crate::train::fit) uses it, and so can a loop of your own
//! (adamant's `char_gpt` and `makemore` do).

use std::time::Instant;

use adamant_autodiff::{Gradients, Param};
use adamant_optim::Optimizer;

use super::writer::scalar;
use super::{Logger, StepScalars, TensorBoard, TensorBoardError};
use crate::history::EpochMetrics;

/// A run's TensorBoard logger, with the time and examples of the steps since its last logged
/// step (so `train/step_ms` and `train/examples_per_second` are means over those steps,
/// measured without the logging).
pub struct TrainLog {
    logger: Logger,
    seconds: f64,
    steps: u32,
    examples: usize,
    /// Wall time spent in the hooks and writes so far.
    logging: f64,
    /// The time of this step's [`TrainLog::before_update`], inside the step time the loop
    /// measures, taken out of it.
    before: f64,
}

impl TrainLog {
    /// The event file of the run `tb` describes: a new one, or, when the run was resumed from
    /// the checkpoint of step `resumed_at`, the run's file continued from that step (the
    /// records of later steps are cut, since the run is about to log them again).
    pub fn open(tb: &TensorBoard, resumed_at: Option<u64>) -> Result<TrainLog, TensorBoardError> {
        let logger = match resumed_at {
            Some(step) => Logger::resume(&tb.dir, step, tb.options.clone()),
            None => Logger::create(&tb.dir, tb.options.clone()),
        }?;
        Ok(TrainLog { logger, seconds: 0.0, steps: 0, examples: 0, logging: 0.0, before: 0.0 })
    }

    /// Call just before the optimizer updates `params` at `step`
    /// ([`Logger::before_update`]).
    pub fn before_update(&mut self, step: u64, params: &[&Param]) {
        let started = Instant::now();
        self.logger.before_update(step, params);
        self.before = started.elapsed().as_secs_f64();
        self.logging += self.before;
    }

    /// Call just after the optimizer updated `params` from `grads` (clipped, as it used them)
    /// at `step`, with the step's mean `loss`, its wall time `seconds` (forward, backward and
    /// update; the time of `before_update` in it is taken out) and the `examples` it trained
    /// on; logs on the logged steps
    /// ([`Logger::after_update`]), with the optimizer's current rate as `train/lr`.
    #[allow(clippy::too_many_arguments)]
    pub fn after_update(
        &mut self,
        step: u64,
        loss: f32,
        seconds: f64,
        examples: usize,
        params: &[&Param],
        grads: &Gradients,
        optimizer: &dyn Optimizer,
    ) -> Result<(), TensorBoardError> {
        self.seconds += seconds - std::mem::take(&mut self.before);
        self.steps += 1;
        self.examples += examples;
        if !self.logger.logs(step) {
            return Ok(());
        }
        let started = Instant::now();
        let scalars = StepScalars {
            loss,
            lr: optimizer.lr(),
            step_ms: 1e3 * self.seconds / self.steps as f64,
            examples_per_second: self.examples as f64 / self.seconds.max(1e-9),
        };
        (self.seconds, self.steps, self.examples) = (0.0, 0, 0);
        let logged = self.logger.after_update(step, &scalars, params, grads, optimizer);
        self.logging += started.elapsed().as_secs_f64();
        logged
    }

    /// Writes `values` (tag, value) as scalars at `step`, in one event, and flushes: the
    /// evaluations' results.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), TensorBoardError> {
        let started = Instant::now();
        let values = values.iter().map(|&(tag, value)| scalar(tag, value as f32)).collect();
        let written = self.logger.writer().write_values(step, values).and_then(|()| self.logger.flush());
        self.logging += started.elapsed().as_secs_f64();
        written
    }

    /// Writes an epoch's metrics at its last step ([`Logger::log_epoch`]).
    pub fn log_epoch(&mut self, metrics: &EpochMetrics) -> Result<(), TensorBoardError> {
        let started = Instant::now();
        let written = self.logger.log_epoch(metrics);
        self.logging += started.elapsed().as_secs_f64();
        written
    }

    /// The logger, for tags of your own.
    pub fn logger(&mut self) -> &mut Logger {
        &mut self.logger
    }

    /// The wall time spent logging so far, in seconds: the loops subtract it from the
    /// training time they report, so `--tensorboard` leaves `step_ms` and the logs' seconds
    /// what they are without it.
    pub fn seconds_logging(&self) -> f64 {
        self.logging
    }
}
