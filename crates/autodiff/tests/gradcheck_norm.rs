//! The fused normalizations (layer norm, RMS norm, batch norm in training and evaluation)
//! checked against central finite differences, with and without their affine operands.

mod common;

use adamant_autodiff::Tape;
use adamant_tensor::Tensor;
use common::{check, param, weigh};

#[test]
fn layer_norm_over_the_last_two_axes_with_affine() {
    let mut x = param("x", &[2, 3, 4, 5], 1);
    let mut w = param("w", &[4, 5], 2);
    let mut b = param("b", &[4, 5], 3);
    check(&mut [&mut x, &mut w, &mut b], |t, p| {
        let (x, w, b) = (t.param(&*p[0]), t.param(&*p[1]), t.param(&*p[2]));
        weigh(x.layer_norm(&[4, 5], Some(w), Some(b), 1e-5))
    });
}

#[test]
fn layer_norm_without_affine_composes_with_other_ops() {
    let mut x = param("x", &[3, 7], 4);
    check(&mut [&mut x], |t, p| {
        let x = t.param(&*p[0]);
        weigh(x.layer_norm(&[7], None, None, 1e-5).tanh() * x)
    });
}

#[test]
fn rms_norm_with_and_without_weight() {
    let mut x = param("x", &[4, 6], 5);
    let mut w = param("w", &[6], 6);
    check(&mut [&mut x, &mut w], |t, p| {
        let (x, w) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(x.rms_norm(&[6], Some(w), Some(1e-6))) + weigh(x.rms_norm(&[6], None, None))
    });
}

#[test]
fn batch_norm_in_training_uses_batch_statistics() {
    for shape in [[5, 3, 1, 1], [2, 3, 4, 3]] {
        let mut x = param("x", &shape, 7);
        let mut w = param("w", &[3], 8);
        let mut b = param("b", &[3], 9);
        check(&mut [&mut x, &mut w, &mut b], |t, p| {
            let (x, w, b) = (t.param(&*p[0]), t.param(&*p[1]), t.param(&*p[2]));
            // [N, C] (shape[2..] of one), or [N, C, H, W].
            let x = if shape[2] == 1 { x.reshape(&[shape[0], shape[1]]) } else { x };
            weigh(x.batch_norm(Some(w), Some(b), None, true, 0.1, 1e-5))
        });
    }
}

#[test]
fn batch_norm_in_evaluation_treats_running_statistics_as_constants() {
    let mut x = param("x", &[4, 3, 5], 10);
    let mut w = param("w", &[3], 11);
    check(&mut [&mut x, &mut w], |t, p| {
        let (x, w) = (t.param(&*p[0]), t.param(&*p[1]));
        let mut mean = Tensor::from_vec(vec![0.5, -0.2, 0.1], &[3]);
        let mut var = Tensor::from_vec(vec![2.0, 0.5, 1.5], &[3]);
        weigh(x.batch_norm(Some(w), None, Some((&mut mean, &mut var)), false, 0.1, 1e-5))
    });
}

#[test]
fn batch_norm_updates_running_statistics_as_pytorch() {
    let tape = Tape::inference();
    let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 5.0, 0.0, 4.0], &[3, 2]));
    let (mut mean, mut var) = (Tensor::zeros(&[2]), Tensor::ones(&[2]));
    x.batch_norm(None, None, Some((&mut mean, &mut var)), true, 0.1, 1e-5);
    // Channel 0: 1, 3, 0 (mean 4/3, unbiased var 7/3); channel 1: 2, 5, 4 (11/3, 7/3).
    let expect_mean = [0.1 * 4.0 / 3.0, 0.1 * 11.0 / 3.0];
    let expect_var = [0.9 + 0.1 * 7.0 / 3.0, 0.9 + 0.1 * 7.0 / 3.0];
    for c in 0..2 {
        assert!((mean.data()[c] - expect_mean[c]).abs() < 1e-6, "{:?}", mean.data());
        assert!((var.data()[c] - expect_var[c]).abs() < 1e-6, "{:?}", var.data());
    }
}

#[test]
#[should_panic(expected = "layer_norm: input shape [2, 3] does not end with normalized_shape [2]")]
fn a_mismatched_normalized_shape_names_the_op_and_shapes() {
    let tape = Tape::inference();
    tape.constant(Tensor::zeros(&[2, 3])).layer_norm(&[2], None, None, 1e-5);
}

#[test]
#[should_panic(
    expected = "batch_norm: training needs more than one value per channel, got input shape [1, 4]"
)]
fn batch_norm_training_on_one_value_per_channel_panics_as_pytorch_errors() {
    let tape = Tape::inference();
    tape.constant(Tensor::zeros(&[1, 4])).batch_norm(None, None, None, true, 0.1, 1e-5);
}
