//! A read-only view of the moment estimates of the Adam family, for watching an optimizer
//! train ([`Optimizer::moments`](crate::Optimizer::moments)): TensorBoard's per-layer plots of
//! `m`, `v`, their bias corrections and the per-coordinate step sizes come from here. Reading
//! it changes nothing: the view borrows the optimizer immutably.

use adamant_autodiff::ParamId;

/// The moment estimates of one parameter tensor after its last step, as an Adam-style
/// optimizer holds them, with the scalars needed to turn them into Adam's quantities:
///
/// ```text
/// m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)     (m, v without bias correction)
/// effective step size of a coordinate = lr / (sqrt(v_hat) + eps)
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ParamMoments<'a> {
    /// The parameter the state belongs to.
    pub id: ParamId,
    /// Steps this parameter has taken (`t`).
    pub step: u64,
    /// The learning rate that applied to it at its last step (its group's).
    pub lr: f32,
    /// `(beta1, beta2)`.
    pub betas: (f32, f32),
    /// The epsilon of the denominator.
    pub eps: f32,
    /// Whether the optimizer divides by `1 - beta^t` (Adam's bias correction).
    pub bias_correction: bool,
    /// The first moment `m_t`, one value per coordinate.
    pub first: &'a [f32],
    /// The second moment whose root divides the step: Adam's `v_t`, AMSGrad's running maximum
    /// of it, AdaBelief's `s_t` (the variance of the gradient around `m_t`).
    pub second: &'a [f32],
}

impl ParamMoments<'_> {
    /// `(1 - beta1^t, 1 - beta2^t)` at this parameter's step, or `(1, 1)` without bias
    /// correction: what `m` and `v` are divided by.
    pub fn bias_corrections(&self) -> (f64, f64) {
        if !self.bias_correction {
            return (1.0, 1.0);
        }
        let t = self.step as f64;
        let (b1, b2) = self.betas;
        (1.0 - (b1 as f64).powf(t), 1.0 - (b2 as f64).powf(t))
    }

    /// The effective step size of coordinate `i`, `lr / (sqrt(v_hat_i) + eps)`: how far Adam
    /// moves it per unit of `m_hat`.
    pub fn effective_lr(&self, i: usize) -> f32 {
        let (_, bc2) = self.bias_corrections();
        (self.lr as f64 / ((self.second[i] as f64 / bc2).sqrt() + self.eps as f64)) as f32
    }
}
