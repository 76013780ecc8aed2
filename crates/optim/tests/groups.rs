//! Parameter groups, learning-rate access, and the handling of parameters without gradient.

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::{
    build, AdamW, AdamWConfig, Muon, MuonConfig, Optimizer, OptimizerOptions, ParamGroup, Selector, Sgd,
    SgdConfig,
};
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

/// Muon's Nesterov momentum is on by default; `--nesterov` says so, `--no-nesterov` turns it
/// off (torch's `nesterov=False`).
#[test]
fn muon_takes_nesterov_on_by_default_and_said_explicitly() {
    let settings = |o: OptimizerOptions| adamant_optim::options::build_with_settings("muon", &o).unwrap().1;
    let nesterov = |s: &[(&str, String)]| s.iter().find(|(n, _)| *n == "no_nesterov").unwrap().1.clone();
    assert_eq!(nesterov(&settings(OptimizerOptions::default())), "off");
    assert_eq!(nesterov(&settings(OptimizerOptions { nesterov: true, ..Default::default() })), "off");
    assert_eq!(nesterov(&settings(OptimizerOptions { no_nesterov: true, ..Default::default() })), "on");
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
            "muon",
            OptimizerOptions { nesterov: true, no_nesterov: true, ..Default::default() },
            "no_nesterov contradicts --nesterov",
        ),
        (
            "muon",
            OptimizerOptions { ns_steps: Some(0), ..Default::default() },
            "ns_steps must be in [1, 100), got 0",
        ),
        (
            "adafactor",
            OptimizerOptions { beta2_decay: Some(0.5), ..Default::default() },
            "beta2_decay must be <= 0, got 0.5",
        ),
        ("adafactor", OptimizerOptions { d: Some(0.5), ..Default::default() }, "d must be >= 1, got 0.5"),
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

/// Gradients of `sum(w^2 / 2) + sum(3 b)` for a matrix `w` and a vector `b`.
fn mixed_grads(w: &Param, b: &Param) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    ((tape.param(w).square() * 0.5).sum() + (tape.param(b) * 3.0).sum()).backward()
}

fn matrix_and_bias() -> (Param, Param) {
    let w = Param::new("0.weight", Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.75], &[2, 3]));
    (w, Param::new("0.bias", Tensor::from_vec(vec![0.1, -0.2], &[2])))
}

#[test]
#[should_panic(expected = "muon updates matrices only, and parameter '0.bias' has shape [2]")]
fn muon_refuses_a_vector_at_its_first_step_naming_it() {
    let (mut w, mut b) = matrix_and_bias();
    let grads = mixed_grads(&w, &b);
    Muon::new(MuonConfig::default()).step(&mut [&mut w, &mut b], &grads);
}

#[test]
fn check_params_reports_what_an_optimizer_cannot_update_in_one_line() {
    let (w, b) = matrix_and_bias();
    let muon = Muon::new(MuonConfig::default());
    assert_eq!(muon.check_params(&[&w]), Ok(()));
    let e = muon.check_params(&[&w, &b]).unwrap_err();
    assert!(e.starts_with("muon updates matrices only, and parameter '0.bias' has shape [2]"), "{e}");
    // `muon` by name gives the bias to AdamW, but refuses a problem without any matrix (it
    // would be AdamW under another name), as on Rosenbrock's [2] vector.
    let split = build("muon", &OptimizerOptions::default()).unwrap();
    assert_eq!(split.check_params(&[&w, &b]), Ok(()));
    let p = Param::new("p", Tensor::zeros(&[2]));
    assert_eq!(
        split.check_params(&[&p]).unwrap_err(),
        "muon updates matrices (parameters with two axes), and none of the parameters is one ('p' [2]); \
         adamw would update them all"
    );
    for name in adamant_optim::OPTIMIZER_NAMES.iter().filter(|n| **n != "muon") {
        assert_eq!(
            build(name, &OptimizerOptions::default()).unwrap().check_params(&[&w, &b, &p]),
            Ok(()),
            "{name}"
        );
    }
    for e in [muon.check_params(&[&b]).unwrap_err(), split.check_params(&[&p]).unwrap_err()] {
        assert!(!e.contains('\n'), "{e}");
    }
}

/// `muon` by name is Muon on the matrix and AdamW (torch's defaults, Muon's learning rate) on
/// the bias, to the bit, and a schedule's `set_lr` moves both.
#[test]
fn muon_by_name_is_muon_for_matrices_and_adamw_for_the_rest() {
    let lr = 0.05;
    let (mut w, mut b) = matrix_and_bias();
    let mut split = build("muon", &OptimizerOptions { lr: Some(lr), ..Default::default() }).unwrap();
    let (mut w2, mut b2) = matrix_and_bias();
    let mut muon = Muon::new(MuonConfig { lr, ..Default::default() });
    let mut adamw = AdamW::new(AdamWConfig { lr, ..Default::default() });
    for step in 0..6 {
        if step == 3 {
            split.set_lr(lr / 4.0);
            muon.set_lr(lr / 4.0);
            adamw.set_lr(lr / 4.0);
        }
        let grads = mixed_grads(&w, &b);
        split.step(&mut [&mut w, &mut b], &grads);
        let grads = mixed_grads(&w2, &b2);
        muon.step(&mut [&mut w2], &grads);
        adamw.step(&mut [&mut b2], &grads);
    }
    let bits = |p: &Param| p.value().data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!((bits(&w), bits(&b)), (bits(&w2), bits(&b2)));
    assert_ne!(bits(&w), bits(&matrix_and_bias().0), "the matrix moved");
    assert_eq!(split.lr(), lr / 4.0);
}

#[test]
fn selectors_combine_and_describe_themselves() {
    let hidden =
        Selector::All(vec![Selector::Matrices, Selector::Not(Box::new(Selector::NamePrefix("wte.".into())))]);
    let p = |name: &str, shape: &[usize]| Param::new(name, Tensor::zeros(shape));
    assert!(hidden.matches(&p("h.0.weight", &[4, 4])));
    assert!(!hidden.matches(&p("wte.weight", &[10, 4])), "the embedding is excluded");
    assert!(!hidden.matches(&p("h.0.bias", &[4])), "a vector is not a matrix");
    assert!(!hidden.matches(&p("conv.weight", &[2, 1, 3, 3])), "nor is a convolution kernel");
    assert_eq!(
        hidden.to_string(),
        "matrices (parameters with two axes) and all but parameters named 'wte.*'"
    );
}

#[test]
fn adamw_updates_its_tensors_in_parallel_with_the_serial_bits() {
    // Eight tensors in two groups (decay on matrices only), one without a gradient and state
    // loaded midway: three steps with the tensors updated in parallel equal three serial ones
    // bit for bit, state included.
    use adamant_tensor::kernels::parallel::{with_mode, Mode as Split};
    use adamant_tensor::rng::seeded;
    let make = || -> Vec<Param> {
        (0..8)
            .map(|i| {
                let shape: &[usize] = if i % 2 == 0 { &[7, 5] } else { &[9] };
                let name = format!("{i}.{}", if i % 2 == 0 { "weight" } else { "bias" });
                Param::new(&name, Tensor::randn(shape, 0.0, 1.0, &mut seeded(i)))
            })
            .collect()
    };
    let run = |split| {
        let mut params = make();
        let mut adamw = AdamW::new(AdamWConfig { lr: 0.01, weight_decay: 0.1, ..Default::default() });
        adamw.add_param_group(ParamGroup::no_decay_for_biases());
        for step in 0..3u64 {
            let tape = Tape::new(Mode::Train, step);
            // Every tensor but the last gets a gradient: sum of squares weighted by the step.
            let loss = params[..7]
                .iter()
                .map(|p| (tape.param(p) * (step as f32 + 1.0)).square().sum())
                .reduce(|a, b| a + b)
                .expect("seven terms");
            let grads = loss.backward();
            drop(tape);
            let mut refs: Vec<&mut Param> = params.iter_mut().collect();
            with_mode(split, || adamw.step(&mut refs, &grads));
        }
        let bits: Vec<Vec<u32>> =
            params.iter().map(|p| p.value().data().iter().map(|x| x.to_bits()).collect()).collect();
        (bits, format!("{:?}", adamw.state_dict()))
    };
    let (serial, parallel) = (run(Split::Serial), run(Split::Parallel));
    assert_eq!(serial, parallel);
    assert_eq!(serial.0[7], make()[7].value().data().iter().map(|x| x.to_bits()).collect::<Vec<_>>());
}
