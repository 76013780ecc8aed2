//! Saving and restoring optimizer state is exact: 10 steps, save, serialise, deserialise,
//! load into a fresh optimizer over fresh parameters (same names, new ids, weights copied bit
//! for bit), 10 more steps gives the same bits as 20 uninterrupted steps, for every
//! optimizer. Also: loading state of the wrong kind errors and changes nothing, corrupt bytes
//! are errors rather than panics, and `OptimizerState::validate` catches mismatched models.

use std::collections::HashMap;

use adamant_autodiff::{Gradients, Mode, Param, Tape};
use adamant_optim::{build, Muon, MuonConfig, Optimizer, OptimizerOptions, OptimizerState, StateError};
use adamant_tensor::{rng, Tensor};
use safetensors::tensor::{Dtype, TensorView};

const STEPS: usize = 20;
const SAVE_AT: usize = 10;
/// The step after which both runs halve the learning rate, as a schedule would, so the saved
/// learning rate is not the one the optimizer was built with.
const LR_CHANGE_AT: usize = 5;

/// A 5-7-3 tanh MLP's parameters (torch's names) and a fixed batch.
struct Problem {
    params: Vec<Param>,
    x: Tensor,
    labels: Vec<usize>,
}

fn problem() -> Problem {
    let mut r = rng::seeded(7);
    let params = vec![
        Param::new("0.weight", Tensor::randn(&[7, 5], 0.0, 0.5, &mut r)),
        Param::new("0.bias", Tensor::randn(&[7], 0.0, 0.5, &mut r)),
        Param::new("2.weight", Tensor::randn(&[3, 7], 0.0, 0.5, &mut r)),
        Param::new("2.bias", Tensor::randn(&[3], 0.0, 0.5, &mut r)),
    ];
    let x = Tensor::randn(&[8, 5], 0.0, 1.0, &mut r);
    let labels = vec![0, 2, 1, 1, 0, 2, 2, 1];
    Problem { params, x, labels }
}

/// Fresh parameters (new ids) with the same names and bit-identical values.
fn fresh_copy(params: &[Param]) -> Vec<Param> {
    params.iter().map(|p| Param::new(p.name(), Tensor::from_slice(p.value().data(), p.shape()))).collect()
}

fn grads(params: &[Param], x: &Tensor, labels: &[usize]) -> Gradients {
    let tape = Tape::new(Mode::Train, 0);
    let [w0, b0, w1, b1] = params else { panic!("four parameters") };
    let h = (tape.constant(x.clone()).matmul_nt(tape.param(w0)) + tape.param(b0)).tanh();
    (h.matmul_nt(tape.param(w1)) + tape.param(b1)).cross_entropy(labels).backward()
}

/// Runs steps `from+1 ..= to` (1-based step numbers), halving the lr after `LR_CHANGE_AT`.
fn run(opt: &mut dyn Optimizer, params: &mut [Param], x: &Tensor, labels: &[usize], from: usize, to: usize) {
    for step in from + 1..=to {
        let g = grads(params, x, labels);
        let mut refs: Vec<&mut Param> = params.iter_mut().collect();
        opt.step(&mut refs, &g);
        if step == LR_CHANGE_AT {
            opt.set_lr(opt.lr() * 0.5);
        }
    }
}

fn bits(params: &[Param]) -> Vec<Vec<u32>> {
    params.iter().map(|p| p.value().data().iter().map(|v| v.to_bits()).collect()).collect()
}

fn settings() -> Vec<(&'static str, &'static str, OptimizerOptions)> {
    let o = OptimizerOptions::default;
    vec![
        ("sgd", "momentum", OptimizerOptions { lr: Some(0.05), momentum: Some(0.9), ..o() }),
        ("sgd", "nesterov", OptimizerOptions { lr: Some(0.05), momentum: Some(0.9), nesterov: true, ..o() }),
        (
            "sgd",
            "dampening_weight_decay",
            OptimizerOptions {
                lr: Some(0.05),
                momentum: Some(0.9),
                dampening: Some(0.5),
                weight_decay: Some(1e-2),
                ..o()
            },
        ),
        ("adam", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        (
            "adam",
            "amsgrad",
            OptimizerOptions { lr: Some(1e-2), amsgrad: true, weight_decay: Some(1e-2), ..o() },
        ),
        ("adam", "no_bias_correction", OptimizerOptions { lr: Some(1e-2), no_bias_correction: true, ..o() }),
        ("adamw", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        ("adamw", "amsgrad", OptimizerOptions { lr: Some(1e-2), amsgrad: true, ..o() }),
        ("adamax", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        ("nadam", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        ("nadam", "momentum_decay", OptimizerOptions { lr: Some(1e-2), momentum_decay: Some(1e-2), ..o() }),
        // Crosses RAdam's rectification switch (step 6) after the save.
        ("radam", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        ("adagrad", "default", OptimizerOptions { lr: Some(5e-2), ..o() }),
        (
            "adagrad",
            "lr_decay_initial_accumulator",
            OptimizerOptions {
                lr: Some(5e-2),
                lr_decay: Some(1e-2),
                initial_accumulator_value: Some(0.1),
                ..o()
            },
        ),
        ("rmsprop", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        ("rmsprop", "centered", OptimizerOptions { lr: Some(1e-2), centered: true, ..o() }),
        (
            "rmsprop",
            "momentum_centered",
            OptimizerOptions { lr: Some(1e-3), momentum: Some(0.9), centered: true, ..o() },
        ),
        ("adadelta", "default", OptimizerOptions::default()),
        (
            "adadelta",
            "rho_weight_decay",
            OptimizerOptions { rho: Some(0.95), weight_decay: Some(1e-2), ..o() },
        ),
        ("lion", "default", OptimizerOptions { lr: Some(1e-3), ..o() }),
        (
            "lion",
            "betas_weight_decay",
            OptimizerOptions { lr: Some(1e-3), betas: Some((0.95, 0.98)), weight_decay: Some(0.1), ..o() },
        ),
        ("lamb", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        (
            "lamb",
            "no_bias_correction_weight_decay",
            OptimizerOptions { lr: Some(1e-2), weight_decay: Some(1e-2), no_bias_correction: true, ..o() },
        ),
        ("adabelief", "default", OptimizerOptions { lr: Some(1e-2), ..o() }),
        (
            "adabelief",
            "l2",
            OptimizerOptions {
                lr: Some(1e-2),
                weight_decay: Some(1e-2),
                no_decoupled_weight_decay: true,
                ..o()
            },
        ),
        // Factored statistics for the weights, a full second moment for the biases.
        ("adafactor", "default", OptimizerOptions::default()),
        (
            "adafactor",
            "weight_decay_clipping",
            OptimizerOptions { weight_decay: Some(0.1), d: Some(1.05), beta2_decay: Some(-0.5), ..o() },
        ),
        // `muon` by name: Muon for the weights, AdamW for the biases, in one state.
        ("muon", "default", OptimizerOptions { lr: Some(2e-2), ..o() }),
        (
            "muon",
            "plain_momentum_match_rms_adamw",
            OptimizerOptions {
                lr: Some(1e-2),
                no_nesterov: true,
                adjust_lr_fn: Some("match_rms_adamw"),
                ..o()
            },
        ),
    ]
}

#[test]
fn settings_cover_every_optimizer() {
    for name in &adamant_optim::OPTIMIZER_NAMES {
        assert!(settings().iter().any(|(n, _, _)| n == name), "no resume setting for {name}");
    }
}

/// The state after `SAVE_AT` steps of `name` with `options`, and the parameters then.
fn save_midway(name: &str, options: &OptimizerOptions) -> (OptimizerState, Vec<Param>, Tensor, Vec<usize>) {
    let Problem { mut params, x, labels } = problem();
    let mut opt = build(name, options).unwrap();
    run(opt.as_mut(), &mut params, &x, &labels, 0, SAVE_AT);
    (opt.state_dict(), params, x, labels)
}

#[test]
fn resume_is_bit_exact_for_every_optimizer() {
    for (name, label, options) in settings() {
        let what = format!("{name}/{label}");

        let Problem { mut params, x, labels } = problem();
        let mut straight = build(name, &options).unwrap();
        run(straight.as_mut(), &mut params, &x, &labels, 0, STEPS);
        let expected = bits(&params);

        let (state, saved_params, _, _) = save_midway(name, &options);
        assert_eq!(state.kind, name, "{what}: kind");
        assert_eq!(state.params.len(), 4, "{what}: every parameter has state");
        for (pname, s) in &state.params {
            assert_eq!(s.step, SAVE_AT as u64, "{what}: step of {pname}");
        }
        let bytes = state.to_bytes();
        let restored = OptimizerState::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(restored, state, "{what}: to_bytes/from_bytes round trip");
        for (pname, s) in &state.params {
            for (b, t) in &s.buffers {
                let back = &restored.params[pname].buffers[b];
                let same = t.data().iter().zip(back.data()).all(|(u, v)| u.to_bits() == v.to_bits());
                assert!(same, "{what}: buffer {pname}/{b} changed bits in the round trip");
            }
            for (k, v) in &s.scalars {
                assert_eq!(
                    v.to_bits(),
                    restored.params[pname].scalars[k].to_bits(),
                    "{what}: scalar {pname}/{k}"
                );
            }
        }

        let mut resumed_params = fresh_copy(&saved_params);
        for (a, b) in resumed_params.iter().zip(&saved_params) {
            assert_ne!(a.id(), b.id(), "fresh parameters have new ids");
        }
        let refs: Vec<&Param> = resumed_params.iter().collect();
        restored.validate(&refs).unwrap_or_else(|e| panic!("{what}: validate: {e}"));

        // Control: continuing with a fresh optimizer that did not load the state must differ,
        // or this test could not tell a working resume from a broken one.
        let mut control_params = fresh_copy(&saved_params);
        let mut control = build(name, &options).unwrap();
        control.set_lr(straight.lr());
        run(control.as_mut(), &mut control_params, &x, &labels, SAVE_AT, STEPS);
        assert_ne!(bits(&control_params), expected, "{what}: the state made no difference");

        let mut resumed = build(name, &options).unwrap();
        resumed.load_state_dict(restored).unwrap_or_else(|e| panic!("{what}: load_state_dict: {e}"));
        assert_eq!(
            resumed.lr().to_bits(),
            straight.lr().to_bits(),
            "{what}: the saved learning rate is restored"
        );
        run(resumed.as_mut(), &mut resumed_params, &x, &labels, SAVE_AT, STEPS);
        assert_eq!(bits(&resumed_params), expected, "{what}: resumed weights differ from the straight run's");
        assert_eq!(resumed.state_dict(), straight.state_dict(), "{what}: final optimizer states differ");
    }
}

#[test]
fn loading_the_wrong_kind_errors_and_changes_nothing() {
    let adam_options = OptimizerOptions { lr: Some(1e-2), ..Default::default() };
    let (adam_state, _, _, _) = save_midway("adam", &adam_options);

    // Another optimizer's state: refused, and the run continues exactly as without the attempt.
    let sgd_options = OptimizerOptions { lr: Some(0.05), momentum: Some(0.9), ..Default::default() };
    let Problem { mut params, x, labels } = problem();
    let mut straight = build("sgd", &sgd_options).unwrap();
    run(straight.as_mut(), &mut params, &x, &labels, 0, STEPS);

    let Problem { params: mut params2, .. } = problem();
    let mut sgd = build("sgd", &sgd_options).unwrap();
    run(sgd.as_mut(), &mut params2, &x, &labels, 0, SAVE_AT);
    let before = sgd.state_dict();
    match sgd.load_state_dict(adam_state.clone()) {
        Err(StateError::Kind { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("sgd", "adam"))
        }
        other => panic!("loading adam state into sgd: {other:?}"),
    }
    assert_eq!(sgd.state_dict(), before, "a failed load changed the state");
    run(sgd.as_mut(), &mut params2, &x, &labels, SAVE_AT, STEPS);
    assert_eq!(bits(&params2), bits(&params), "a failed load changed the trajectory");

    // AdamW shares Adam's buffers but is a different optimizer.
    let mut adamw = build("adamw", &adam_options).unwrap();
    assert!(matches!(adamw.load_state_dict(adam_state.clone()), Err(StateError::Kind { .. })));

    // Plain Adam's state lacks the AMSGrad maximum: an error naming the missing buffer.
    let mut amsgrad = build("adam", &OptimizerOptions { amsgrad: true, ..adam_options.clone() }).unwrap();
    match amsgrad.load_state_dict(adam_state.clone()) {
        Err(e @ StateError::Missing { .. }) => assert!(e.to_string().contains("max_exp_avg_sq"), "{e}"),
        other => panic!("loading adam state into amsgrad adam: {other:?}"),
    }
    // And the other way round: an unexpected buffer.
    let (amsgrad_state, _, _, _) =
        save_midway("adam", &OptimizerOptions { amsgrad: true, ..adam_options.clone() });
    let mut plain = build("adam", &adam_options).unwrap();
    assert!(matches!(plain.load_state_dict(amsgrad_state), Err(StateError::Unexpected { .. })));
}

fn sample_state() -> OptimizerState {
    let options = OptimizerOptions { lr: Some(1e-2), ..Default::default() };
    save_midway("nadam", &options).0
}

#[test]
fn from_bytes_rejects_truncated_bytes() {
    let bytes = sample_state().to_bytes();
    assert!(OptimizerState::from_bytes(&bytes).is_ok());
    for len in 0..bytes.len() {
        let r = OptimizerState::from_bytes(&bytes[..len]);
        assert!(r.is_err(), "a {len}-byte prefix of a {}-byte state was accepted", bytes.len());
    }
}

#[test]
fn from_bytes_rejects_garbage() {
    let valid = sample_state().to_bytes();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("zeros".into(), vec![0; 64]),
        ("all ones".into(), vec![0xff; 64]),
        ("huge header length".into(), [u64::MAX.to_le_bytes().as_slice(), b"{}"].concat()),
        ("header not JSON".into(), [8u64.to_le_bytes().as_slice(), b"not json"].concat()),
        ("text".into(), b"this is not an optimizer state at all".to_vec()),
    ];
    // Pseudo-random bytes (a fixed linear congruential sequence), some with a plausible header
    // length in front.
    let mut s: u64 = 0x2014_1222;
    for n in [16usize, 100, 1000] {
        let noise: Vec<u8> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect();
        cases.push((format!("{n} random bytes"), noise.clone()));
        cases.push((
            format!("{n} random bytes after a header length"),
            [(n as u64 / 2).to_le_bytes().as_slice(), &noise].concat(),
        ));
    }
    // The valid state with its JSON header corrupted.
    let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    let mut broken = valid.clone();
    broken[8 + header_len / 2] = b'}';
    cases.push(("valid state, header cut short by a '}'".into(), broken));

    for (what, bytes) in cases {
        assert!(OptimizerState::from_bytes(&bytes).is_err(), "{what}: accepted");
    }
}

/// A safetensors file with the given metadata and F32 tensors (or one of `dtype`).
fn safetensors_file(meta: &[(&str, &str)], tensors: &[(&str, Dtype, &[usize])]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, shape)| vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8])
        .collect();
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dtype, shape), d)| (*name, TensorView::new(*dtype, shape.to_vec(), d).unwrap()))
        .collect();
    let meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn from_bytes_rejects_well_formed_files_that_are_not_optimizer_states() {
    let kind = ("adamant.kind", "adam");
    let step = ("step.w", "3");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no kind", safetensors_file(&[step], &[("w/exp_avg", Dtype::F32, &[2])])),
        ("f64 buffer", safetensors_file(&[kind, step], &[("w/exp_avg", Dtype::F64, &[2])])),
        ("tensor name without a buffer", safetensors_file(&[kind, step], &[("w", Dtype::F32, &[2])])),
        ("buffer without a step", safetensors_file(&[kind], &[("w/exp_avg", Dtype::F32, &[2])])),
        (
            "step not a number",
            safetensors_file(&[kind, ("step.w", "three")], &[("w/exp_avg", Dtype::F32, &[2])]),
        ),
        ("scalar not hex", safetensors_file(&[kind, step, ("scalar.lr", "0.001")], &[])),
        ("parameter scalar not hex", safetensors_file(&[kind, step, ("pscalar.w/mu_product", "xyz")], &[])),
    ];
    for (what, bytes) in cases {
        assert!(OptimizerState::from_bytes(&bytes).is_err(), "{what}: accepted");
    }
    // The same construction with valid contents is accepted, so the errors above are the
    // defects, not the construction.
    let ok = safetensors_file(
        &[kind, step, ("scalar.lr", "3f50624dd2f1a9fc"), ("pscalar.w/mu_product", "3fe0000000000000")],
        &[("w/exp_avg", Dtype::F32, &[2])],
    );
    let state = OptimizerState::from_bytes(&ok).unwrap();
    assert_eq!(state.kind, "adam");
    assert_eq!(state.scalars["lr"], 1e-3);
    assert_eq!(state.params["w"].step, 3);
    assert_eq!(state.params["w"].scalars["mu_product"], 0.5);
}

#[test]
fn validate_catches_shape_and_name_mismatches() {
    let state = sample_state();
    let Problem { params, .. } = problem();
    let refs: Vec<&Param> = params.iter().collect();
    state.validate(&refs).expect("the model the state came from");

    // A model whose first layer is transposed.
    let transposed = Param::new("0.weight", Tensor::zeros(&[5, 7]));
    let refs: Vec<&Param> = std::iter::once(&transposed).chain(params[1..].iter()).collect();
    match state.validate(&refs) {
        Err(StateError::Shape { expected, found, .. }) => {
            assert_eq!((expected, found), (vec![5, 7], vec![7, 5]))
        }
        other => panic!("transposed weight: {other:?}"),
    }

    // A model without the saved parameter '2.bias' (renamed).
    let renamed = Param::new("2.b", params[3].value().clone());
    let refs: Vec<&Param> = params[..3].iter().chain(std::iter::once(&renamed)).collect();
    match state.validate(&refs) {
        Err(e @ StateError::Unexpected { .. }) => assert!(e.to_string().contains("2.bias"), "{e}"),
        other => panic!("missing parameter: {other:?}"),
    }

    // A state with an extra, unknown parameter.
    let mut extra = state.clone();
    let some = extra.params["0.bias"].clone();
    extra.params.insert("3.weight".to_string(), some);
    let refs: Vec<&Param> = params.iter().collect();
    assert!(matches!(extra.validate(&refs), Err(StateError::Unexpected { .. })));
}

/// Adafactor's state has torch's names and shapes, which differ with the parameter's rank:
/// row and column statistics for the weights, a full second moment for the biases. A saved
/// weight missing one statistic is refused with the name of what is missing.
#[test]
fn adafactor_state_has_torchs_buffers_for_each_rank() {
    let (state, params, _, _) = save_midway("adafactor", &OptimizerOptions::default());
    let shapes = |name: &str| -> Vec<(String, Vec<usize>)> {
        state.params[name].buffers.iter().map(|(b, t)| (b.clone(), t.shape().to_vec())).collect()
    };
    assert_eq!(
        shapes("0.weight"),
        [("col_var".to_string(), vec![1, 5]), ("row_var".to_string(), vec![7, 1])]
    );
    assert_eq!(shapes("0.bias"), [("variance".to_string(), vec![7])]);
    let refs: Vec<&Param> = params.iter().collect();
    state.validate(&refs).expect("reduced statistics fit their parameters");

    // A hostile or mismatched file is refused by validate, before any step could panic on it:
    // a statistic of the wrong shape, a full second moment for a matrix, factored ones for a
    // vector, and a reduced buffer where another optimizer keeps a full one.
    let with = |param: &str, buffer: &str, shape: &[usize]| {
        let mut changed = state.clone();
        changed.params.get_mut(param).unwrap().buffers.insert(buffer.to_string(), Tensor::zeros(shape));
        changed
    };
    let wrong_row = with("0.weight", "row_var", &[1, 5]);
    assert!(matches!(wrong_row.validate(&refs), Err(StateError::Shape { .. })));
    let mut full_for_matrix = with("0.weight", "variance", &[7, 5]);
    full_for_matrix.params.get_mut("0.weight").unwrap().buffers.retain(|b, _| b == "variance");
    assert!(matches!(full_for_matrix.validate(&refs), Err(StateError::Unexpected { .. })));
    let factored_vector = with("0.bias", "row_var", &[7]);
    assert!(matches!(factored_vector.validate(&refs), Err(StateError::Unexpected { .. })));
    let mut adam_reduced = with("0.weight", "exp_avg", &[7, 1]);
    adam_reduced.kind = "adam".to_string();
    assert!(matches!(adam_reduced.validate(&refs), Err(StateError::Shape { .. })));

    let mut broken = state.clone();
    broken.params.get_mut("0.weight").unwrap().buffers.remove("col_var");
    let mut adafactor = build("adafactor", &OptimizerOptions::default()).unwrap();
    match adafactor.load_state_dict(broken) {
        Err(e @ StateError::Missing { .. }) => {
            assert!(e.to_string().contains("'col_var' of parameter '0.weight'"), "{e}")
        }
        other => panic!("loading a weight without col_var: {other:?}"),
    }
}

/// Muon itself (not `muon` by name) on the matrices alone: the MLP's two weights, its biases
/// left out, resumes bit for bit; and the state of `muon` by name says which part owns each
/// parameter.
#[test]
fn muon_resumes_exactly_on_matrices_alone() {
    let Problem { params, x, labels } = problem();
    let run_weights = |opt: &mut Muon, params: &mut [Param], from: usize, to: usize| {
        for _ in from..to {
            let g = grads(params, &x, &labels);
            let mut weights: Vec<&mut Param> =
                params.iter_mut().filter(|p| p.name().ends_with("weight")).collect();
            opt.step(&mut weights, &g);
        }
    };
    let config = MuonConfig { lr: 2e-2, ..Default::default() };
    let mut straight_params = fresh_copy(&params);
    let mut straight = Muon::new(config);
    run_weights(&mut straight, &mut straight_params, 0, STEPS);

    let mut first_params = fresh_copy(&params);
    let mut first = Muon::new(config);
    run_weights(&mut first, &mut first_params, 0, SAVE_AT);
    let state = OptimizerState::from_bytes(&first.state_dict().to_bytes()).unwrap();
    assert_eq!(state.params.keys().collect::<Vec<_>>(), ["0.weight", "2.weight"]);
    let mut resumed_params = fresh_copy(&first_params);
    let mut resumed = Muon::new(config);
    resumed.load_state_dict(state).unwrap();
    run_weights(&mut resumed, &mut resumed_params, SAVE_AT, STEPS);
    assert_eq!(bits(&resumed_params), bits(&straight_params));
    assert_ne!(bits(&straight_params), bits(&params), "the weights moved");
    assert_eq!(bits(&straight_params[1..2]), bits(&params[1..2]), "the biases were left alone");

    let (split_state, _, _, _) = save_midway("muon", &OptimizerOptions::default());
    let part = |name: &str| split_state.params[name].scalars["split_part"];
    assert_eq!([part("0.weight"), part("0.bias"), part("2.weight"), part("2.bias")], [0.0, 1.0, 0.0, 1.0]);
    assert!(split_state.params["0.weight"].buffers.contains_key("momentum_buffer"));
    assert!(split_state.params["0.bias"].buffers.contains_key("exp_avg"));
    assert!(split_state.scalars.contains_key("rest.lr"));
    let mut unmarked = split_state.clone();
    unmarked.params.get_mut("2.bias").unwrap().scalars.remove("split_part");
    let mut muon = build("muon", &OptimizerOptions::default()).unwrap();
    let e = muon.load_state_dict(unmarked).unwrap_err().to_string();
    assert_eq!(e, "optimizer state lacks scalar 'split_part' (0 or 1) of parameter '2.bias'");
    assert!(matches!(muon.load_state_dict(first.state_dict()), Err(StateError::Missing { .. })));
}
