//! Issue 20's reductions along any axis, softmax family, cross-entropy of any rank and
//! gather, checked against central finite differences on random shapes (ranks 1 to 4, every
//! axis, counted from the front and from the back, with and without `keepdim`).

use adamant_autodiff::{gradcheck, CrossEntropy, GradcheckOptions, Mode, Param, Reduction, Tape, Var};
use adamant_tensor::{rng::seeded, Ids, Tensor};

/// `sum(y * r)` with a fixed random `r` of `y`'s shape: a scalar that weighs every element.
fn weigh(y: Var<'_>) -> Var<'_> {
    let r = Tensor::randn(&y.shape(), 0.0, 1.0, &mut seeded(999));
    (y * y.tape().constant(r)).sum()
}

fn check<F>(what: &str, params: &mut [&mut Param], f: F)
where
    F: for<'t> Fn(&'t Tape, &[&mut Param]) -> Var<'t>,
{
    let report = gradcheck(params, f, GradcheckOptions::default());
    assert!(report.passed, "{what}: {report}");
    assert!(report.checked > 0, "{what}: nothing checked");
}

/// A small deterministic generator for shapes and indices (xorshift).
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Random shapes: two of each rank 1 to 4, sizes 1 to 4.
fn shapes(seed: u64) -> Vec<Vec<usize>> {
    let mut d = Draw(seed);
    (1..=4).flat_map(|rank| [rank, rank]).map(|rank| (0..rank).map(|_| 1 + d.below(4)).collect()).collect()
}

/// Runs `f(shape, axis as given, axis resolved, keepdim)` for every shape of [`shapes`],
/// every axis, once as a `usize` and once negative, each with `keepdim` both ways.
fn for_each_case(seed: u64, f: impl Fn(&[usize], i32, usize, bool)) {
    for shape in shapes(seed) {
        let rank = shape.len() as i32;
        for axis in 0..rank {
            for (given, keepdim) in [(axis, false), (axis - rank, true), (axis, true), (axis - rank, false)] {
                f(&shape, given, axis as usize, keepdim);
            }
        }
    }
}

fn randn(name: &str, shape: &[usize], seed: u64) -> Param {
    Param::new(name, Tensor::randn(shape, 0.0, 1.0, &mut seeded(seed)))
}

/// Distinct values at least 0.1 apart (a shuffled grid), so that `+- eps` never reorders two
/// elements: max/min and their argument stay put.
fn distinct(name: &str, shape: &[usize], seed: u64) -> Param {
    let n: usize = shape.iter().product();
    let perm = Tensor::permutation(n, &mut seeded(seed));
    Param::new(
        name,
        Tensor::from_vec(perm.iter().map(|&p| p as f32 * 0.1 - 0.05 * n as f32).collect(), shape),
    )
}

#[test]
fn sum_and_mean_dim_on_every_axis() {
    for_each_case(1, |shape, axis, _, keepdim| {
        let mut x = randn("x", shape, 2);
        let what = format!("sum/mean_dim {shape:?} axis {axis} keepdim {keepdim}");
        check(&what, &mut [&mut x], move |t, p| {
            let x = t.param(&*p[0]);
            weigh(x.sum_dim(axis, keepdim)) + weigh(x.mean_dim(axis, keepdim))
        });
    });
}

#[test]
fn max_and_min_dim_on_every_axis() {
    for_each_case(3, |shape, axis, _, keepdim| {
        let mut x = distinct("x", shape, 4);
        let what = format!("max/min_dim {shape:?} axis {axis} keepdim {keepdim}");
        check(&what, &mut [&mut x], move |t, p| {
            let x = t.param(&*p[0]);
            weigh(x.max_dim(axis, keepdim)) + weigh(x.min_dim(axis, keepdim))
        });
    });
}

#[test]
fn logsumexp_on_every_axis() {
    for_each_case(5, |shape, axis, _, keepdim| {
        let mut x = randn("x", shape, 6);
        let what = format!("logsumexp {shape:?} axis {axis} keepdim {keepdim}");
        check(&what, &mut [&mut x], move |t, p| weigh(t.param(&*p[0]).logsumexp(axis, keepdim)));
    });
}

#[test]
fn var_and_std_on_every_axis() {
    for_each_case(7, |shape, axis, resolved, keepdim| {
        let mut x = randn("x", shape, 8);
        // The unbiased estimate of one element is NaN (as torch): only the biased one there.
        for unbiased in [false, true] {
            if unbiased && shape[resolved] == 1 {
                continue;
            }
            let what = format!("var/std {shape:?} axis {axis} unbiased {unbiased} keepdim {keepdim}");
            let n = shape[resolved];
            check(&what, &mut [&mut x], move |t, p| {
                let x = t.param(&*p[0]);
                let mut loss = weigh(x.var(axis, unbiased, keepdim));
                // A lane of one element has std 0, where the square root has no derivative.
                if n > 1 {
                    loss = loss + weigh(x.std(axis, unbiased, keepdim));
                }
                loss
            });
        }
    });
}

#[test]
fn norm_and_norm_dim_on_every_axis() {
    for_each_case(9, |shape, axis, _, keepdim| {
        let mut x = randn("x", shape, 10);
        let what = format!("norm_dim {shape:?} axis {axis} keepdim {keepdim}");
        check(&what, &mut [&mut x], move |t, p| {
            let x = t.param(&*p[0]);
            weigh(x.norm_dim(axis, keepdim)) + x.norm() * 0.7
        });
    });
}

#[test]
fn softmax_and_log_softmax_on_every_axis() {
    for_each_case(11, |shape, axis, _, keepdim| {
        if keepdim {
            return; // no keepdim here: run each axis twice, not four times
        }
        let mut x = randn("x", shape, 12);
        let what = format!("softmax {shape:?} axis {axis}");
        check(&what, &mut [&mut x], move |t, p| {
            let x = t.param(&*p[0]);
            weigh(x.softmax(axis)) + weigh(x.log_softmax(axis))
        });
    });
}

#[test]
fn gather_on_every_axis_with_repeats_and_a_smaller_index() {
    for_each_case(13, |shape, axis, resolved, keepdim| {
        let mut d = Draw(14 + shape.len() as u64);
        // keepdim picks the index's shape: the input's own, or one shorter along another axis
        // and twice as long along `axis` (so indices repeat).
        let ishape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                if !keepdim {
                    s
                } else if k == resolved {
                    2 * s
                } else {
                    s.div_ceil(2)
                }
            })
            .collect();
        let index =
            Ids::from_vec((0..ishape.iter().product()).map(|_| d.below(shape[resolved])).collect(), &ishape);
        let mut x = randn("x", shape, 15);
        let what = format!("gather {shape:?} axis {axis} index {ishape:?}");
        check(&what, &mut [&mut x], move |t, p| weigh(t.param(&*p[0]).gather(axis, &index)));
    });
}

#[test]
fn cross_entropy_of_any_rank_with_every_option() {
    let mut d = Draw(16);
    for shape in shapes(17) {
        let (lead, v) = (&shape[..shape.len() - 1], shape[shape.len() - 1] + 1);
        let mut full = lead.to_vec();
        full.push(v);
        let rows: usize = lead.iter().product();
        let targets = Ids::from_vec((0..rows).map(|_| d.below(v)).collect(), lead);
        let mut x = randn("x", &full, 18);
        let plain = targets.clone();
        check(&format!("cross_entropy {full:?}"), &mut [&mut x], move |t, p| {
            t.param(&*p[0]).cross_entropy(&plain)
        });
        for ignore_index in [None, Some(0)] {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                let opts = CrossEntropy { ignore_index, label_smoothing: 0.2, reduction };
                if opts.ignore_index.is_some() && targets.data().iter().all(|&t| t == 0) {
                    continue; // NaN mean: checked in the parity test
                }
                let ids = targets.data().to_vec();
                let what = format!("cross_entropy_with {full:?} {opts:?}");
                check(&what, &mut [&mut x], move |t, p| t.param(&*p[0]).cross_entropy_with(&ids, opts));
            }
        }
    }
}

#[test]
fn argmax_and_argmin_return_ids_of_the_reduced_shape() {
    let tape = Tape::new(Mode::Eval, 0);
    // [2, 3]: rows [1, 5, 5] and [4, -2, 4].
    let x = tape.constant(Tensor::from_vec(vec![1.0, 5.0, 5.0, 4.0, -2.0, 4.0], &[2, 3]));
    assert_eq!(x.argmax(-1, false), Ids::from_vec(vec![1, 0], &[2]));
    assert_eq!(x.argmin(1, true), Ids::from_vec(vec![0, 1], &[2, 1]));
    assert_eq!(x.argmax(0, true), Ids::from_vec(vec![1, 0, 0], &[1, 3]));
    assert_eq!(x.argmin(0, false), Ids::from_vec(vec![0, 1, 1], &[3]));
    // Ties: the gradient of max_dim goes to the first maximum only (index 1 of row 0).
    let w = Param::new("w", x.value());
    let tape = Tape::new(Mode::Train, 0);
    let grads = tape.param(&w).max_dim(1, false).sum().backward();
    assert_eq!(grads.get(&w).unwrap().data(), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn keepdim_shapes_and_the_old_axis_reductions() {
    let tape = Tape::new(Mode::Eval, 0);
    let x = tape.constant(Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut seeded(19)));
    assert_eq!(x.sum_dim(1, true).shape(), vec![2, 1, 4]);
    assert_eq!(x.mean_dim(-1, false).shape(), vec![2, 3]);
    assert_eq!(x.var(0, true, true).shape(), vec![1, 3, 4]);
    assert_eq!(x.logsumexp(-2, false).shape(), vec![2, 4]);
    assert_eq!(x.norm().shape(), Vec::<usize>::new());
    // sum_axis / mean_axis are sum_dim / mean_dim without keepdim.
    assert_eq!(x.sum_axis(1).value(), x.sum_dim(1, false).value());
    assert_eq!(x.mean_axis(2).value(), x.mean_dim(-1, false).value());
}

#[test]
#[should_panic(expected = "softmax: axis -4 is out of range for shape [2, 3, 4] (rank 3)")]
fn softmax_axis_out_of_range_panics() {
    let tape = Tape::new(Mode::Eval, 0);
    tape.constant(Tensor::zeros(&[2, 3, 4])).softmax(-4);
}

#[test]
#[should_panic(
    expected = "cross_entropy: targets of shape [3, 2] for logits [2, 3, 5] (want the leading shape [2, 3])"
)]
fn cross_entropy_targets_of_the_wrong_shape_panic() {
    let tape = Tape::new(Mode::Eval, 0);
    tape.constant(Tensor::zeros(&[2, 3, 5])).cross_entropy(&Ids::from_vec(vec![0; 6], &[3, 2]));
}

#[test]
#[should_panic(expected = "cross_entropy: 5 targets for logits [2, 3, 5] (want 6, the leading numel)")]
fn cross_entropy_wrong_target_count_panics() {
    let tape = Tape::new(Mode::Eval, 0);
    tape.constant(Tensor::zeros(&[2, 3, 5])).cross_entropy(&[0; 5]);
}
