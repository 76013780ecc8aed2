//! Evaluation metrics.

use adamant_tensor::{kernels, Tensor};

/// Fraction of rows of `[B, K]` logits whose largest entry is at the row's label.
///
/// # Panics
/// If the logits are not 2-d or the label count differs from the batch size.
pub fn accuracy(logits: &Tensor, labels: &[usize]) -> f32 {
    correct_count(logits, labels) as f32 / labels.len().max(1) as f32
}

/// Number of rows of `[B, K]` logits whose argmax equals the label.
pub fn correct_count(logits: &Tensor, labels: &[usize]) -> usize {
    assert_eq!(logits.ndim(), 2, "accuracy: logits must be [batch, classes], got {:?}", logits.shape());
    assert_eq!(
        logits.shape()[0],
        labels.len(),
        "accuracy: {} labels for logits {:?}",
        labels.len(),
        logits.shape()
    );
    let mut predicted = vec![0usize; labels.len()];
    kernels::argmax_axis(logits.data(), logits.shape(), 1, &mut predicted);
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_whose_argmax_is_the_label() {
        let logits = Tensor::from_vec(vec![0.1, 0.9, 0.0, 2.0, -1.0, 0.5, 0.2, 0.2, 0.1], &[3, 3]);
        assert_eq!(correct_count(&logits, &[1, 0, 0]), 3); // a tie goes to the first maximum
        assert_eq!(correct_count(&logits, &[1, 2, 1]), 1);
        assert!((accuracy(&logits, &[1, 2, 1]) - 1.0 / 3.0).abs() < 1e-7);
    }
}
