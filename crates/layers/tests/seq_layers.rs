//! The sequence layers' parameter gradients against central finite differences
//! (`gradcheck_module`): every weight of `MultiheadAttention`, `TransformerBlock`, `RNN`,
//! `GRU` and `LSTM` (two stacked layers, both layouts) gets the gradient the tape computes.

use adamant_autodiff::GradcheckOptions;
use adamant_layers::{
    gradcheck_module, Module, MultiheadAttention, RecurrentOptions, TransformerBlock, GRU, LSTM, RNN,
};
use adamant_tensor::{rng::seeded, Tensor};

fn input(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut seeded(seed))
}

/// `sum(y * r)` with fixed random `r`.
fn weighed<'t>(y: adamant_autodiff::Var<'t>) -> adamant_autodiff::Var<'t> {
    let r = Tensor::randn(&y.shape(), 0.0, 1.0, &mut seeded(99));
    (y * y.tape().constant(r)).sum()
}

fn check<M: Module>(mut layer: M, x: Tensor) {
    let report = gradcheck_module(
        &mut layer,
        |tape, m| weighed(m.forward(tape.constant(x.clone()))),
        GradcheckOptions::default(),
    );
    assert!(report.passed, "{report}");
}

#[test]
fn attention_layers_gradcheck() {
    check(MultiheadAttention::new(6, 2, &mut seeded(1)).causal(), input(&[2, 4, 6], 2));
    check(TransformerBlock::new(4, 2, &mut seeded(3)), input(&[2, 3, 4], 4));
}

#[test]
fn recurrent_layers_gradcheck() {
    let stacked =
        |batch_first| RecurrentOptions { num_layers: 2, batch_first, ..RecurrentOptions::default() };
    check(RNN::new(3, 4, &mut seeded(5)), input(&[4, 2, 3], 6));
    check(GRU::with_options(3, 4, stacked(true), &mut seeded(7)), input(&[2, 4, 3], 8));
    check(LSTM::with_options(3, 3, stacked(false), &mut seeded(9)), input(&[3, 2, 3], 10));
}

#[test]
#[should_panic(expected = "GRU: expected [batch, time, input] input with input size 3, got shape [2, 4, 5]")]
fn a_wrong_input_width_names_the_layer_and_the_layout() {
    let gru = GRU::with_options(
        3,
        4,
        RecurrentOptions { batch_first: true, ..RecurrentOptions::default() },
        &mut seeded(0),
    );
    gru.forward(adamant_autodiff::Tape::inference().constant(Tensor::zeros(&[2, 4, 5])));
}
