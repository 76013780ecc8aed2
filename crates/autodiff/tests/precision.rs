//! Mixed precision on the tape: under `Precision::Bf16` the GEMM ops (matmul in all its
//! forms, linear, conv2d, conv1d) compute, forward and backward, what f32 computes on
//! operands rounded to bf16, up to the order of the f32 sums; attention's products take bf16
//! operands too (its probabilities included, so it is only close to f32 of rounded q, k, v);
//! everything else stays f32.

use adamant_autodiff::{Attention, Gradients, Mode, Param, Tape, Var};
use adamant_tensor::{kernels::round_to_bf16, numel, testing, Precision, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(testing::randn(numel(shape), seed), shape)
}

fn rounded(t: &Tensor) -> Tensor {
    Tensor::from_vec(t.data().iter().map(|&x| round_to_bf16(x)).collect(), t.shape())
}

/// An op under test: reads its parameters from the tape and returns its output.
type Op = for<'a> fn(&'a Tape, &'a [Param]) -> Var<'a>;

/// Runs `op` on `params` in `precision`, weighs its output with `weights` (bf16 values, so
/// that the output gradient is exact in bf16) and returns the output and the gradients.
fn run(op: Op, params: &[Param], weights: &Tensor, precision: Precision) -> (Tensor, Gradients) {
    let tape = Tape::new(Mode::Train, 0);
    tape.set_precision(precision);
    let y = op(&tape, params);
    let value = y.value();
    let loss = (y * tape.constant(weights.clone())).sum();
    (value, loss.backward())
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_within(what, got, want, 2e-5);
}

/// Every element within `tol` of the largest reference value.
fn assert_within(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: bf16 run {g}, f32 of rounded operands {w}");
    }
}

/// `op` in bf16 equals `op` in f32 on the rounded values of the parameters named in
/// `rounded_names` (the GEMM operands; a bias is added in f32), values and gradients; and
/// differs from plain f32 (the precision is really applied).
fn check(op: Op, shapes: &[(&str, &[usize])], rounded_names: &[&str]) {
    let params: Vec<Param> =
        shapes.iter().enumerate().map(|(i, (name, s))| Param::new(*name, randn(s, 10 + i as u64))).collect();
    let reference: Vec<Param> = params
        .iter()
        .map(|p| {
            let v = if rounded_names.contains(&p.name()) { rounded(p.value()) } else { p.value().clone() };
            Param::new(p.name(), v)
        })
        .collect();
    let out_shape = run(op, &params, &Tensor::zeros(&[1]), Precision::F32).0.shape().to_vec();
    let weights = rounded(&randn(&out_shape, 99));
    let (y16, g16) = run(op, &params, &weights, Precision::Bf16);
    let (y_ref, g_ref) = run(op, &reference, &weights, Precision::F32);
    let (y32, _) = run(op, &params, &weights, Precision::F32);
    assert_close("value", y16.data(), y_ref.data());
    assert!(y16.data() != y32.data(), "bf16 gave the f32 values: the precision was not applied");
    for (p, r) in params.iter().zip(&reference) {
        let (got, want) = (g16.get(p).expect("a gradient"), g_ref.get(r).expect("a gradient"));
        assert_close(&format!("d{}", p.name()), got.data(), want.data());
    }
}

#[test]
fn matmul_in_every_transposition() {
    let shapes: &[(&str, &[usize])] = &[("a", &[9, 37]), ("b", &[37, 11])];
    check(|t, p| t.param(&p[0]).matmul(t.param(&p[1])), shapes, &["a", "b"]);
    let shapes: &[(&str, &[usize])] = &[("a", &[37, 9]), ("b", &[11, 37])];
    check(|t, p| t.param(&p[0]).matmul_t(t.param(&p[1]), true, true), shapes, &["a", "b"]);
    let shapes: &[(&str, &[usize])] = &[("a", &[9, 37]), ("b", &[11, 37])];
    check(|t, p| t.param(&p[0]).matmul_nt(t.param(&p[1])), shapes, &["a", "b"]);
}

#[test]
fn batched_and_broadcast_matmul() {
    let shapes: &[(&str, &[usize])] = &[("a", &[2, 3, 5, 17]), ("b", &[3, 17, 4])];
    check(|t, p| t.param(&p[0]).matmul(t.param(&p[1])), shapes, &["a", "b"]);
    let shapes: &[(&str, &[usize])] = &[("a", &[2, 5, 17]), ("b", &[17, 4])];
    check(|t, p| t.param(&p[0]).matmul(t.param(&p[1])), shapes, &["a", "b"]);
}

#[test]
fn linear_with_and_without_bias() {
    let shapes: &[(&str, &[usize])] = &[("x", &[3, 7, 33]), ("w", &[20, 33]), ("b", &[20])];
    check(|t, p| t.param(&p[0]).linear(t.param(&p[1]), Some(t.param(&p[2]))), shapes, &["x", "w"]);
    check(|t, p| t.param(&p[0]).linear(t.param(&p[1]), None), &shapes[..2], &["x", "w"]);
}

#[test]
fn convolutions() {
    let shapes: &[(&str, &[usize])] = &[("x", &[5, 3, 9, 8]), ("w", &[6, 3, 3, 3]), ("b", &[6])];
    check(|t, p| t.param(&p[0]).conv2d(t.param(&p[1]), Some(t.param(&p[2])), 2, 1), shapes, &["x", "w"]);
    let shapes: &[(&str, &[usize])] = &[("x", &[5, 4, 13]), ("w", &[3, 4, 5])];
    check(|t, p| t.param(&p[0]).conv1d(t.param(&p[1]), None, 1, 2), shapes, &["x", "w"]);
}

#[test]
fn other_ops_stay_f32() {
    // Elementwise ops, reductions and softmax compute the same bits in either precision.
    let x = Param::new("x", randn(&[4, 9], 3));
    let values: Vec<(Vec<f32>, Vec<f32>)> = [Precision::F32, Precision::Bf16]
        .into_iter()
        .map(|p| {
            let tape = Tape::new(Mode::Train, 0);
            tape.set_precision(p);
            let loss = (tape.param(&x).tanh() * 3.0).log_softmax(-1).sum();
            let v = loss.value().data().to_vec();
            (v, loss.backward().get(&x).unwrap().data().to_vec())
        })
        .collect();
    assert_eq!(values[0], values[1]);
}

#[test]
fn backward_keeps_the_precision_its_op_was_recorded_with() {
    // Recorded under autocast, differentiated after it ended: the gradient is still bf16's.
    let (a, b) = (Param::new("a", randn(&[6, 40], 1)), Param::new("b", randn(&[40, 5], 2)));
    let weights = rounded(&randn(&[6, 5], 3));
    let grad_a = |scoped: bool| {
        let tape = Tape::new(Mode::Train, 0);
        let y = if scoped {
            tape.autocast(Precision::Bf16, || tape.param(&a).matmul(tape.param(&b)))
        } else {
            tape.set_precision(Precision::Bf16);
            let y = tape.param(&a).matmul(tape.param(&b));
            tape.set_precision(Precision::F32);
            y
        };
        assert_eq!(tape.precision(), Precision::F32);
        let loss = (y * tape.constant(weights.clone())).sum();
        loss.backward().get(&a).unwrap().data().to_vec()
    };
    let (scoped, set) = (grad_a(true), grad_a(false));
    assert_eq!(scoped, set);
    // d a = weights @ round(b)^T: compare with f32 on the rounded b.
    let tape = Tape::new(Mode::Train, 0);
    let rb = Param::new("rb", rounded(b.value()));
    let loss = (tape.param(&a).matmul(tape.param(&rb)) * tape.constant(weights.clone())).sum();
    assert_close("da", &scoped, loss.backward().get(&a).unwrap().data());
}

#[test]
fn autocast_restores_the_precision_after_a_panic() {
    let tape = Tape::new(Mode::Train, 0);
    tape.set_precision(Precision::F32);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tape.autocast(Precision::Bf16, || panic!("inside the scope"));
    }));
    assert!(result.is_err());
    assert_eq!(tape.precision(), Precision::F32);
}

#[test]
fn attention_products_follow_the_precision() {
    // Attention's two products also round the probabilities (as PyTorch's bf16 SDPA does), so
    // bf16 is within bf16's precision of f32 on rounded q, k, v, not equal to it up to order.
    let q = Param::new("q", randn(&[2, 3, 7, 8], 1));
    let k = Param::new("k", randn(&[2, 3, 9, 8], 2));
    let v = Param::new("v", randn(&[2, 3, 9, 5], 3));
    let weights = rounded(&randn(&[2, 3, 7, 5], 4));
    let options = Attention { scale: Some(0.4), ..Attention::default() };
    let run = |params: [&Param; 3], precision: Precision| {
        let tape = Tape::new(Mode::Train, 0);
        tape.set_precision(precision);
        let [q, k, v] = params.map(|p| tape.param(p));
        let y = q.scaled_dot_product_attention(k, v, &options);
        let value = y.value().data().to_vec();
        let grads = (y * tape.constant(weights.clone())).sum().backward();
        let grads: Vec<Vec<f32>> = params.iter().map(|p| grads.get(p).unwrap().data().to_vec()).collect();
        (value, grads)
    };
    let rounded_params = [&q, &k, &v].map(|p| Param::new(p.name(), rounded(p.value())));
    let (y16, g16) = run([&q, &k, &v], Precision::Bf16);
    let (y_ref, g_ref) = run([&rounded_params[0], &rounded_params[1], &rounded_params[2]], Precision::F32);
    let (y32, _) = run([&q, &k, &v], Precision::F32);
    assert_ne!(y16, y32, "bf16 attention gave the f32 values");
    assert_within("value", &y16, &y_ref, 1e-2);
    for (name, (got, want)) in ["dq", "dk", "dv"].iter().zip(g16.iter().zip(&g_ref)) {
        assert_within(name, got, want, 2e-2);
    }
    // The packed route computes the same as the split one in bf16 too, bit for bit.
    let qkv = Param::new("qkv", randn(&[2, 6, 3 * 8], 5));
    let packed_vs_split = |packed: bool| {
        let tape = Tape::new(Mode::Train, 0);
        tape.set_precision(Precision::Bf16);
        let x = tape.param(&qkv);
        let y = if packed {
            x.packed_self_attention(2, &options)
        } else {
            let heads = |i: usize| x.narrow(2, i * 8, 8).reshape(&[2, 6, 2, 4]).permute(&[0, 2, 1, 3]);
            let (qh, kh, vh) = (heads(0), heads(1), heads(2));
            qh.scaled_dot_product_attention(kh, vh, &options).permute(&[0, 2, 1, 3]).reshape(&[2, 6, 8])
        };
        let value = y.value().data().to_vec();
        (value, y.square().sum().backward().get(&qkv).unwrap().data().to_vec())
    };
    assert_eq!(packed_vs_split(true), packed_vs_split(false));
}
