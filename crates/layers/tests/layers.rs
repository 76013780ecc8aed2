//! The layers: PyTorch names and parameter counts, per-layer gradchecks, dropout statistics.

use adamant_autodiff::{gradcheck, GradcheckOptions, Mode, Param, Tape, Var};
use adamant_layers::{
    gradcheck_module, nets, sequential, Conv2d, Dense, Dropout, Flatten, Identity, MaxPool2d, MaxPool2dReLU,
    Module, Params, ReLU, Sigmoid, Softplus, Tanh,
};
use adamant_tensor::{rng::seeded, Tensor};

fn names(m: &dyn Module) -> Vec<String> {
    m.named_params().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn the_papers_networks_have_torchs_parameter_counts() {
    let mut rng = seeded(0);
    assert_eq!(nets::logistic_regression(&mut rng).num_params(), 7_850);
    assert_eq!(nets::mlp(&mut rng).num_params(), 1_796_010);
    assert_eq!(nets::cnn(&mut rng).num_params(), 2_371_266);
    assert_eq!(nets::Vae::new(&mut rng).num_params(), 860_884);
}

#[test]
fn names_follow_torchs_state_dict() {
    let mut rng = seeded(0);
    assert_eq!(
        names(&nets::mlp(&mut rng)),
        ["1.weight", "1.bias", "4.weight", "4.bias", "7.weight", "7.bias"]
    );
    assert_eq!(
        names(&nets::cnn(&mut rng)),
        [
            "0.weight",
            "0.bias",
            "3.weight",
            "3.bias",
            "6.weight",
            "6.bias",
            "10.weight",
            "10.bias",
            "13.weight",
            "13.bias"
        ]
    );
    assert_eq!(
        names(&nets::Vae::new(&mut rng)),
        [
            "enc.weight",
            "enc.bias",
            "mu.weight",
            "mu.bias",
            "lv.weight",
            "lv.bias",
            "dec.weight",
            "dec.bias",
            "out.weight",
            "out.bias"
        ]
    );
}

#[test]
fn nested_sequentials_prefix_hierarchically() {
    let mut rng = seeded(0);
    let inner = sequential![Dense::new(2, 3, &mut rng), ReLU];
    let outer = sequential![Dense::new(3, 2, &mut rng), inner];
    assert_eq!(names(&outer), ["0.weight", "0.bias", "1.0.weight", "1.0.bias"]);
}

#[test]
fn output_shapes_of_the_papers_networks() {
    let mut rng = seeded(1);
    let tape = Tape::inference();
    let mnist = tape.constant(Tensor::rand_uniform(&[3, 784], 0.0, 1.0, &mut rng));
    assert_eq!(nets::logistic_regression(&mut rng).forward(mnist).shape(), [3, 10]);
    assert_eq!(nets::mlp(&mut rng).forward(mnist).shape(), [3, 10]);
    assert_eq!(nets::Vae::new(&mut rng).forward(mnist).shape(), [3, 784]);
    let cifar = tape.constant(Tensor::randn(&[2, 3, 32, 32], 0.0, 1.0, &mut rng));
    assert_eq!(nets::cnn(&mut rng).forward(cifar).shape(), [2, 10]);
}

/// `sum(y * r)` with fixed random weights `r`: a scalar in which every output counts.
fn weigh(y: Var<'_>) -> Var<'_> {
    let r = Tensor::randn(&y.shape(), 0.0, 1.0, &mut seeded(77));
    (y * y.tape().constant(r)).sum()
}

#[test]
fn dense_layer_gradcheck() {
    let mut layer = Dense::new(5, 3, &mut seeded(2));
    let x = Tensor::randn(&[4, 5], 0.0, 1.0, &mut seeded(3));
    let report =
        gradcheck_module(&mut layer, |t, m| weigh(m.forward(t.constant(x.clone()))), Default::default());
    assert!(report.passed, "{report}");
    assert_eq!(report.checked, 5 * 3 + 3);
}

#[test]
fn conv_layer_gradcheck() {
    let mut layer = Conv2d::new(2, 3, 3, 2, 1, &mut seeded(4));
    let x = Tensor::randn(&[3, 2, 5, 6], 0.0, 1.0, &mut seeded(5));
    let report =
        gradcheck_module(&mut layer, |t, m| weigh(m.forward(t.constant(x.clone()))), Default::default());
    assert!(report.passed, "{report}");
}

#[test]
fn sequential_model_gradcheck_with_dropout() {
    let mut rng = seeded(6);
    let mut model = sequential![
        Conv2d::new(1, 2, 3, 1, 1, &mut rng),
        Tanh,
        Flatten,
        Dropout::new(0.3),
        Dense::new(32, 3, &mut rng),
        Softplus,
    ];
    let x = Tensor::randn(&[2, 1, 4, 4], 0.0, 1.0, &mut rng);
    let report =
        gradcheck_module(&mut model, |t, m| weigh(m.forward(t.constant(x.clone()))), Default::default());
    assert!(report.passed, "{report}");
}

#[test]
fn parameterless_layers_gradcheck_through_their_input() {
    let layers: Vec<Box<dyn Module>> = vec![
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(Softplus),
        Box::new(Flatten),
        Box::new(MaxPool2d::new(3, 2, 1)),
        Box::new(Dropout::new(0.3)),
    ];
    for (i, layer) in layers.iter().enumerate() {
        // Distinct values 0.05 apart: no max-pool window has a near-tie that +-eps could flip.
        let perm = Tensor::permutation(150, &mut seeded(10 + i as u64));
        let values = perm.iter().map(|&k| k as f32 * 0.05 - 3.5).collect();
        let mut x = Param::new("input", Tensor::from_vec(values, &[2, 3, 5, 5]));
        let report = gradcheck(
            &mut [&mut x],
            |t, p| weigh(layer.forward(t.param(&*p[0]))),
            GradcheckOptions::default(),
        );
        assert!(report.passed, "layer {i}: {report}");
    }
}

#[test]
fn dropout_eval_is_identity() {
    let x = Tensor::randn(&[8, 16], 0.0, 1.0, &mut seeded(6));
    let tape = Tape::new(Mode::Eval, 3);
    assert_eq!(Dropout::new(0.5).forward(tape.constant(x.clone())).value(), x);
}

#[test]
fn dropout_train_keeps_the_mean_and_drops_p() {
    // E[dropout(x)] = x: with x = 1 everywhere, the mean of 1e6 outputs must be 1 within a
    // few standard errors. The std of one output is sqrt(p / (1 - p)) = 1 for p = 0.5, so the
    // standard error is 1e-3; a missing 1/(1-p) scale would give 0.5, a doubled one 2.
    let n = 1_000_000;
    let tape = Tape::new(Mode::Train, 11);
    let y = Dropout::new(0.5).forward(tape.constant(Tensor::ones(&[n]))).value();
    let mean = y.data().iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.005, "mean {mean}");
    let zeros = y.data().iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((zeros - 0.5).abs() < 0.005, "dropped fraction {zeros}");
    assert!(y.data().iter().all(|&v| v == 0.0 || v == 2.0));

    let tape = Tape::new(Mode::Train, 12);
    let y = Dropout::new(0.2).forward(tape.constant(Tensor::ones(&[n]))).value();
    let mean = y.data().iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.003, "mean {mean} for p = 0.2");
}

#[test]
fn dropout_mask_is_reproducible_from_the_seed() {
    let run = |seed| {
        let tape = Tape::new(Mode::Train, seed);
        Dropout::new(0.5).forward(tape.constant(Tensor::ones(&[4096]))).value()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn model_training_step_reduces_the_loss() {
    let mut rng = seeded(7);
    let mut model = sequential![Dense::new(6, 16, &mut rng), ReLU, Dense::new(16, 3, &mut rng)];
    let x = Tensor::randn(&[12, 6], 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
    let loss_at = |m: &dyn Module| {
        let tape = Tape::inference();
        m.forward(tape.constant(x.clone())).cross_entropy(&labels).item()
    };
    let before = loss_at(&model);
    for step in 0..200 {
        let tape = Tape::new(Mode::Train, step);
        let grads = model.forward(tape.constant(x.clone())).cross_entropy(&labels).backward();
        drop(tape);
        for p in model.params_mut() {
            let g = grads.get(p).unwrap().clone();
            adamant_tensor::kernels::axpy(-0.1, g.data(), p.value_mut().data_mut());
        }
    }
    let after = loss_at(&model);
    assert!(after < before * 0.2, "loss {before} -> {after}");
}

/// `MaxPool2dReLU` pools first and applies the ReLU after; this checks it against `ReLU`
/// then `MaxPool2d` as separate layers in a `Sequential` (which runs exactly what it lists):
/// the same output, loss and gradients, bit for bit, including windows whose inputs are all
/// negative. `Identity` keeps the fused model's parameter names those of the explicit one.
#[test]
fn maxpool_relu_matches_relu_then_maxpool_bit_for_bit() {
    let bias_down = |bias: &mut adamant_autodiff::Param| bias.value_mut().data_mut().fill(-1.0);
    let build = |fused: bool| {
        let mut rng = seeded(5);
        let (c1, c2) = (Conv2d::new(2, 4, 3, 1, 1, &mut rng), Conv2d::new(4, 3, 3, 1, 1, &mut rng));
        let d = Dense::new(3 * 2 * 2, 5, &mut rng);
        let mut model = if fused {
            sequential![
                c1,
                Identity,
                MaxPool2dReLU::new(3, 2, 1),
                c2,
                Identity,
                MaxPool2dReLU::new(2, 2, 0),
                Flatten,
                d
            ]
        } else {
            sequential![c1, ReLU, MaxPool2d::new(3, 2, 1), c2, ReLU, MaxPool2d::new(2, 2, 0), Flatten, d]
        };
        // A negative first bias, so that many windows hold only negative values.
        bias_down(model.params_mut()[1]);
        model
    };
    let x = Tensor::randn(&[3, 2, 9, 9], 0.0, 1.0, &mut seeded(6));
    let labels = [0, 3, 4];
    let run = |model: &adamant_layers::Sequential| {
        let tape = Tape::new(Mode::Train, 0);
        let logits = model.forward(tape.constant(x.clone()));
        let grads = logits.cross_entropy(&labels).backward();
        let mut all = logits.value().data().to_vec();
        for p in model.params() {
            all.extend_from_slice(grads.get(p).unwrap().data());
        }
        all.iter().map(|e| e.to_bits()).collect::<Vec<_>>()
    };
    let (fused, explicit) = (build(true), build(false));
    assert_eq!(names(&fused), names(&explicit));
    assert_eq!(run(&fused), run(&explicit));
    // The test means something only if some windows are all negative.
    let tape = Tape::inference();
    let mut c1 = Conv2d::new(2, 4, 3, 1, 1, &mut seeded(5));
    bias_down(c1.params_mut()[1]);
    let pooled = MaxPool2d::new(3, 2, 1).forward(c1.forward(tape.constant(x))).value();
    let all_negative = pooled.data().iter().filter(|&&v| v < 0.0).count();
    assert!(all_negative > 10, "{all_negative} of {} windows", pooled.numel());
}

/// The one difference `MaxPool2dReLU`'s docs admit, pinned down: a window whose first cell is
/// negative and whose largest value is `-0.0` gives `-0.0` fused and `+0.0` from `ReLU` then
/// `MaxPool2d`; every other output and every gradient is bit-identical. (This also shows
/// that `Sequential` no longer runs the ReLU after the pooling.)
#[test]
fn maxpool_relu_differs_only_in_the_sign_of_an_all_nonpositive_window() {
    // One 2x8 plane, four 2x2 windows; window w is (row 0, cols 2w..2w+2) then row 1.
    let windows: [[f32; 4]; 4] = [
        [-1.0, -0.0, -2.0, 0.0],  // first cell negative, first zero -0.0: the difference
        [-0.0, -1.0, 0.0, -2.0],  // first cell -0.0: -0.0 both ways
        [-1.0, -2.0, -3.0, -4.0], // all negative: +0.0 both ways
        [0.5, 2.0, -1.0, 2.0],    // positive maximum, tied: the first 2.0 gets the gradient
    ];
    let mut plane = vec![0.0f32; 16];
    for (w, cells) in windows.iter().enumerate() {
        for (c, &v) in cells.iter().enumerate() {
            plane[(c / 2) * 8 + 2 * w + c % 2] = v;
        }
    }
    let run = |model: &dyn Module| {
        let x = adamant_autodiff::Param::new("x", Tensor::from_vec(plane.clone(), &[1, 1, 2, 8]));
        let tape = Tape::new(Mode::Train, 0);
        let y = model.forward(tape.param(&x));
        let weights = tape.constant(Tensor::from_vec(vec![0.5, -0.25, 2.0, 3.0], &[1, 1, 1, 4]));
        let grads = (y * weights).sum().backward();
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (bits(&y.value()), bits(grads.get(&x).unwrap()))
    };
    let (fused_y, fused_dx) = run(&sequential![MaxPool2dReLU::new(2, 2, 0)]);
    let (explicit_y, explicit_dx) = run(&sequential![ReLU, MaxPool2d::new(2, 2, 0)]);
    let bits = |v: &[f32]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    assert_eq!(fused_y, bits(&[-0.0, -0.0, 0.0, 2.0]));
    assert_eq!(explicit_y, bits(&[0.0, -0.0, 0.0, 2.0]));
    let mut dx = vec![0.0f32; 16];
    dx[7] = 3.0; // window 3's first 2.0: row 0, column 7
    assert_eq!(fused_dx, bits(&dx));
    assert_eq!(explicit_dx, bits(&dx));
}
