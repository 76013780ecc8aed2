//! Parameter groups, learning-rate access, and the handling of parameters without gradient.

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::{build, Optimizer, OptimizerOptions, ParamGroup, Selector, Sgd, SgdConfig};
use adamant_tensor::Tensor;

/// Gradients of `sum(w) + sum(b)`: all ones.
fn unit_grads(w: &Param, b: &Param) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    (tape.param(w).sum() + tape.param(b).sum()).backward()
}

#[test]
fn biases_can_be_exempted_from_weight_decay() {
    let mut w = Param::new("0.weight", Tensor::full(&[2, 2], 1.0));
    let mut b = Param::new("0.bias", Tensor::full(&[2], 1.0));
    let mut sgd = Sgd::new(SgdConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() });
    sgd.add_param_group(ParamGroup::no_decay_for_biases());
    let grads = unit_grads(&w, &b);
    sgd.step(&mut [&mut w, &mut b], &grads);
    // weight: 1 - 0.1 (1 + 0.5 * 1) = 0.85; bias: 1 - 0.1 * 1 = 0.9.
    assert!(w.value().data().iter().all(|&x| (x - 0.85).abs() < 1e-7), "{:?}", w.value());
    assert!(b.value().data().iter().all(|&x| (x - 0.9).abs() < 1e-7), "{:?}", b.value());
}

#[test]
fn groups_scale_the_learning_rate_and_follow_set_lr() {
    let mut w = Param::new("head.weight", Tensor::zeros(&[3]));
    let mut b = Param::new("body.weight", Tensor::zeros(&[3]));
    let mut sgd = build("sgd", &OptimizerOptions { lr: Some(0.1), ..Default::default() }).unwrap();
    sgd.add_param_group(ParamGroup::new(Selector::NamePrefix("head.".into())).lr_scale(10.0));
    let grads = unit_grads(&w, &b);
    sgd.step(&mut [&mut w, &mut b], &grads);
    assert!((w.value().data()[0] + 1.0).abs() < 1e-6);
    assert!((b.value().data()[0] + 0.1).abs() < 1e-6);
    sgd.set_lr(0.01);
    assert_eq!(sgd.lr(), 0.01);
    sgd.step(&mut [&mut w, &mut b], &grads);
    assert!((w.value().data()[0] + 1.1).abs() < 1e-6);
    assert!((b.value().data()[0] + 0.11).abs() < 1e-6);
}

#[test]
fn parameters_without_gradient_are_left_alone_and_take_no_step() {
    let mut used = Param::new("used", Tensor::zeros(&[2]));
    let mut unused = Param::new("unused", Tensor::ones(&[2]));
    let mut adam = build("adam", &OptimizerOptions::default()).unwrap();
    let tape = Tape::new(Mode::Train, 0);
    let grads = tape.param(&used).sum().backward();
    drop(tape);
    adam.step(&mut [&mut used, &mut unused], &grads);
    assert_eq!(unused.value().data(), &[1.0, 1.0]);
    let state = adam.state_dict();
    assert_eq!(state.params.len(), 1);
    assert_eq!(state.params["used"].step, 1);
}

#[test]
fn every_name_builds_and_reports_its_name() {
    for name in adamant_optim::OPTIMIZER_NAMES {
        let opt = build(name, &OptimizerOptions::default()).unwrap();
        assert_eq!(opt.name(), name);
    }
}

#[test]
fn build_rejects_bad_options_with_one_line_errors() {
    let cases: Vec<(&str, OptimizerOptions, &str)> = vec![
        ("sgdd", OptimizerOptions::default(), "unknown optimizer 'sgdd'"),
        ("adam", OptimizerOptions { lr: Some(-1.0), ..Default::default() }, "lr must be >= 0, got -1"),
        ("adam", OptimizerOptions { lr: Some(f32::NAN), ..Default::default() }, "lr must be >= 0, got NaN"),
        (
            "adam",
            OptimizerOptions { betas: Some((0.9, 1.0)), ..Default::default() },
            "betas must be in [0, 1), got 1",
        ),
        ("sgd", OptimizerOptions { amsgrad: true, ..Default::default() }, "amsgrad is not an option of sgd"),
        ("sgd", OptimizerOptions { nesterov: true, ..Default::default() }, "nesterov needs momentum > 0"),
        (
            "rmsprop",
            OptimizerOptions { alpha: Some(1.5), ..Default::default() },
            "alpha must be in [0, 1], got 1.5",
        ),
        (
            "adamw",
            OptimizerOptions { no_bias_correction: true, ..Default::default() },
            "no_bias_correction is not an option of adamw",
        ),
        // lion-pytorch and torch-optimizer's Lamb refuse a zero learning rate.
        ("lion", OptimizerOptions { lr: Some(0.0), ..Default::default() }, "lr must be > 0 for lion, got 0"),
        ("lamb", OptimizerOptions { lr: Some(0.0), ..Default::default() }, "lr must be > 0 for lamb, got 0"),
        ("lion", OptimizerOptions { eps: Some(1e-8), ..Default::default() }, "eps is not an option of lion"),
        (
            "adabelief",
            OptimizerOptions { betas: Some((0.9, 1.0)), ..Default::default() },
            "betas must be in [0, 1), got 1",
        ),
        (
            "adam",
            OptimizerOptions { no_decoupled_weight_decay: true, ..Default::default() },
            "no_decoupled_weight_decay is not an option of adam",
        ),
    ];
    for (name, opts, want) in cases {
        let msg =
            build(name, &opts).err().unwrap_or_else(|| panic!("{name} {opts:?} was accepted")).to_string();
        assert!(msg.starts_with(want), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
