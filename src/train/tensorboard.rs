//! [`fit`](super::fit)'s TensorBoard logging (cargo feature `tensorboard`): the logger, and
//! the time and examples of the steps since its last logged one.

use adamant_optim::Optimizer;

use super::TrainError;

/// The TensorBoard logger of a [`fit`] run, with the step times since its last logged step.
pub(super) struct TensorBoardLog {
    pub(super) logger: crate::tensorboard::Logger,
    seconds: f64,
    steps: u32,
    examples: usize,
}

impl TensorBoardLog {
    pub(super) fn create(tb: &crate::tensorboard::TensorBoard) -> Result<TensorBoardLog, TrainError> {
        let logger =
            crate::tensorboard::Logger::create(&tb.dir, tb.options.clone()).map_err(tensorboard_err)?;
        Ok(TensorBoardLog { logger, seconds: 0.0, steps: 0, examples: 0 })
    }

    pub(super) fn resume(
        tb: &crate::tensorboard::TensorBoard,
        step: u64,
    ) -> Result<TensorBoardLog, TrainError> {
        let logger =
            crate::tensorboard::Logger::resume(&tb.dir, step, tb.options.clone()).map_err(tensorboard_err)?;
        Ok(TensorBoardLog { logger, seconds: 0.0, steps: 0, examples: 0 })
    }

    /// Counts the step's time and examples, and logs if the step is a logged one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn after_update(
        &mut self,
        step: u64,
        loss: f32,
        seconds: f64,
        examples: usize,
        params: &[&adamant_autodiff::Param],
        grads: &adamant_autodiff::Gradients,
        optimizer: &dyn Optimizer,
    ) -> Result<(), TrainError> {
        self.seconds += seconds;
        self.steps += 1;
        self.examples += examples;
        if !self.logger.logs(step) {
            return Ok(());
        }
        let scalars = crate::tensorboard::StepScalars {
            loss,
            lr: optimizer.lr(),
            step_ms: 1e3 * self.seconds / self.steps as f64,
            examples_per_second: self.examples as f64 / self.seconds.max(1e-9),
        };
        (self.seconds, self.steps, self.examples) = (0.0, 0, 0);
        self.logger.after_update(step, &scalars, params, grads, optimizer).map_err(tensorboard_err)
    }
}

pub(super) fn tensorboard_err(e: crate::tensorboard::TensorBoardError) -> TrainError {
    TrainError::Io { path: e.path, source: e.source }
}
