//! Scaled dot-product attention checked against central finite differences: plain, causal,
//! with boolean and additive masks that broadcast, with dropout on the weights (one mask per
//! tape seed), and self-attention with one `Var` as query, key and value.

mod common;

use adamant_autodiff::{gradcheck, Attention, AttentionMask, GradcheckOptions, Mode, Tape};
use adamant_tensor::Tensor;
use common::{param, weigh};

fn check_qkv(q_shape: &[usize], k_shape: &[usize], v_shape: &[usize], options: Attention<'_>) {
    let mut q = param("q", q_shape, 1);
    let mut k = param("k", k_shape, 2);
    let mut v = param("v", v_shape, 3);
    let report = gradcheck(
        &mut [&mut q, &mut k, &mut v],
        |t, p| {
            weigh(t.param(&*p[0]).scaled_dot_product_attention(t.param(&*p[1]), t.param(&*p[2]), &options))
        },
        GradcheckOptions::default(),
    );
    assert!(report.passed, "{report}");
}

#[test]
fn plain_attention_over_batch_and_heads() {
    check_qkv(&[2, 3, 4, 5], &[2, 3, 6, 5], &[2, 3, 6, 3], Attention::default());
}

#[test]
fn causal_attention_with_a_custom_scale() {
    check_qkv(
        &[3, 5, 4],
        &[3, 5, 4],
        &[3, 5, 2],
        Attention { causal: true, scale: Some(0.3), ..Attention::default() },
    );
}

#[test]
fn masks_broadcast_over_the_leading_axes() {
    // A [t, s] boolean mask shared by every batch entry and head, one row half masked.
    let keep = [true, false, true, true, true, true, false, false, true, true, true, true];
    let bool_mask =
        Attention { mask: Some(AttentionMask::Bool { keep: &keep, shape: &[3, 4] }), ..Attention::default() };
    check_qkv(&[2, 2, 3, 5], &[2, 2, 4, 5], &[2, 2, 4, 3], bool_mask);
    // A per-example additive mask [2, 1, 1, 4] (a padding mask), finite values.
    let bias = Tensor::from_vec(vec![0.0, -1.0, 0.5, -3.0, 0.0, 0.0, -2.0, 1.0], &[2, 1, 1, 4]);
    let additive = Attention { mask: Some(AttentionMask::Additive(&bias)), ..Attention::default() };
    check_qkv(&[2, 2, 3, 5], &[2, 2, 4, 5], &[2, 2, 4, 3], additive);
}

#[test]
fn dropout_on_the_weights_is_one_fixed_mask_per_tape_seed() {
    check_qkv(&[2, 4, 3], &[2, 5, 3], &[2, 5, 2], Attention { dropout_p: 0.3, ..Attention::default() });
    // The same seed draws the same mask; evaluation never drops.
    let (q, k, v) = (param("q", &[1, 6, 4], 4), param("k", &[1, 6, 4], 5), param("v", &[1, 6, 4], 6));
    let run = |mode, seed| {
        let tape = Tape::new(mode, seed);
        let drop = Attention { dropout_p: 0.5, ..Attention::default() };
        tape.param(&q).scaled_dot_product_attention(tape.param(&k), tape.param(&v), &drop).value()
    };
    assert_eq!(run(Mode::Train, 1), run(Mode::Train, 1));
    assert_ne!(run(Mode::Train, 1), run(Mode::Train, 2));
    let tape = Tape::inference();
    let plain =
        tape.param(&q).scaled_dot_product_attention(tape.param(&k), tape.param(&v), &Attention::default());
    assert_eq!(run(Mode::Eval, 1), plain.value());
}

#[test]
fn self_attention_with_one_var_as_query_key_and_value() {
    let mut x = param("x", &[2, 4, 3], 7);
    let report = gradcheck(
        &mut [&mut x],
        |t, p| {
            let x = t.param(&*p[0]);
            weigh(x.scaled_dot_product_attention(x, x, &Attention { causal: true, ..Attention::default() }))
        },
        GradcheckOptions::default(),
    );
    assert!(report.passed, "{report}");
}

#[test]
#[should_panic(
    expected = "scaled_dot_product_attention: mask of shape [3, 3] does not broadcast to the scores' shape [2, 3, 4]"
)]
fn a_mask_of_the_wrong_shape_names_both_shapes() {
    let tape = Tape::inference();
    let (q, k) = (tape.constant(Tensor::zeros(&[2, 3, 5])), tape.constant(Tensor::zeros(&[2, 4, 5])));
    let keep = [true; 9];
    let options =
        Attention { mask: Some(AttentionMask::Bool { keep: &keep, shape: &[3, 3] }), ..Attention::default() };
    q.scaled_dot_product_attention(k, k, &options);
}

/// The route `packed_self_attention` replaces: split `qkv [B, T, 3C]` into heads, attend,
/// merge the heads.
fn split_route<'t>(
    qkv: adamant_autodiff::Var<'t>,
    heads: usize,
    options: &Attention<'_>,
) -> adamant_autodiff::Var<'t> {
    let shape = qkv.shape();
    let (b, t, c) = (shape[0], shape[1], shape[2] / 3);
    let parts = qkv.chunk(3, -1);
    let split = |z: adamant_autodiff::Var<'t>| z.reshape(&[b, t, heads, c / heads]).transpose(1, 2);
    let attended = split(parts[0]).scaled_dot_product_attention(split(parts[1]), split(parts[2]), options);
    attended.transpose(1, 2).reshape(&[b, t, c])
}

#[test]
fn packed_self_attention_passes_gradcheck() {
    // qkv [2, 4, 3 x 6]: 2 heads of width 3; causal, masked (a [4, 4] mask broadcast over
    // examples and heads) and with dropout.
    let keep: Vec<bool> = (0..16).map(|n| n % 5 != 3).collect();
    let masked =
        Attention { mask: Some(AttentionMask::Bool { keep: &keep, shape: &[4, 4] }), ..Attention::default() };
    let causal = Attention { causal: true, scale: Some(0.4), ..Attention::default() };
    let dropped = Attention { causal: true, dropout_p: 0.3, ..Attention::default() };
    for options in [causal, masked, dropped] {
        let mut qkv = param("qkv", &[2, 4, 18], 8);
        let report = gradcheck(
            &mut [&mut qkv],
            |t, p| weigh(t.param(&*p[0]).packed_self_attention(2, &options)),
            GradcheckOptions::default(),
        );
        assert!(report.passed, "{report}");
    }
}

#[test]
fn packed_self_attention_equals_the_split_route_bit_for_bit() {
    // Values and gradients, causal and with an additive mask; qkv [3, 7, 3 x 8], 4 heads.
    // (With dropout the masks differ: a node's key depends on its place on the tape.)
    let bias = Tensor::randn(&[1, 4, 7, 7], 0.0, 1.0, &mut adamant_tensor::rng::seeded(5));
    let causal = Attention { causal: true, ..Attention::default() };
    let masked = Attention { mask: Some(AttentionMask::Additive(&bias)), ..Attention::default() };
    let qkv = param("qkv", &[3, 7, 24], 9);
    for options in [causal, masked] {
        let run = |packed: bool| {
            let tape = Tape::new(Mode::Train, 17);
            let x = tape.param(&qkv);
            let y = if packed { x.packed_self_attention(4, &options) } else { split_route(x, 4, &options) };
            let value = y.value();
            let grads = weigh(y).backward();
            (value, grads.get(&qkv).expect("qkv has a gradient").clone())
        };
        let ((v1, g1), (v2, g2)) = (run(true), run(false));
        assert_eq!(v1.shape(), &[3, 7, 8]);
        assert_eq!(v1.data(), v2.data());
        assert_eq!(g1.data(), g2.data());
    }
}
