//! `Dense` on inputs of any rank: `[..., in]` is the same layer applied to every row, exactly
//! as `nn.Linear`; values and gradients equal those of the flattened `[rows, in]` input.

use adamant_autodiff::{Mode, Param, Tape};
use adamant_layers::{Dense, Module};
use adamant_tensor::{rng::seeded, Tensor};

/// Output, and gradients of x, weight and bias, of `sum(dense(x) * r)` for `x` of `shape`,
/// with `x` reshaped to `view` before the layer and the output back to `[..., out]` after.
fn run(dense: &Dense, x: &Param, r: &Tensor, view: &[usize]) -> (Tensor, Vec<Tensor>) {
    let tape = Tape::new(Mode::Train, 0);
    let xv = tape.param(x).reshape(view);
    let y = dense.forward(xv);
    let y = y.reshape(r.shape());
    let grads = (y * tape.constant(r.clone())).sum().backward();
    let b = dense.bias.as_ref().unwrap();
    (y.value(), [x, &dense.weight, b].iter().map(|p| grads.get(p).unwrap().clone()).collect())
}

#[test]
fn dense_on_a_3d_input_equals_dense_on_its_rows() {
    let mut rng = seeded(5);
    let dense = Dense::new(7, 4, &mut rng);
    let x = Param::new("x", Tensor::randn(&[2, 3, 7], 0.0, 1.0, &mut rng));
    let r = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
    let (y3, g3) = run(&dense, &x, &r, &[2, 3, 7]);
    let (y2, g2) = run(&dense, &x, &r, &[6, 7]);
    assert_eq!(y3.shape(), &[2, 3, 4]);
    // The same GEMM on the same rows: bit-identical, not merely close.
    assert_eq!(y3, y2);
    for (a, b) in g3.iter().zip(&g2) {
        assert_eq!(a, b);
    }
    // And the rows are the layer's 2-d result (a different row count may block the GEMM
    // differently, so compare within rounding).
    let tape = Tape::new(Mode::Eval, 0);
    let row = dense.forward(tape.constant(x.value().reshape(&[6, 7]).slice_rows(4, 5))).value();
    let got = y3.reshape(&[6, 4]).slice_rows(4, 5);
    assert!(row.max_abs_diff(&got) <= 1e-6, "{row:?} vs {got:?}");
}

#[test]
fn dense_on_1d_and_4d_inputs_keeps_the_leading_axes() {
    let mut rng = seeded(6);
    let dense = Dense::new(3, 2, &mut rng);
    let tape = Tape::new(Mode::Eval, 0);
    let v = tape.constant(Tensor::randn(&[3], 0.0, 1.0, &mut rng));
    assert_eq!(dense.forward(v).shape(), vec![2]);
    let x = tape.constant(Tensor::randn(&[2, 1, 5, 3], 0.0, 1.0, &mut rng));
    let y = dense.forward(x);
    assert_eq!(y.shape(), vec![2, 1, 5, 2]);
    // Each row of the 4-d output is the layer on that row alone.
    let row = dense.forward(v).value();
    let one = dense.forward(tape.constant(v.value().reshape(&[1, 3]))).value();
    assert!(row.max_abs_diff(&one.reshape(&[2])) <= 1e-6);
}
