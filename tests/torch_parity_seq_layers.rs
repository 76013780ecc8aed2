//! The state_dicts of PyTorch's nn.MultiheadAttention (batch first), the pre-norm GPT block
//! of `torch_char_gpt.py`, nn.RNN, nn.GRU and nn.LSTM, saved with safetensors, load into
//! adamant's `MultiheadAttention`, `TransformerBlock`, `RNN`, `GRU` and `LSTM` and give
//! PyTorch's outputs and input (and initial-state) gradients, within
//! `|ours - torch| <= 1e-5 |torch| + 1e-6` elementwise.
//!
//! The fixtures come from `tests/fixtures/gen_seq_layers.py` (run with torch installed); this
//! test only reads the committed files.

mod common;

use adamant::autodiff::{Mode, Param, Tape, Var};
use adamant::layers::{
    load, Module, MultiheadAttention, Params, RecurrentOptions, RnnNonlinearity, TransformerBlock, GRU, LSTM,
    RNN,
};
use adamant::tensor::rng::seeded;
use common::torch::{assert_close, fixture_json, named, tensor, TOL};
use serde_json::Value;

fn case(name: &str) -> Value {
    named(&fixture_json("seq_layers_torch.json")["layers"], name).clone()
}

/// Loads the case's state_dict into `layer`, runs `call` on its inputs (as parameters, so
/// they get gradients) and compares the output and the input gradients with PyTorch's.
fn check<M: Params>(name: &str, mut layer: M, call: impl for<'t> Fn(&M, &[Var<'t>]) -> Var<'t>) {
    let c = case(name);
    let file = format!("{}/tests/fixtures/{}", env!("CARGO_MANIFEST_DIR"), c["file"].as_str().unwrap());
    load(&mut layer, &file).unwrap_or_else(|e| panic!("{name}: {e}"));
    let inputs: Vec<Param> = c["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| Param::new(format!("in{i}"), tensor(v)))
        .collect();
    let tape = Tape::new(Mode::Train, 0);
    let vars: Vec<Var> = inputs.iter().map(|p| tape.param(p)).collect();
    let out = call(&layer, &vars);
    assert_close(&format!("{name} output"), &out.value(), &tensor(&c["output"]), TOL);
    let grads = (out * tape.constant(tensor(&c["weights"]))).sum().backward();
    for (i, (p, g)) in inputs.iter().zip(c["grads"].as_array().unwrap()).enumerate() {
        assert_close(&format!("{name} grad of input {i}"), grads.get(p).unwrap(), &tensor(g), TOL);
    }
}

fn options(num_layers: usize, batch_first: bool) -> RecurrentOptions {
    RecurrentOptions { num_layers, batch_first, ..RecurrentOptions::default() }
}

#[test]
fn multihead_attention_matches_torch() {
    let rng = &mut seeded(0);
    check("mha_causal", MultiheadAttention::new(8, 2, rng).causal(), |m, v| m.forward(v[0]));
    check("mha_plain", MultiheadAttention::new(8, 4, rng), |m, v| m.forward(v[0]));
    check("mha_cross", MultiheadAttention::new(6, 3, rng), |m, v| m.attend(v[0], v[1], v[2], None, false));
}

#[test]
fn transformer_block_matches_the_char_gpt_reference_block() {
    check("block", TransformerBlock::new(8, 2, &mut seeded(0)), |m, v| m.forward(v[0]));
}

#[test]
fn recurrent_layers_match_torch() {
    let rng = &mut seeded(0);
    let rnn = RNN::with_options(3, 5, RnnNonlinearity::Tanh, options(2, true), rng);
    check("rnn_tanh_2layers_batch_first", rnn, |m, v| m.forward_with_state(v[0], Some(v[1])).0);
    let gru = GRU::with_options(3, 4, options(2, false), rng);
    check("gru_2layers_time_first", gru, |m, v| m.forward_with_state(v[0], Some(v[1])).0);
    check("gru_final_state", GRU::with_options(3, 4, options(1, true), rng), |m, v| {
        m.forward_with_state(v[0], None).1
    });
    let lstm = LSTM::with_options(3, 4, options(2, true), rng);
    check("lstm_2layers_batch_first", lstm, |m, v| m.forward_with_state(v[0], Some((v[1], v[2]))).0);
    check("lstm_final_cell", LSTM::new(3, 4, rng), |m, v| m.forward_with_state(v[0], None).1 .1);
}

#[test]
fn recurrent_layers_have_torch_names_and_shapes() {
    let lstm = LSTM::with_options(3, 4, options(2, true), &mut seeded(0));
    let named: Vec<(String, Vec<usize>)> =
        lstm.named_params().into_iter().map(|(n, p)| (n, p.shape().to_vec())).collect();
    let expect = [
        ("weight_ih_l0", vec![16, 3]),
        ("weight_hh_l0", vec![16, 4]),
        ("bias_ih_l0", vec![16]),
        ("bias_hh_l0", vec![16]),
        ("weight_ih_l1", vec![16, 4]),
        ("weight_hh_l1", vec![16, 4]),
        ("bias_ih_l1", vec![16]),
        ("bias_hh_l1", vec![16]),
    ];
    assert_eq!(named, expect.map(|(n, s)| (n.to_string(), s)));
    let mha = MultiheadAttention::new(8, 2, &mut seeded(0));
    let names: Vec<String> = mha.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
}
