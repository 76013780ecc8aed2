//! `Optimizer::moments`: the read-only view of the Adam family's `m` and `v` is the state the
//! optimizer saves, with the scalars that turn it into Adam's update.

use adamant_autodiff::{Gradients, Param};
use adamant_optim::{build, Optimizer, OptimizerOptions, ParamGroup, Selector};
use adamant_tensor::Tensor;

/// Gradients `values` for parameters `w` and `b`.
fn grads(w: &Param, b: &Param, step: usize) -> Gradients {
    let mut g = Gradients::new();
    let s = step as f32;
    g.accumulate(w.id(), Tensor::from_vec(vec![0.5 * s, -1.0, 3.0 - s, 1e-3], &[2, 2]));
    g.accumulate(b.id(), Tensor::from_vec(vec![0.1, -0.2 * s], &[2]));
    g
}

fn run(name: &str, options: OptimizerOptions) -> (Box<dyn Optimizer + Send>, Param, Param) {
    let mut w = Param::new("0.weight", Tensor::from_vec(vec![1.0, -2.0, 3.0, 0.5], &[2, 2]));
    let mut b = Param::new("0.bias", Tensor::from_vec(vec![0.0, 1.0], &[2]));
    let mut opt = build(name, &options).unwrap();
    opt.add_param_group(ParamGroup::new(Selector::NameSuffix("bias".into())).lr_scale(0.5));
    for step in 1..=3 {
        let g = grads(&w, &b, step);
        opt.step(&mut [&mut w, &mut b], &g);
    }
    (opt, w, b)
}

#[test]
fn the_view_is_the_saved_state_with_its_scalars() {
    for (name, second) in [
        ("adam", "exp_avg_sq"),
        ("adamw", "exp_avg_sq"),
        ("nadam", "exp_avg_sq"),
        ("radam", "exp_avg_sq"),
        ("adabelief", "exp_avg_var"),
        ("lamb", "exp_avg_sq"),
    ] {
        let (opt, w, b) = run(name, OptimizerOptions { lr: Some(0.01), ..Default::default() });
        let state = opt.state_dict();
        let view = opt.moments(&[&b, &w]);
        assert_eq!(view.len(), 2, "{name}");
        // In the order asked for, each with its group's rate.
        assert_eq!((view[0].id, view[1].id), (b.id(), w.id()), "{name}");
        assert_eq!((view[0].lr, view[1].lr), (0.005, 0.01), "{name}");
        for (m, p) in view.iter().zip([&b, &w]) {
            let saved = &state.params[p.name()];
            assert_eq!(m.step, 3, "{name}");
            assert_eq!(m.first, saved.buffers["exp_avg"].data(), "{name} {}", p.name());
            assert_eq!(m.second, saved.buffers[second].data(), "{name} {}", p.name());
            let (bc1, bc2) = m.bias_corrections();
            let (b1, b2) = m.betas;
            assert!((bc1 - (1.0 - (b1 as f64).powi(3))).abs() < 1e-12, "{name}");
            assert!((bc2 - (1.0 - (b2 as f64).powi(3))).abs() < 1e-12, "{name}");
            let expected = m.lr as f64 / ((m.second[1] as f64 / bc2).sqrt() + m.eps as f64);
            assert!((m.effective_lr(1) as f64 - expected).abs() <= 1e-6 * expected, "{name}");
        }
    }
}

#[test]
fn amsgrad_shows_the_running_maximum_and_no_bias_correction_shows_ones() {
    let (opt, w, _) = run("adam", OptimizerOptions { lr: Some(0.01), amsgrad: true, ..Default::default() });
    let state = opt.state_dict();
    let view = opt.moments(&[&w]);
    assert_eq!(view[0].second, state.params["0.weight"].buffers["max_exp_avg_sq"].data());
    // The third coordinate's gradient shrinks (2, 1, 0): its maximum stays above its v.
    assert!(view[0].second[2] > state.params["0.weight"].buffers["exp_avg_sq"].data()[2]);

    let plain = OptimizerOptions { lr: Some(0.01), no_bias_correction: true, ..Default::default() };
    let (opt, w, _) = run("adam", plain);
    assert_eq!(opt.moments(&[&w])[0].bias_corrections(), (1.0, 1.0));
}

#[test]
fn optimizers_without_adams_moments_show_none_and_unseen_parameters_are_left_out() {
    for name in ["sgd", "rmsprop", "adagrad", "lion", "adamax"] {
        let (opt, w, b) = run(name, OptimizerOptions { lr: Some(0.01), ..Default::default() });
        assert!(opt.moments(&[&w, &b]).is_empty(), "{name}");
    }
    let (opt, _, _) = run("adam", OptimizerOptions { lr: Some(0.01), ..Default::default() });
    let stranger = Param::new("other", Tensor::zeros(&[3]));
    assert!(opt.moments(&[&stranger]).is_empty());
}

#[test]
fn muon_shows_the_moments_of_its_adamw_part() {
    let (opt, w, b) = run("muon", OptimizerOptions { lr: Some(0.01), ..Default::default() });
    let view = opt.moments(&[&w, &b]);
    // The matrix is Muon's (no Adam moments); the bias is AdamW's.
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].id, b.id());
}
