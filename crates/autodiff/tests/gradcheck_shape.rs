//! The shape ops and batched matmul checked against central finite differences, on shapes
//! drawn at random (sizes 1 to 4, so that size-1 axes and odd sizes both occur) and on
//! compositions that a strided implementation would get wrong: a transpose followed by a
//! reshape, a permute followed by a concat, slices of slices.

mod common;

use adamant_autodiff::{Tape, Var};
use adamant_tensor::{rng::seeded, Tensor};
use common::{check, param, weigh};

/// A shape of `rank` sizes drawn from 1..=4 with `seed`.
fn random_shape(rank: usize, seed: u64) -> Vec<usize> {
    let u = Tensor::rand_uniform(&[rank], 1.0, 5.0, &mut seeded(seed));
    u.data().iter().map(|&v| (v as usize).clamp(1, 4)).collect()
}

#[test]
fn permute_and_transpose_on_random_shapes() {
    for seed in 0..4u64 {
        let shape = random_shape(4, seed);
        let mut a = param("a", &shape, 100 + seed);
        check(&mut [&mut a], |t, p| {
            let a = t.param(&*p[0]);
            weigh(a.permute(&[2, 0, 3, 1])) + weigh(a.transpose(-1, 1)) + weigh(a.transpose(0, 0))
        });
    }
}

#[test]
fn transpose_then_reshape_then_slice() {
    let mut a = param("a", &[3, 4, 5], 1);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        // [3, 4, 5] -> [5, 4, 3] -> [20, 3] -> rows 2, 5, 8, ... of it.
        let y = a.transpose(0, 2).reshape(&[-1, 3]).slice(0, 2.., 3);
        weigh(y.tanh())
    });
}

#[test]
fn permute_then_concat_then_split_and_chunk() {
    let mut a = param("a", &[2, 3, 4], 2);
    let mut b = param("b", &[4, 2, 1], 3);
    check(&mut [&mut a, &mut b], |t, p| {
        let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
        // a.permute -> [4, 2, 3]; with b [4, 2, 1] along the last axis -> [4, 2, 4].
        let c = Var::concat(&[a.permute(&[2, 0, 1]), b, a.permute(&[2, 0, 1]).narrow(2, 1, 1)], -1);
        let parts = c.split(3, 2); // sizes 3 and 2 of the 5
        let chunks = c.chunk(3, 0); // 2, 2 of the 4
        let sized = c.split_sizes(&[1, 0, 4], 2);
        weigh(parts[0])
            + weigh(parts[1].square())
            + weigh(chunks[1])
            + weigh(sized[2]) * 0.5
            + weigh(sized[0])
    });
}

#[test]
fn concat_on_random_shapes_and_axes() {
    for seed in 0..4u64 {
        let shape = random_shape(3, 10 + seed);
        let axis = seed as usize % 3;
        let mut other = shape.clone();
        other[axis] += 1;
        let mut a = param("a", &shape, 200 + seed);
        let mut b = param("b", &other, 300 + seed);
        check(&mut [&mut a, &mut b], move |t, p| {
            let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
            weigh(Var::concat(&[b, a, a], axis))
        });
    }
}

#[test]
fn stack_along_every_axis() {
    let mut a = param("a", &[2, 3], 4);
    let mut b = param("b", &[2, 3], 5);
    check(&mut [&mut a, &mut b], |t, p| {
        let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(Var::stack(&[a, b], 0)) + weigh(Var::stack(&[b, a, b], 1)) + weigh(Var::stack(&[a, b], -1))
    });
}

#[test]
fn narrow_slice_and_select() {
    for seed in 0..3u64 {
        let mut shape = random_shape(3, 20 + seed);
        shape[1] += 4; // at least 5 items along the sliced axis
        let mut a = param("a", &shape, 400 + seed);
        check(&mut [&mut a], |t, p| {
            let a = t.param(&*p[0]);
            weigh(a.narrow(1, 1, 3))
                + weigh(a.slice(1, 0..5, 2))
                + weigh(a.slice(-2, 1..=4, 3))
                + weigh(a.select(1, 4))
                + weigh(a.select(-1, 0).slice(0, .., 1))
        });
    }
}

#[test]
fn views_squeeze_unsqueeze_flatten() {
    let mut a = param("a", &[2, 1, 3, 4], 6);
    check(&mut [&mut a], |t, p| {
        let a = t.param(&*p[0]);
        let s = a.squeeze(1); // [2, 3, 4]
        weigh(s.unsqueeze(-1).permute(&[3, 2, 1, 0]))
            + weigh(a.flatten_range(1, 2).transpose(0, 1))
            + weigh(a.view(&[4, -1]))
            + weigh(a.flatten())
    });
}

#[test]
fn expand_and_broadcast_to_sum_back() {
    let mut a = param("a", &[3, 1], 7);
    let mut b = param("b", &[4], 8);
    check(&mut [&mut a, &mut b], |t, p| {
        let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(a.expand(&[2, -1, 5]))
            + weigh(b.broadcast_to(&[3, 4]).transpose(0, 1))
            + weigh(a.expand(&[3, 1]))
    });
}

#[test]
fn batched_matmul_with_broadcast_batches_and_transposes() {
    // [4, 1, m, k] @ [3, k, n] -> [4, 3, m, n]: a is shared by the 3, b by the 4.
    let mut a = param("a", &[4, 1, 2, 3], 9);
    let mut b = param("b", &[3, 3, 5], 10);
    check(&mut [&mut a, &mut b], |t, p| {
        let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
        weigh(a.matmul(b))
    });
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let sa: Vec<usize> = if ta { vec![2, 1, 4, 3] } else { vec![2, 1, 3, 4] };
        let sb: Vec<usize> = if tb { vec![1, 2, 5, 4] } else { vec![1, 2, 4, 5] };
        let mut a = param("a", &sa, 11);
        let mut b = param("b", &sb, 12);
        check(&mut [&mut a, &mut b], move |t, p| {
            let (a, b) = (t.param(&*p[0]), t.param(&*p[1]));
            weigh(a.matmul_t(b, ta, tb))
        });
    }
}

#[test]
fn batched_matmul_of_attention_shapes_and_row_folding() {
    // q @ k^T over [B, H, T, d], then @ v; and [B, T, C] @ [C, D] as one GEMM of B*T rows.
    let mut q = param("q", &[2, 2, 3, 4], 13);
    let mut kv = param("kv", &[2, 2, 3, 4], 14);
    let mut w = param("w", &[4, 3], 15);
    check(&mut [&mut q, &mut kv, &mut w], |t, p| {
        let (q, kv, w) = (t.param(&*p[0]), t.param(&*p[1]), t.param(&*p[2]));
        let att = q.matmul_nt(kv).tanh();
        weigh(att.matmul(kv))
            + weigh(q.matmul(w))
            + weigh(w.matmul_t(q, true, true))
            + weigh(w.transpose(0, 1).matmul(q.transpose(-1, -2)))
    });
}

#[test]
fn matmul_with_vectors_as_torch() {
    let mut v = param("v", &[4], 16);
    let mut m = param("m", &[2, 4, 3], 17);
    let mut u = param("u", &[3], 18);
    check(&mut [&mut v, &mut m, &mut u], |t, p| {
        let (v, m, u) = (t.param(&*p[0]), t.param(&*p[1]), t.param(&*p[2]));
        assert_eq!(v.matmul(m).shape(), vec![2, 3]);
        assert_eq!(m.matmul(u).shape(), vec![2, 4]);
        assert_eq!(v.matmul(v).shape(), Vec::<usize>::new());
        weigh(v.matmul(m)) + weigh(m.matmul(u)) + v.matmul(v) + weigh(m.matmul_t(v, true, false))
    });
}

/// A value of `shape` on a fresh tape, for the panic tests.
fn zeros<'t>(tape: &'t Tape, shape: &[usize]) -> Var<'t> {
    tape.constant(Tensor::zeros(shape))
}

#[test]
#[should_panic(expected = "matmul: batch axes do not broadcast: [2, 3, 4] @ [3, 4, 5]")]
fn matmul_with_incompatible_batches_names_the_shapes() {
    let tape = Tape::inference();
    zeros(&tape, &[2, 3, 4]).matmul(zeros(&tape, &[3, 4, 5]));
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ: [2, 3, 4] @ [2, 5, 4]")]
fn matmul_with_different_inner_dimensions_names_the_shapes() {
    let tape = Tape::inference();
    zeros(&tape, &[2, 3, 4]).matmul(zeros(&tape, &[2, 5, 4]));
}

#[test]
#[should_panic(expected = "concat: shapes [[2, 3], [3, 3]] differ in an axis other than axis 1")]
fn concat_of_mismatched_shapes_names_them() {
    let tape = Tape::inference();
    Var::concat(&[zeros(&tape, &[2, 3]), zeros(&tape, &[3, 3])], 1);
}

#[test]
#[should_panic(expected = "reshape: cannot view shape [2, 3] (6 elements) as [4, 2]")]
fn reshape_to_another_size_names_both_shapes() {
    let tape = Tape::inference();
    zeros(&tape, &[2, 3]).reshape(&[4, 2]);
}

#[test]
#[should_panic(expected = "slice: range 2..9 is out of bounds for axis 1 of shape [2, 5]")]
fn slice_past_the_axis_names_the_shape() {
    let tape = Tape::inference();
    zeros(&tape, &[2, 5]).slice(1, 2..9, 1);
}

#[test]
#[should_panic(expected = "permute: axes [0, 0, 1] are not a permutation of the axes of shape [2, 3, 4]")]
fn permute_with_a_repeated_axis_names_the_shape() {
    let tape = Tape::inference();
    zeros(&tape, &[2, 3, 4]).permute(&[0, 0, 1]);
}

#[test]
#[should_panic(expected = "broadcast_to: cannot broadcast shape [3, 2] to [3, 4]")]
fn expand_of_a_non_unit_axis_names_the_shapes() {
    let tape = Tape::inference();
    zeros(&tape, &[3, 2]).expand(&[3, 4]);
}

#[test]
fn squeeze_of_a_non_unit_axis_is_a_no_op_as_in_torch() {
    let tape = Tape::inference();
    assert_eq!(zeros(&tape, &[2, 3]).squeeze(0).shape(), vec![2, 3]);
    assert_eq!(zeros(&tape, &[2, 1]).squeeze(-1).shape(), vec![2]);
    assert_eq!(zeros(&tape, &[2, 3]).unsqueeze(2).shape(), vec![2, 3, 1]);
    assert_eq!(zeros(&tape, &[]).flatten_range(0, -1).shape(), vec![1]);
}

#[test]
fn linear_over_leading_axes_with_and_without_bias() {
    let (mut x, mut w, mut b) = (param("x", &[2, 3, 4], 40), param("w", &[5, 4], 41), param("b", &[5], 42));
    check(&mut [&mut x, &mut w, &mut b], |t, p| {
        weigh(t.param(&*p[0]).linear(t.param(&*p[1]), Some(t.param(&*p[2]))))
    });
    check(&mut [&mut x, &mut w], |t, p| weigh(t.param(&*p[0]).linear(t.param(&*p[1]), None)));
}

#[test]
fn linear_equals_reshape_matmul_and_bias_add_bit_for_bit() {
    // [4, 6, 40] rows against a [300, 40] weight: GEMMs with two K blocks in the backward's
    // input gradient (300 > 256), so the accumulation order matters.
    let (x, w, b) = (param("x", &[4, 6, 40], 43), param("w", &[300, 40], 44), param("b", &[300], 45));
    let run = |fused: bool| {
        let tape = Tape::new(adamant_autodiff::Mode::Train, 0);
        let (xv, wv, bv) = (tape.param(&x), tape.param(&w), tape.param(&b));
        let y = if fused {
            xv.linear(wv, Some(bv))
        } else {
            (xv.reshape(&[24, 40]).matmul_nt(wv) + bv).reshape(&[4, 6, 300])
        };
        let value = y.value();
        let grads = weigh(y).backward();
        let grad = |p: &adamant_autodiff::Param| grads.get(p).expect("a gradient").data().to_vec();
        (value, grad(&x), grad(&w), grad(&b))
    };
    let (fused, composed) = (run(true), run(false));
    assert_eq!(fused.0.shape(), &[4, 6, 300]);
    assert_eq!(fused.0.data(), composed.0.data());
    assert_eq!((&fused.1, &fused.2, &fused.3), (&composed.1, &composed.2, &composed.3));
}

#[test]
#[should_panic(expected = "linear: input [2, 3] and weight [4, 5] do not fit (the weight is [out, in])")]
fn linear_with_a_weight_of_the_wrong_width_names_the_shapes() {
    let tape = Tape::inference();
    let x = tape.constant(Tensor::zeros(&[2, 3]));
    x.linear(tape.constant(Tensor::zeros(&[4, 5])), None);
}
