//! Unit tests of the tape itself (crate-internal: they can record hand-made ops).

use adamant_tensor::{kernels as k, rng::seeded, Tensor};

use crate::{gradcheck, GradcheckOptions, Mode, Param, Tape, Var};

impl<'t> Var<'t> {
    /// `x^2` with a deliberately wrong backward (`x` instead of `2x`), to prove gradcheck bites.
    fn square_with_wrong_backward(self) -> Var<'t> {
        let x = self.value();
        let mut out = vec![0.0; x.numel()];
        k::square(x.data(), &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| {
            let mut t = vec![0.0; dy.len()];
            k::mul(dy, &[dy.len()], x.data(), &[dy.len()], &mut t);
            k::add_assign(&t, g.acc(i));
        })
    }
}

#[test]
fn gradcheck_fails_on_a_wrong_backward() {
    let mut a = Param::new("a", Tensor::randn(&[5], 0.0, 1.0, &mut seeded(1)));
    let report = gradcheck(
        &mut [&mut a],
        |t, p| t.param(&*p[0]).square_with_wrong_backward().sum(),
        GradcheckOptions::default(),
    );
    assert!(!report.passed, "{report}");
    let worst = report.worst.unwrap();
    // The wrong gradient is exactly half the right one.
    assert!((worst.numeric - 2.0 * worst.analytic).abs() < 1e-2, "{worst:?}");
    // And the right op passes on the same input.
    let report = gradcheck(&mut [&mut a], |t, p| t.param(&*p[0]).square().sum(), GradcheckOptions::default());
    assert!(report.passed, "{report}");
}

#[test]
fn backward_of_a_simple_expression() {
    // L = sum(w * x) + sum(w^2): dL/dw = x + 2w.
    let w = Param::new("w", Tensor::from_vec(vec![1.0, -2.0, 3.0], &[3]));
    let tape = Tape::new(Mode::Train, 0);
    let wv = tape.param(&w);
    let x = tape.constant(Tensor::from_vec(vec![0.5, 0.25, -1.0], &[3]));
    let loss = (wv * x).sum() + wv.square().sum();
    assert_eq!(loss.item(), 0.5 - 0.5 - 3.0 + 14.0);
    let grads = loss.backward();
    assert_eq!(grads.get(&w).unwrap().data(), &[2.5, -3.75, 5.0]);
    assert_eq!(grads.len(), 1);
}

#[test]
fn reading_a_param_shares_its_storage_and_the_tape_releases_it() {
    let mut w = Param::new("w", Tensor::zeros(&[1000]));
    {
        let tape = Tape::new(Mode::Train, 0);
        let v = tape.param(&w);
        assert!(v.value().shares_storage_with(w.value()));
        let _ = (v * 2.0).sum().backward();
    }
    // The tape is gone: the update is in place, no copy.
    assert!(!w.value().is_shared());
    let ptr = w.value().data().as_ptr();
    w.value_mut().data_mut()[0] = 1.0;
    assert_eq!(ptr, w.value().data().as_ptr());
}

#[test]
fn a_param_entered_twice_gets_the_sum_of_both_gradients() {
    let w = Param::new("w", Tensor::from_vec(vec![3.0], &[1]));
    let tape = Tape::new(Mode::Train, 0);
    let a = tape.param(&w);
    let b = tape.param(&w);
    let grads = (a * b).sum().backward();
    assert_eq!(grads.get(&w).unwrap().data(), &[6.0]);
}

/// Gradient accumulation sums the gradients of separate backward passes: the sum of the two
/// losses' gradients, and a parameter only one loss reaches keeps that one's.
#[test]
fn fresh_gradients_overwrite_stale_pooled_buffers_and_later_uses_add() {
    // In debug builds (tests) a buffer taken for overwriting is NaN-filled: a fresh gradient
    // that the GEMM or the copy did not overwrite entirely would show it.
    let x = Param::new("x", Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]));
    let w = Param::new("w", Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3, 1]));
    let tape = Tape::new(Mode::Train, 0);
    let (xv, wv) = (tape.param(&x), tape.param(&w));
    // y = x w + x w + (x + x) summed: x and w each receive several contributions.
    let y = xv.matmul(wv) + xv.matmul(wv);
    let grads = (y.sum() + (xv + xv).sum()).backward();
    // d/dw = 2 x^T 1 = 2 [5, 7, 9]; d/dx = 2 w^T per row + 2.
    assert_eq!(grads.get(&w).unwrap().data(), &[10.0, 14.0, 18.0]);
    assert_eq!(grads.get(&x).unwrap().data(), &[3.0, 0.0, 6.0, 3.0, 0.0, 6.0]);
}

#[test]
fn adding_gradients_of_two_passes_sums_them() {
    let (w, u) =
        (Param::new("w", Tensor::from_vec(vec![3.0, -1.0], &[2])), Param::new("u", Tensor::scalar(2.0)));
    let mut total = {
        let tape = Tape::new(Mode::Train, 0);
        tape.param(&w).square().sum().backward()
    };
    let second = {
        let tape = Tape::new(Mode::Train, 0);
        (tape.param(&w) * 5.0).sum().backward()
    };
    total.add(second);
    let third = {
        let tape = Tape::new(Mode::Train, 0);
        tape.param(&u).square().sum().backward()
    };
    total.add(third);
    assert_eq!(total.get(&w).unwrap().data(), &[11.0, 3.0]);
    assert_eq!(total.get(&u).unwrap().data(), &[4.0]);
    assert_eq!(total.len(), 2);
}

#[test]
fn constants_and_detached_values_get_no_gradient() {
    let w = Param::new("w", Tensor::from_vec(vec![2.0], &[1]));
    let tape = Tape::new(Mode::Train, 0);
    let v = tape.param(&w);
    let stopped = v.square().detach();
    assert!(!stopped.requires_grad());
    let grads = (v * stopped).sum().backward();
    // d/dw (w * const(w^2)) = w^2 = 4, not 3 w^2.
    assert_eq!(grads.get(&w).unwrap().data(), &[4.0]);
}

#[test]
fn unused_parameters_have_no_gradient() {
    let w = Param::new("w", Tensor::ones(&[2]));
    let unused = Param::new("u", Tensor::ones(&[2]));
    let tape = Tape::new(Mode::Train, 0);
    let _u = tape.param(&unused);
    let grads = tape.param(&w).sum().backward();
    assert!(grads.get(&unused).is_none());
    assert!(grads.get(&w).is_some());
}

#[test]
fn inference_tape_records_no_backward() {
    let w = Param::new("w", Tensor::ones(&[2, 2]));
    let tape = Tape::inference();
    let y = tape.constant(Tensor::ones(&[3, 2])).matmul(tape.param(&w)).relu();
    assert!(!y.requires_grad());
    assert_eq!(y.value().data(), &[2.0; 6]);
    assert!(tape.nodes.borrow().iter().all(|n| n.backward.is_none()));
}

#[test]
#[should_panic(expected = "backward: the loss must be a single value")]
fn backward_of_a_non_scalar_panics() {
    let w = Param::new("w", Tensor::ones(&[2]));
    let tape = Tape::new(Mode::Train, 0);
    tape.param(&w).backward();
}

#[test]
#[should_panic(expected = "add: shapes [2, 3] and [2] cannot be broadcast together")]
fn shape_errors_name_the_op_and_shapes() {
    let tape = Tape::new(Mode::Train, 0);
    let _ = tape.constant(Tensor::zeros(&[2, 3])) + tape.constant(Tensor::zeros(&[2]));
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ: [2, 3] @ [2, 3]")]
fn matmul_shape_error() {
    let tape = Tape::new(Mode::Train, 0);
    let _ = tape.constant(Tensor::zeros(&[2, 3])).matmul(tape.constant(Tensor::zeros(&[2, 3])));
}

#[test]
fn dropout_masks_are_reproducible_and_differ_between_layers() {
    let x = Tensor::ones(&[64, 32]);
    let masks = |seed| {
        let tape = Tape::new(Mode::Train, seed);
        let v = tape.constant(x.clone());
        (v.dropout(0.5).value(), v.dropout(0.5).value())
    };
    let (a1, a2) = masks(7);
    let (b1, b2) = masks(7);
    assert_eq!(a1, b1);
    assert_eq!(a2, b2);
    assert_ne!(a1, a2, "two dropout layers of one step drew the same mask");
    let (c1, _) = masks(8);
    assert_ne!(a1, c1, "two seeds drew the same mask");
}

/// A batch split in pieces, each on a tape told where its piece starts
/// (`set_example_offset`), draws the whole batch's dropout masks and VAE noise, forward and
/// backward: what data-parallel training needs to compute what one process computes.
#[test]
fn pieces_of_a_batch_draw_the_whole_batchs_randomness() {
    let (rows, width) = (10, 37);
    let x = Tensor::randn(&[rows, width], 0.0, 1.0, &mut seeded(1));
    let logvar = Tensor::randn(&[rows, width], 0.0, 0.5, &mut seeded(2));
    // Forward value and the gradient of sum(out * weights) with respect to x.
    let run = |x: &Tensor, lv: &Tensor, first: usize| {
        let tape = Tape::new(Mode::Train, 42);
        tape.set_example_offset(first);
        let (xv, lvv) = (tape.constant(x.clone()), tape.constant(lv.clone()));
        let p = Param::new("x", x.clone());
        let xp = tape.param(&p);
        let dropped = xp.dropout(0.4);
        let z = xv.reparameterize(lvv);
        let grads = dropped.sum().backward();
        (dropped.value().into_vec(), z.value().into_vec(), grads.get(&p).unwrap().data().to_vec())
    };
    let whole = run(&x, &logvar, 0);
    let mut pieces = (Vec::new(), Vec::new(), Vec::new());
    for (first, end) in [(0, 3), (3, 4), (4, 10)] {
        let piece = run(&x.slice_rows(first, end), &logvar.slice_rows(first, end), first);
        pieces.0.extend(piece.0);
        pieces.1.extend(piece.1);
        pieces.2.extend(piece.2);
    }
    assert_eq!(pieces.0, whole.0, "dropout forward");
    assert_eq!(pieces.1, whole.1, "reparameterised sample");
    assert_eq!(pieces.2, whole.2, "dropout backward");
    // Attention's dropout too, both forms: entries (example, head) keyed by their place in
    // the whole batch.
    let (heads, t, d) = (2, 4, 3);
    let qkv = Tensor::randn(&[rows, t, 3 * heads * d], 0.0, 1.0, &mut seeded(3));
    let q4 = Tensor::randn(&[rows, heads, t, d], 0.0, 1.0, &mut seeded(4));
    let options = crate::Attention { dropout_p: 0.5, causal: true, ..Default::default() };
    let attend = |qkv: &Tensor, q: &Tensor, first: usize| {
        let tape = Tape::new(Mode::Train, 7);
        tape.set_example_offset(first);
        let packed = tape.constant(qkv.clone()).packed_self_attention(heads, &options).value().into_vec();
        let qv = tape.constant(q.clone());
        let general = qv.scaled_dot_product_attention(qv, qv, &options).value().into_vec();
        (packed, general)
    };
    let whole_attention = attend(&qkv, &q4, 0);
    let (mut packed, mut general) = (Vec::new(), Vec::new());
    for (first, end) in [(0, 3), (3, 4), (4, 10)] {
        let piece = attend(&qkv.slice_rows(first, end), &q4.slice_rows(first, end), first);
        packed.extend(piece.0);
        general.extend(piece.1);
    }
    assert_eq!(packed, whole_attention.0, "packed attention's dropout");
    assert_eq!(general, whole_attention.1, "attention's dropout");
    // And the offset matters: a piece that claims to start elsewhere draws other masks.
    assert_ne!(run(&x.slice_rows(3, 10), &logvar.slice_rows(3, 10), 0).0, whole.0[3 * width..]);
}

/// A small deterministic draw in `0..n` from a counter, for random shapes and ids.
fn draw(seed: u64, counter: u64, n: usize) -> usize {
    (adamant_tensor::rng::splitmix64(seed.wrapping_mul(1_000_003).wrapping_add(counter)) % n as u64) as usize
}

#[test]
fn embedding_gradcheck_on_random_shapes_with_repeated_ids() {
    use adamant_tensor::Ids;
    for seed in 0..6u64 {
        let v = 2 + draw(seed, 0, 5); // 2..=6 rows
        let d = 1 + draw(seed, 1, 4);
        let (b, t) = (1 + draw(seed, 2, 3), 2 + draw(seed, 3, 4));
        // At least one repeat whatever the draws: the last id copies the first.
        let mut data: Vec<usize> = (0..b * t).map(|j| draw(seed, 10 + j as u64, v)).collect();
        let last = data.len() - 1;
        data[last] = data[0];
        let ids = Ids::from_vec(data, &[b, t]);
        let mut table = Param::new("table", Tensor::randn(&[v, d], 0.0, 1.0, &mut seeded(seed)));
        let weights = Tensor::randn(&[b, t, d], 0.0, 1.0, &mut seeded(100 + seed));
        let report = gradcheck(
            &mut [&mut table],
            |tape, p| {
                let x = tape.param(&*p[0]).embedding(&ids);
                assert_eq!(x.shape(), vec![b, t, d]);
                // A nonlinear loss, so that the gradient depends on the looked-up values.
                (x.tanh() * tape.constant(weights.clone())).sum()
            },
            GradcheckOptions::default(),
        );
        assert!(report.passed, "seed {seed} (V={v}, D={d}, ids {:?}): {report}", ids.data());
    }
}

#[test]
fn embedding_sums_gradients_of_repeated_ids() {
    use adamant_tensor::Ids;
    let w = Param::new("w", Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]));
    let tape = Tape::new(Mode::Train, 0);
    let x = tape.param(&w).embedding(&Ids::from_slice(&[1, 1, 1, 0]));
    assert_eq!(x.value().data(), &[3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 1.0, 2.0]);
    let grads = x.sum().backward();
    assert_eq!(grads.get(&w).unwrap().data(), &[1.0, 1.0, 3.0, 3.0, 0.0, 0.0]);
}

#[test]
fn a_constant_gather_freezes_the_table_and_embedding_does_not() {
    use adamant_tensor::Ids;
    // The bug of issue 20: rows gathered from the value are a constant; no gradient arrives.
    let w = Param::new("w", Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let tape = Tape::new(Mode::Train, 0);
    let frozen = tape.constant(tape.param(&w).value().gather_rows(&[1, 0]));
    assert!(!frozen.requires_grad());
    let live = tape.param(&w).embedding(&Ids::from_slice(&[1, 0]));
    assert!(live.requires_grad());
    assert!(live.sum().backward().get(&w).is_some());
}

#[test]
#[should_panic(expected = "embedding: id 3 (at flat position 1 of ids [2]) out of range for 3 rows")]
fn embedding_rejects_an_out_of_range_id() {
    let w = Param::new("w", Tensor::zeros(&[3, 2]));
    let tape = Tape::new(Mode::Train, 0);
    tape.param(&w).embedding(&adamant_tensor::Ids::from_slice(&[0, 3]));
}

#[test]
fn custom_op_gradcheck_with_two_inputs() {
    // x * y + x^3 as a custom op: two inputs, both gradients, x also used outside the op.
    fn op<'t>(x: Var<'t>, y: Var<'t>) -> Var<'t> {
        let (xv, yv) = (x.value(), y.value());
        let v: Vec<f32> = xv.data().iter().zip(yv.data()).map(|(&a, &b)| a * b + a * a * a).collect();
        x.tape().custom_op("xy_plus_x3", Tensor::from_vec(v, xv.shape()), &[x, y], |dy, xs| {
            let (x, y) = (xs[0].data(), xs[1].data());
            let dx: Vec<f32> = (0..x.len()).map(|i| dy.data()[i] * (y[i] + 3.0 * x[i] * x[i])).collect();
            let dyv: Vec<f32> = (0..x.len()).map(|i| dy.data()[i] * x[i]).collect();
            vec![Tensor::from_vec(dx, xs[0].shape()), Tensor::from_vec(dyv, xs[1].shape())]
        })
    }
    let mut a = Param::new("a", Tensor::randn(&[2, 3], 0.0, 1.0, &mut seeded(7)));
    let mut b = Param::new("b", Tensor::randn(&[2, 3], 0.0, 1.0, &mut seeded(8)));
    let report = gradcheck(
        &mut [&mut a, &mut b],
        |t, p| {
            let (x, y) = (t.param(&*p[0]), t.param(&*p[1]));
            (op(x, y).sigmoid() + x).sum()
        },
        GradcheckOptions::default(),
    );
    assert!(report.passed, "{report}");
}

#[test]
fn custom_op_on_constants_only_records_no_backward() {
    let tape = Tape::new(Mode::Train, 0);
    let c = tape.constant(Tensor::ones(&[2]));
    let y = tape.custom_op("never", c.value(), &[c], |_, _| panic!("backward of a constant"));
    assert!(!y.requires_grad());
}

#[test]
#[should_panic(
    expected = "custom op bad_shape: the gradient of input 0 has shape [3], the input has shape [2, 3]"
)]
fn custom_op_rejects_a_gradient_of_the_wrong_shape() {
    let w = Param::new("w", Tensor::ones(&[2, 3]));
    let tape = Tape::new(Mode::Train, 0);
    let x = tape.param(&w);
    tape.custom_op("bad_shape", x.value(), &[x], |_, _| vec![Tensor::zeros(&[3])]).sum().backward();
}

#[test]
#[should_panic(expected = "custom op bad_count: backward returned 2 gradients for 1 inputs")]
fn custom_op_rejects_a_wrong_number_of_gradients() {
    let w = Param::new("w", Tensor::ones(&[2]));
    let tape = Tape::new(Mode::Train, 0);
    let x = tape.param(&w);
    tape.custom_op("bad_count", x.value(), &[x], |dy, _| vec![dy.clone(), dy.clone()]).sum().backward();
}

#[test]
fn index_select_on_axis_0_of_a_3d_value_gradchecks() {
    use adamant_tensor::Ids;
    let ids = Ids::from_slice(&[2, 0, 2, 1, 2]);
    let mut x = Param::new("x", Tensor::randn(&[3, 2, 2], 0.0, 1.0, &mut seeded(11)));
    let report = gradcheck(
        &mut [&mut x],
        |tape, p| {
            let y = tape.param(&*p[0]).index_select(0, &ids);
            assert_eq!(y.shape(), vec![5, 2, 2]);
            y.tanh().sum()
        },
        GradcheckOptions::default(),
    );
    assert!(report.passed, "{report}");
}

#[test]
#[should_panic(expected = "index_select: only axis 0 is implemented, got axis 1")]
fn index_select_rejects_other_axes() {
    let w = Param::new("w", Tensor::zeros(&[3, 2]));
    let tape = Tape::new(Mode::Train, 0);
    tape.param(&w).index_select(1, &adamant_tensor::Ids::from_slice(&[0]));
}

/// Gradchecks `op` applied to a parameter of a random shape (rank 1 to 3, each axis 1 to 4)
/// whose values come from `sample(seed, j)`, under the loss `sum(op(x) * r)`.
fn gradcheck_unary(name: &str, sample: impl Fn(u64, usize) -> f32, op: impl for<'t> Fn(Var<'t>) -> Var<'t>) {
    for seed in 0..5u64 {
        let rank = 1 + draw(seed, 0, 3);
        let shape: Vec<usize> = (0..rank).map(|a| 1 + draw(seed, 1 + a as u64, 4)).collect();
        let n: usize = shape.iter().product();
        let mut x = Param::new("x", Tensor::from_vec((0..n).map(|j| sample(seed, j)).collect(), &shape));
        let r = Tensor::randn(&shape, 0.0, 1.0, &mut seeded(200 + seed));
        let report = gradcheck(
            &mut [&mut x],
            |tape, p| (op(tape.param(&*p[0])) * tape.constant(r.clone())).sum(),
            GradcheckOptions::default(),
        );
        assert!(report.passed, "{name}, seed {seed}, shape {shape:?}: {report}");
    }
}

/// A value in `[-3, 3]` at least 0.1 away from each of `kinks` (so that the central
/// difference with eps 1e-2 never straddles one).
fn away_from(kinks: &'static [f32]) -> impl Fn(u64, usize) -> f32 {
    move |seed, j| {
        let mut k = 0u64;
        loop {
            let u = draw(seed, 1000 + 7919 * j as u64 + k, 60_001) as f32 / 10_000.0 - 3.0;
            if kinks.iter().all(|&c| (u - c).abs() >= 0.1) {
                return u;
            }
            k += 1;
        }
    }
}

/// A value in `[lo, lo + width]`.
fn uniform(lo: f32, width: f32) -> impl Fn(u64, usize) -> f32 {
    move |seed, j| lo + width * draw(seed, 5000 + j as u64, 10_001) as f32 / 10_000.0
}

#[test]
fn gelu_gradchecks_on_random_shapes() {
    gradcheck_unary("gelu", away_from(&[]), |x| x.gelu());
    // Two GELUs of one input: the second gradient is added to the first (not written).
    gradcheck_unary("gelu twice", away_from(&[]), |x| x.gelu() + x.gelu().square());
    gradcheck_unary("gelu_tanh", away_from(&[]), |x| x.gelu_tanh());
}

#[test]
fn silu_gradchecks_on_random_shapes() {
    gradcheck_unary("silu", away_from(&[]), |x| x.silu());
}

#[test]
fn abs_gradchecks_away_from_zero() {
    gradcheck_unary("abs", away_from(&[0.0]), |x| x.abs());
}

#[test]
fn clamp_gradchecks_away_from_its_bounds() {
    gradcheck_unary("clamp", away_from(&[-0.5, 1.25]), |x| x.clamp(-0.5, 1.25));
}

#[test]
fn leaky_relu_gradchecks_away_from_zero() {
    gradcheck_unary("leaky_relu", away_from(&[0.0]), |x| x.leaky_relu(0.1));
}

#[test]
fn elu_gradchecks_away_from_zero() {
    gradcheck_unary("elu", away_from(&[0.0]), |x| x.elu(0.7));
}

#[test]
fn sin_and_cos_gradcheck_on_random_shapes() {
    gradcheck_unary("sin", away_from(&[]), |x| x.sin());
    gradcheck_unary("cos", away_from(&[]), |x| x.cos());
}

#[test]
fn rsqrt_and_recip_gradcheck_on_random_shapes() {
    gradcheck_unary("rsqrt", uniform(0.3, 3.0), |x| x.rsqrt());
    gradcheck_unary("recip", uniform(0.3, 3.0), |x| x.recip());
    gradcheck_unary("recip of negatives", uniform(-3.3, 3.0), |x| x.recip());
}

/// The gradient of `op` at each of `xs` (a loss of `sum(op(x))`).
fn grad_at(xs: &[f32], op: impl for<'t> Fn(Var<'t>) -> Var<'t>) -> Vec<f32> {
    let x = Param::new("x", Tensor::from_vec(xs.to_vec(), &[xs.len()]));
    let tape = Tape::new(Mode::Train, 0);
    op(tape.param(&x)).sum().backward().get(&x).unwrap().data().to_vec()
}

#[test]
fn gradients_at_kinks_follow_torch() {
    // Values printed by torch 2.15.0 for the same inputs:
    // abs'(0) = abs'(-0) = 0.
    assert_eq!(grad_at(&[0.0, -0.0, 1.0, -2.0], |x| x.abs()), vec![0.0, 0.0, 1.0, -1.0]);
    // clamp(-1, 1): 0 at both bounds, 1 strictly inside, 0 outside.
    assert_eq!(grad_at(&[-1.0, 1.0, 0.5, 2.0, -2.0], |x| x.clamp(-1.0, 1.0)), vec![0.0, 0.0, 1.0, 0.0, 0.0]);
    // leaky_relu(0.1)'(0) = 0.1, elu(0.7)'(0) = 0.7.
    assert_eq!(grad_at(&[0.0, -0.0, 1.0], |x| x.leaky_relu(0.1)), vec![0.1, 0.1, 1.0]);
    assert_eq!(grad_at(&[0.0, -0.0, 1.0], |x| x.elu(0.7)), vec![0.7, 0.7, 1.0]);
}

#[test]
#[should_panic(expected = "clamp: min 2 must not exceed max 1 (input shape [3])")]
fn clamp_with_crossed_bounds_panics() {
    let tape = Tape::new(Mode::Train, 0);
    let _ = tape.constant(Tensor::zeros(&[3])).clamp(2.0, 1.0);
}

#[test]
fn minimum_and_maximum_gradcheck_with_broadcasting() {
    for seed in 0..4u64 {
        let (r, c) = (1 + draw(seed, 0, 4), 1 + draw(seed, 1, 4));
        // a: [r, c], b: [c]; values on a grid of step 0.25 shifted by 0.1 apart, so no pair
        // is within eps of a tie.
        let grid = |n: usize, off: u64, shift: f32| -> Vec<f32> {
            (0..n).map(|j| draw(seed, off + j as u64, 17) as f32 * 0.25 - 2.0 + shift).collect()
        };
        let mut a = Param::new("a", Tensor::from_vec(grid(r * c, 100, 0.0), &[r, c]));
        let mut b = Param::new("b", Tensor::from_vec(grid(c, 200, 0.1), &[c]));
        let w = Tensor::randn(&[r, c], 0.0, 1.0, &mut seeded(300 + seed));
        for is_max in [true, false] {
            let report = gradcheck(
                &mut [&mut a, &mut b],
                |tape, p| {
                    let (x, y) = (tape.param(&*p[0]), tape.param(&*p[1]));
                    let m = if is_max { x.maximum(y) } else { x.minimum(y) };
                    (m * tape.constant(w.clone())).sum()
                },
                GradcheckOptions::default(),
            );
            assert!(report.passed, "seed {seed}, max {is_max}, [{r}, {c}] with [{c}]: {report}");
        }
    }
}

#[test]
fn minimum_and_maximum_split_ties_half_and_half_like_torch() {
    // torch 2.15.0: maximum([1,2,3], [1,1,4]) gives grads [0.5,1,0] and [0.5,0,1];
    // minimum gives [0.5,0,1] and [0.5,1,0].
    let a = Param::new("a", Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
    let b = Param::new("b", Tensor::from_vec(vec![1.0, 1.0, 4.0], &[3]));
    for (is_max, ga, gb) in
        [(true, [0.5, 1.0, 0.0], [0.5, 0.0, 1.0]), (false, [0.5, 0.0, 1.0], [0.5, 1.0, 0.0])]
    {
        let tape = Tape::new(Mode::Train, 0);
        let (x, y) = (tape.param(&a), tape.param(&b));
        let m = if is_max { x.maximum(y) } else { x.minimum(y) };
        let grads = m.sum().backward();
        assert_eq!(grads.get(&a).unwrap().data(), &ga);
        assert_eq!(grads.get(&b).unwrap().data(), &gb);
    }
}

#[test]
#[should_panic(expected = "minimum: shapes [2, 3] and [2] cannot be broadcast together")]
fn minimum_shape_error_names_the_op() {
    let tape = Tape::new(Mode::Train, 0);
    let _ = tape.constant(Tensor::zeros(&[2, 3])).minimum(tape.constant(Tensor::zeros(&[2])));
}

#[test]
fn masked_fill_and_where_gradcheck_on_random_shapes() {
    for seed in 0..4u64 {
        let shape = [1 + draw(seed, 0, 4), 1 + draw(seed, 1, 4)];
        let n = shape[0] * shape[1];
        let mask: Vec<bool> = (0..n).map(|j| draw(seed, 10 + j as u64, 2) == 1).collect();
        let mut a = Param::new("a", Tensor::randn(&shape, 0.0, 1.0, &mut seeded(seed)));
        let mut b = Param::new("b", Tensor::randn(&shape, 0.0, 1.0, &mut seeded(50 + seed)));
        let w = Tensor::randn(&shape, 0.0, 1.0, &mut seeded(100 + seed));
        let report = gradcheck(
            &mut [&mut a, &mut b],
            |tape, p| {
                let (x, y) = (tape.param(&*p[0]), tape.param(&*p[1]));
                let m = Var::where_(&mask, &shape, x.tanh(), y.square())
                    + x.masked_fill(&mask, &shape, -1e9).sin();
                (m * tape.constant(w.clone())).sum()
            },
            GradcheckOptions::default(),
        );
        assert!(report.passed, "seed {seed}, shape {shape:?}, mask {mask:?}: {report}");
    }
}

#[test]
fn masked_fill_and_where_broadcast_their_mask_and_operands() {
    // A [3, 3] causal mask on [2, 2, 3, 3] scores; where_ of [2, 1] and [3] under a [1, 3] mask.
    let causal: Vec<bool> = (0..9).map(|i| i % 3 > i / 3).collect();
    let keep = [true, false, true];
    let mut s = Param::new("s", Tensor::randn(&[2, 2, 3, 3], 0.0, 1.0, &mut seeded(1)));
    let mut a = Param::new("a", Tensor::randn(&[2, 1], 0.0, 1.0, &mut seeded(2)));
    let mut b = Param::new("b", Tensor::randn(&[3], 0.0, 1.0, &mut seeded(3)));
    let w = Tensor::randn(&[2, 2, 3, 3], 0.0, 1.0, &mut seeded(4));
    let report = gradcheck(
        &mut [&mut s, &mut a, &mut b],
        |tape, p| {
            let (s, a, b) = (tape.param(&*p[0]), tape.param(&*p[1]), tape.param(&*p[2]));
            let masked = s.masked_fill(&causal, &[3, 3], -1e9).softmax(-1);
            let picked = Var::where_(&keep, &[1, 3], a.tanh(), b.square()); // [2, 3]
            (masked * tape.constant(w.clone())).sum() + (picked * picked).sum()
        },
        GradcheckOptions::default(),
    );
    assert!(report.passed, "{report}");
    let tape = Tape::inference();
    let picked = Var::where_(&keep, &[1, 3], tape.param(&a), tape.param(&b));
    assert_eq!(picked.shape(), [2, 3]);
    let (av, bv) = (a.value().data(), b.value().data());
    assert_eq!(picked.value().data(), &[av[0], bv[1], av[0], av[1], bv[1], av[1]]);
}

#[test]
#[should_panic(expected = "masked_fill: mask of shape [2] (2 values) does not broadcast to shape [2, 3]")]
fn masked_fill_with_a_mask_that_does_not_broadcast_panics() {
    let tape = Tape::new(Mode::Train, 0);
    let _ = tape.constant(Tensor::zeros(&[2, 3])).masked_fill(&[true; 2], &[2], 0.0);
}

#[test]
#[should_panic(
    expected = "where_: mask of shape [2] and operands of shapes [2, 3] and [3] do not broadcast together"
)]
fn where_with_shapes_that_do_not_broadcast_panics() {
    let tape = Tape::new(Mode::Train, 0);
    let (a, b) = (tape.constant(Tensor::zeros(&[2, 3])), tape.constant(Tensor::zeros(&[3])));
    let _ = Var::where_(&[true; 2], &[2], a, b);
}
