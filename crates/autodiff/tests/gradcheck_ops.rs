//! Every differentiable op checked against central finite differences, on random inputs of
//! odd sizes. Each test builds a scalar from the op (a weighted sum with fixed random
//! weights, so that every output element matters with a different weight) and gradchecks it.

mod common;

use adamant_autodiff::{gradcheck, GradcheckOptions, Mode, Param, Reduction, Tape};
use adamant_tensor::{rng::seeded, Tensor};
use common::{check, param, param_in, weigh};

#[test]
fn add_sub_mul_div_same_shape() {
    let mut a = param("a", &[3, 5], 1);
    let mut b = param_in("b", &[3, 5], 0.5, 2.0, 2);
    check(&mut [&mut a, &mut b], |t, p| {
        let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh((a + b) * (a - b) / b)
    });
}

#[test]
fn residual_sums_share_their_gradient_without_mixing_it_up() {
    // A same-shape sum hands both inputs one gradient buffer. Here the second input's backward
    // accumulates into the first's gradient while the buffer is still shared (it must copy
    // before writing), a reshape passes a shared buffer on, and a parameter receives one
    // directly; a sum with itself doubles it.
    let mut x = param("x", &[3, 4], 30);
    let mut w = param("w", &[3, 4], 31);
    check(&mut [&mut x, &mut w], |t, p| {
        let (x, w) = (t.param(&*p[0]), t.param(&*p[1]));
        let a = x * 2.0;
        let r = a + a.tanh();
        let s = r.reshape(&[4, 3]) + r.reshape(&[4, 3]).square();
        weigh(s.reshape(&[3, 4]) + w + (a + a))
    });
}

#[test]
fn broadcasting_add_of_a_bias() {
    let mut x = param("x", &[3, 7], 3);
    let mut bias = param("bias", &[7], 4);
    check(&mut [&mut x, &mut bias], |t, p| weigh(t.param(&*p[0]) + t.param(&*p[1])));
}

#[test]
fn broadcasting_mul_and_div_across_axes() {
    let mut a = param("a", &[4, 1, 5], 5);
    let mut b = param_in("b", &[3, 1], 0.5, 1.5, 6);
    check(&mut [&mut a, &mut b], |t, p| {
        let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(a * b) + weigh(a / b) + weigh(b - a)
    });
}

#[test]
fn scalar_operands_and_negation() {
    let mut a = param_in("a", &[2, 3], 0.5, 2.0, 7);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        weigh(-(a * 3.0 + 1.0) / 2.0 - 0.5 + (2.0 - a) * 1.5 + 2.0 / a)
    });
}

#[test]
fn a_var_used_twice_accumulates() {
    let mut a = param("a", &[5], 8);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        // x*x and a diamond: b and c both read a, d reads both.
        let b = a * a;
        let c = a.tanh();
        weigh(b * c + a)
    });
}

#[test]
fn shared_weights_accumulate() {
    let mut w = param("w", &[4, 4], 9);
    let x = Tensor::randn(&[3, 4], 0.0, 1.0, &mut seeded(10));
    check(&mut [&mut w], move |t, p| {
        let w = t.param(&*p[0]);
        let h = t.constant(x.clone()).matmul(w).tanh();
        weigh(h.matmul(w))
    });
}

#[test]
fn unary_functions() {
    let mut a = param("a", &[3, 4], 11);
    let mut pos = param_in("pos", &[3, 4], 0.3, 3.0, 12);
    check(&mut [&mut a, &mut pos], |t, p| {
        let (a, pos) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(a.exp())
            + weigh(pos.log())
            + weigh(pos.sqrt())
            + weigh(a.square())
            + weigh(a.sigmoid())
            + weigh(a.tanh())
            + weigh(a.softplus())
            + weigh(pos.powf(1.7))
            + weigh(pos.powf(-0.5))
    });
}

#[test]
fn relu_away_from_its_kink() {
    // Values at least 0.1 from 0, so +-eps never crosses the kink.
    let v: Vec<f32> =
        (0..15).map(|i| if i % 2 == 0 { 0.1 + i as f32 * 0.1 } else { -0.1 - i as f32 * 0.1 }).collect();
    let mut a = Param::new("a", Tensor::from_vec(v, &[3, 5]));
    check(&mut [&mut a], |t, p| weigh(t.param(&*p[0]).relu()));
}

#[test]
fn matmul_all_transposes() {
    let mut a = param("a", &[3, 5], 13);
    let mut at = param("at", &[5, 3], 14);
    let mut b = param("b", &[5, 2], 15);
    let mut bt = param("bt", &[2, 5], 16);
    check(&mut [&mut a, &mut at, &mut b, &mut bt], |t, p| {
        let (a, at, b, bt) = (t.param(&*p[0]), t.param(&*p[1]), t.param(&*p[2]), t.param(&*p[3]));
        weigh(a.matmul(b))
            + weigh(at.matmul_t(b, true, false))
            + weigh(a.matmul_nt(bt))
            + weigh(at.matmul_t(bt, true, true))
    });
}

#[test]
fn sums_and_means_all_and_per_axis() {
    let mut a = param("a", &[2, 3, 4], 17);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        weigh(a.sum_axis(0)) + weigh(a.sum_axis(1)) + weigh(a.mean_axis(2)) + a.mean() * 3.0 + a.sum() * 0.5
    });
}

#[test]
fn reshape_and_flatten() {
    let mut a = param("a", &[2, 3, 2, 2], 18);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        weigh(a.flatten().tanh()) + weigh(a.reshape(&[4, 6]).sigmoid())
    });
}

#[test]
fn conv2d_with_stride_padding_and_bias() {
    let mut x = param("x", &[3, 2, 7, 6], 19);
    let mut w = param("w", &[4, 2, 3, 3], 20);
    let mut b = param("b", &[4], 21);
    check(&mut [&mut x, &mut w, &mut b], |t, p| {
        let y = t.param(&*p[0]).conv2d(t.param(&*p[1]), Some(t.param(&*p[2])), 2, 1);
        assert_eq!(y.shape(), vec![3, 4, 4, 3]);
        weigh(y)
    });
}

#[test]
fn conv2d_5x5_pad2_without_bias_batch_1() {
    let mut x = param("x", &[1, 3, 6, 5], 22);
    let mut w = param("w", &[2, 3, 5, 5], 23);
    check(&mut [&mut x, &mut w], |t, p| weigh(t.param(&*p[0]).conv2d(t.param(&*p[1]), None, 1, 2)));
}

#[test]
fn max_pool2d_overlapping_windows() {
    // Distinct values far apart, so no window has a near-tie that +-eps could flip.
    let n = 3 * 2 * 7 * 5;
    let perm = Tensor::permutation(n, &mut seeded(24));
    let v: Vec<f32> = perm.iter().map(|&i| i as f32 * 0.05).collect();
    let mut x = Param::new("x", Tensor::from_vec(v, &[3, 2, 7, 5]));
    check(&mut [&mut x], |t, p| {
        let y = t.param(&*p[0]).max_pool2d(3, 2, 1);
        assert_eq!(y.shape(), vec![3, 2, 4, 3]);
        weigh(y)
    });
}

#[test]
fn dropout_in_train_mode_uses_one_mask_per_seed() {
    let mut a = param("a", &[4, 9], 25);
    check(&mut [&mut a], |t, p| weigh(t.param(&*p[0]).dropout(0.4)));
}

#[test]
fn dropout_gradient_adds_to_other_uses_of_its_input() {
    // The first backward into `a` overwrites its fresh gradient buffer, the later ones add:
    // both paths of the dropout backward, 16-lane blocks and a scalar tail (37 elements).
    let mut a = param("a", &[37], 125);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        weigh(a.dropout(0.4) + a.dropout(0.3) * a)
    });
}

#[test]
fn log_softmax_rows() {
    let mut a = param("a", &[3, 7], 26);
    check(&mut [&mut a], |t, p| weigh(t.param(&*p[0]).log_softmax(-1)));
}

#[test]
fn cross_entropy_with_integer_labels() {
    let mut a = param("a", &[3, 10], 27);
    check(&mut [&mut a], |t, p| t.param(&*p[0]).cross_entropy(&[2, 9, 0]));
}

#[test]
fn bce_with_logits_sum_and_mean() {
    let mut a = param("a", &[3, 5], 28);
    let targets = Tensor::rand_uniform(&[3, 5], 0.0, 1.0, &mut seeded(29));
    check(&mut [&mut a], move |t, p| {
        let a = t.param(&*p[0]);
        a.bce_with_logits(&targets, Reduction::Sum) + a.bce_with_logits(&targets, Reduction::Mean)
    });
}

#[test]
fn mean_squared_error() {
    let mut a = param("a", &[2, 5], 30);
    let target = Tensor::randn(&[2, 5], 0.0, 1.0, &mut seeded(31));
    check(&mut [&mut a], move |t, p| {
        let a = t.param(&*p[0]);
        a.mse(&target, Reduction::Mean) + a.mse(&target, Reduction::Sum) * 0.1
    });
}

#[test]
fn gaussian_kl_and_reparameterisation() {
    let mut mu = param("mu", &[3, 4], 32);
    let mut logvar = param("logvar", &[3, 4], 33);
    check(&mut [&mut mu, &mut logvar], |t, p| {
        let (mu, lv) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(mu.reparameterize(lv)) + mu.gaussian_kl(lv, Reduction::Sum)
    });
}

#[test]
fn a_small_mlp_end_to_end() {
    let mut w1 = param("w1", &[6, 5], 34);
    let mut b1 = param("b1", &[6], 35);
    let mut w2 = param("w2", &[3, 6], 36);
    let x = Tensor::randn(&[4, 5], 0.0, 1.0, &mut seeded(37));
    check(&mut [&mut w1, &mut b1, &mut w2], move |t, p| {
        let h = t.constant(x.clone()).matmul_nt(t.param(&*p[0])) + t.param(&*p[1]);
        let h = h.softplus().dropout(0.25);
        h.matmul_nt(t.param(&*p[2])).cross_entropy(&[0, 2, 1, 1])
    });
}

#[test]
fn eval_mode_dropout_is_identity() {
    let x = Tensor::randn(&[3, 4], 0.0, 1.0, &mut seeded(38));
    let tape = Tape::new(Mode::Eval, 1);
    let v = tape.constant(x.clone());
    assert_eq!(v.dropout(0.5).value(), x);
}

#[test]
fn gradcheck_reports_the_worst_element() {
    let mut a = param("weights", &[4], 39);
    let report = gradcheck(&mut [&mut a], |t, p| weigh(t.param(&*p[0]).exp()), GradcheckOptions::default());
    assert!(report.passed);
    assert_eq!(report.checked, 4);
    let worst = report.worst.unwrap();
    assert_eq!(worst.param, "weights");
    assert!(worst.index < 4);
    assert!((worst.analytic - worst.numeric).abs() < 1e-2);
}
