//! Minibatches (`batch.rs`) and preprocessing (`preprocess.rs`) on small synthetic data.

use adamant_data::batch::{batches_per_epoch, BatchOptions, Batches};
use adamant_data::preprocess::{Normalizer, NormalizerOptions};
use adamant_data::Dataset;
use adamant_tensor::{rng, Tensor};

// ----- helpers ------------------------------------------------------------------------------

/// `n` examples of shape `[2, 3]` whose every value encodes (example, position), with label
/// `example % 10`, so any row of a batch can be traced back to its source.
fn tagged_dataset(n: usize) -> Dataset {
    let data = (0..n * 6).map(|i| (i / 6) as f32 * 1000.0 + (i % 6) as f32).collect();
    Dataset { images: Tensor::from_vec(data, &[n, 2, 3]), labels: (0..n).map(|i| i % 10).collect() }
}

fn options(batch_size: usize, shuffle: bool, drop_last: bool, seed: u64, epoch: u64) -> BatchOptions {
    BatchOptions { batch_size, shuffle, drop_last, seed, epoch }
}

/// Dataset positions in the order one epoch visits them, batch after batch.
fn visit_order(data: &Dataset, opts: BatchOptions) -> Vec<usize> {
    Batches::new(data, opts).flat_map(|b| b.indices).collect()
}

/// Mean and population std (f64) of each channel of `[N, C, ...]` data.
fn channel_moments(x: &Tensor) -> Vec<(f64, f64)> {
    let shape = x.shape();
    let (c, inner) = (shape[1], shape[2..].iter().product::<usize>());
    let mut values = vec![Vec::new(); c];
    for (i, plane) in x.data().chunks(inner).enumerate() {
        values[i % c].extend(plane.iter().map(|&v| v as f64));
    }
    values.iter().map(|v| moments(v)).collect()
}

fn moments(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
    (mean, var.sqrt())
}

// ----- batches ------------------------------------------------------------------------------

#[test]
fn every_example_appears_exactly_once_per_epoch() {
    let data = tagged_dataset(103);
    for epoch in 0..3 {
        let batches = Batches::new(&data, options(10, true, false, 42, epoch));
        assert_eq!(batches.len(), 11);
        let sizes: Vec<usize> = batches.clone().map(|b| b.len()).collect();
        assert_eq!(sizes, [vec![10; 10], vec![3]].concat());
        let mut seen = visit_order(&data, options(10, true, false, 42, epoch));
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<_>>(), "epoch {epoch}");
    }
}

#[test]
fn epochs_differ_and_seed_epoch_reproduces_the_order() {
    let data = tagged_dataset(200);
    let e0 = visit_order(&data, options(16, true, false, 7, 0));
    let e1 = visit_order(&data, options(16, true, false, 7, 1));
    let other_seed = visit_order(&data, options(16, true, false, 8, 0));
    assert_ne!(e0, e1);
    assert_ne!(e0, other_seed);
    // Epoch 5 built directly equals epoch 5 built after iterating through epochs 0..5.
    for epoch in 0..5 {
        let _ = visit_order(&data, options(16, true, false, 7, epoch));
    }
    let e5_again = visit_order(&data, options(16, true, false, 7, 5));
    assert_eq!(visit_order(&data, options(16, true, false, 7, 5)), e5_again);
    // The documented contract: the permutation drawn from the shuffle stream of the epoch.
    let expected = Tensor::permutation(200, &mut rng::stream(7, rng::Purpose::Shuffle, 5));
    assert_eq!(e5_again, expected);
    assert_eq!(Batches::new(&data, options(16, true, false, 7, 5)).order(), &expected[..]);
}

#[test]
fn drop_last_drops_only_the_partial_batch() {
    let data = tagged_dataset(103);
    let batches = Batches::new(&data, options(10, true, true, 1, 0));
    assert_eq!(batches.len(), 10);
    let all: Vec<Vec<usize>> = batches.map(|b| b.indices).collect();
    assert!(all.iter().all(|b| b.len() == 10));
    let mut seen: Vec<usize> = all.concat();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 100);
    // The 3 left out are the last 3 of this epoch's order.
    let order = Batches::new(&data, options(10, true, true, 1, 0)).order().to_vec();
    assert!(order[100..].iter().all(|i| seen.binary_search(i).is_err()));

    assert_eq!(batches_per_epoch(103, 10, true), 10);
    assert_eq!(batches_per_epoch(103, 10, false), 11);
    assert_eq!(batches_per_epoch(100, 10, false), 10);
    assert_eq!(batches_per_epoch(100, 10, true), 10);
    assert_eq!(batches_per_epoch(9, 10, true), 0);
    assert_eq!(batches_per_epoch(0, 10, false), 0);
    assert_eq!(Batches::new(&tagged_dataset(9), options(10, false, true, 0, 0)).count(), 0);
    assert_eq!(Batches::new(&tagged_dataset(9), options(10, false, false, 0, 0)).count(), 1);
    assert_eq!(Batches::new(&tagged_dataset(0), options(10, true, false, 0, 0)).count(), 0);
}

#[test]
fn without_shuffle_the_dataset_order_is_kept() {
    let data = tagged_dataset(57);
    assert_eq!(visit_order(&data, options(8, false, false, 3, 9)), (0..57).collect::<Vec<_>>());
}

#[test]
fn batch_contents_match_the_dataset_rows() {
    let data = tagged_dataset(50);
    let mut batches = Batches::new(&data, options(12, true, false, 11, 2));
    let mut left = batches.len();
    while let Some(batch) = batches.next() {
        left -= 1;
        assert_eq!(batches.len(), left, "len() counts the batches still to come");
        assert_eq!(batch.images.shape(), &[batch.len(), 2, 3]);
        for (k, &i) in batch.indices.iter().enumerate() {
            assert_eq!(batch.labels[k], data.labels[i]);
            let row = &batch.images.data()[k * 6..(k + 1) * 6];
            let want: Vec<f32> = (0..6).map(|j| i as f32 * 1000.0 + j as f32).collect();
            assert_eq!(row, &want[..], "row {k} of the batch should be example {i}");
        }
    }
    assert_eq!(left, 0);
    assert!(batches.next().is_none(), "the iterator stays exhausted");
}

#[test]
#[should_panic(expected = "batch_size must be at least 1")]
fn batch_size_zero_is_a_clear_panic() {
    let data = tagged_dataset(5);
    let _ = Batches::new(&data, options(0, true, false, 0, 0));
}

// ----- normalizer ---------------------------------------------------------------------------

/// `[n, 3, 4, 5]` images whose channels have very different means and spreads.
fn three_channel_images(n: usize, seed: u64, shift: f32) -> Tensor {
    let u = Tensor::rand_uniform(&[n, 3, 4, 5], 0.0, 1.0, &mut rng::seeded(seed));
    let data = u.data().iter().enumerate().map(|(i, &v)| {
        let c = (i / 20) % 3;
        v * (c as f32 + 1.0) * 0.2 + c as f32 * 0.3 + shift
    });
    Tensor::from_vec(data.collect(), &[n, 3, 4, 5])
}

#[test]
fn per_channel_normalizer_gives_zero_mean_unit_std_on_the_training_data() {
    let train = three_channel_images(300, 1, 0.0);
    let norm = Normalizer::fit_per_channel(&train, NormalizerOptions::default());
    assert_eq!(norm.channels(), Some(3));
    let before = channel_moments(&train);
    for (c, &(m, s)) in before.iter().enumerate() {
        assert!((norm.mean()[c] - m).abs() < 1e-9, "channel {c}: mean {} vs {m}", norm.mean()[c]);
        assert!((norm.std()[c] - s).abs() < 1e-9, "channel {c}: std {} vs {s}", norm.std()[c]);
    }
    let out = norm.apply(&train);
    assert_eq!(out.shape(), train.shape());
    for (c, (m, s)) in channel_moments(&out).into_iter().enumerate() {
        assert!(m.abs() < 1e-5, "channel {c}: mean {m}");
        assert!((s - 1.0).abs() < 1e-5, "channel {c}: std {s}");
    }
}

#[test]
fn per_channel_on_flat_rows_is_per_feature_and_global_is_one_statistic() {
    let x = correlated(500, 7, 3);
    let per_feature = Normalizer::fit_per_channel(&x, NormalizerOptions::default());
    assert_eq!(per_feature.mean().len(), 7);
    for (j, (m, s)) in channel_moments(&per_feature.apply(&x)).into_iter().enumerate() {
        assert!(m.abs() < 1e-5 && (s - 1.0).abs() < 1e-5, "feature {j}: mean {m}, std {s}");
    }

    let global = Normalizer::fit_global(&x, NormalizerOptions::default());
    assert_eq!((global.channels(), global.mean().len(), global.std().len()), (None, 1, 1));
    let all: Vec<f64> = x.data().iter().map(|&v| v as f64).collect();
    let (m, s) = moments(&all);
    assert!((global.mean()[0] - m).abs() < 1e-9 && (global.std()[0] - s).abs() < 1e-9);
    let out = global.apply(&x);
    let (m, s) = moments(&out.data().iter().map(|&v| v as f64).collect::<Vec<_>>());
    assert!(m.abs() < 1e-5 && (s - 1.0).abs() < 1e-5, "global: mean {m}, std {s}");
    // One statistic for all features: the features keep their differences in mean.
    let means: Vec<f64> = channel_moments(&out).iter().map(|p| p.0).collect();
    assert!(means.iter().any(|m| m.abs() > 0.01), "{means:?}");
}

#[test]
fn normalizer_applies_the_training_statistics_to_other_data() {
    let train = three_channel_images(200, 4, 0.0);
    let test = three_channel_images(50, 5, 0.25);
    let norm = Normalizer::fit_per_channel(&train, NormalizerOptions::default());
    let out = norm.apply(&test);
    let stats = channel_moments(&train);
    for (i, (&x, &y)) in test.data().iter().zip(out.data()).enumerate() {
        let (m, s) = stats[(i / 20) % 3];
        let want = (x as f64 - m) / s;
        assert!((y as f64 - want).abs() < 1e-5, "element {i}: {y} vs {want}");
    }
    // The test set was shifted by 0.25: its normalised means are 0.25 / std, not 0.
    for (c, (m, _)) in channel_moments(&out).into_iter().enumerate() {
        let want = (channel_moments(&test)[c].0 - stats[c].0) / stats[c].1;
        assert!((m - want).abs() < 1e-5 && want > 0.1, "channel {c}: {m} vs {want}");
    }
}

#[test]
fn constant_channels_are_divided_by_the_floor_not_by_zero() {
    let mut x = three_channel_images(10, 6, 0.0).into_vec();
    for (i, v) in x.iter_mut().enumerate() {
        if (i / 20) % 3 == 1 {
            *v = 0.3;
        }
    }
    let train = Tensor::from_vec(x, &[10, 3, 4, 5]);
    let norm = Normalizer::fit_per_channel(&train, NormalizerOptions { min_std: 0.01 });
    assert_eq!(norm.std()[1], 0.01);
    let out = norm.apply(&train);
    assert!(out.data().iter().all(|v| v.is_finite()));
    let moved = norm.apply(&train.map(|v| v + 0.02));
    for (i, &y) in moved.data().iter().enumerate() {
        if (i / 20) % 3 == 1 {
            assert!((y - 2.0).abs() < 1e-4, "element {i}: {y}");
        }
    }
}

#[test]
#[should_panic(expected = "fitted per channel on 3 channels")]
fn normalizer_rejects_a_different_channel_count() {
    let norm = Normalizer::fit_per_channel(&three_channel_images(4, 1, 0.0), NormalizerOptions::default());
    let _ = norm.apply(&Tensor::zeros(&[2, 4, 4, 5]));
}

/// `[n, d]` data with strongly correlated features and a non-zero mean: `z A + offset` with
/// `z` standard normal and `A` the identity plus a shared component and random noise.
fn correlated(n: usize, d: usize, seed: u64) -> Tensor {
    let z = Tensor::randn(&[n, d], 0.0, 1.0, &mut rng::seeded(seed));
    let noise = Tensor::randn(&[d, d], 0.0, 0.3, &mut rng::seeded(seed + 1000));
    let a: Vec<f32> =
        (0..d * d).map(|i| noise.data()[i] + 0.8 + if i / d == i % d { 1.0 } else { 0.0 }).collect();
    let mut x = vec![0.0f32; n * d];
    for r in 0..n {
        for k in 0..d {
            let zk = z.data()[r * d + k];
            for j in 0..d {
                x[r * d + j] += zk * a[k * d + j];
            }
        }
    }
    for (i, v) in x.iter_mut().enumerate() {
        *v = 0.5 + 0.1 * *v + 0.01 * (i % d) as f32;
    }
    Tensor::from_vec(x, &[n, d])
}

// ----- ZCA (cargo feature `zca`) -----------------------------------------------------------

#[cfg(feature = "zca")]
mod zca {
    use super::*;
    use adamant_data::preprocess::{Zca, ZcaOptions};
    use adamant_tensor::kernels::parallel::{with_mode, Mode};

    /// Biased covariance `X_c^T X_c / n` of row-major `[n, d]` data, naively in f64.
    fn covariance(x: &[f32], n: usize, d: usize) -> Vec<f64> {
        let mut mean = vec![0.0; d];
        for row in x.chunks(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64 / n as f64;
            }
        }
        let mut cov = vec![0.0; d * d];
        for row in x.chunks(d) {
            let c: Vec<f64> = row.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += c[i] * c[j];
                }
            }
        }
        cov.iter().map(|v| v / n as f64).collect()
    }

    /// Row-major `[d, d]` product in f64.
    fn matmul64(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
        let mut out = vec![0.0; d * d];
        for i in 0..d {
            for k in 0..d {
                let aik = a[i * d + k];
                for j in 0..d {
                    out[i * d + j] += aik * b[k * d + j];
                }
            }
        }
        out
    }

    fn max_abs_from_identity(m: &[f64], d: usize) -> f64 {
        (0..d * d).map(|i| (m[i] - if i / d == i % d { 1.0 } else { 0.0 }).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn zca_whitened_training_covariance_is_the_identity_up_to_epsilon() {
        let (n, d) = (3000, 12);
        let x = correlated(n, d, 10);
        let cov = covariance(x.data(), n, d);
        let max_corr = (0..d * d)
            .filter(|i| i / d != i % d)
            .map(|i| cov[i].abs() / (cov[(i / d) * (d + 1)] * cov[(i % d) * (d + 1)]).sqrt())
            .fold(0.0, f64::max);
        assert!(max_corr > 0.5, "the synthetic features should be correlated, max |corr| = {max_corr}");

        let epsilon = 1e-8;
        let zca = Zca::fit(&x, ZcaOptions { epsilon });
        let lambda_min = zca.eigenvalues()[0];
        assert!(lambda_min > 1e-4, "smallest eigenvalue {lambda_min}");
        let white = zca.apply(&x);
        assert_eq!(white.shape(), &[n, d]);
        // Whitened variance along eigenvector i is lambda_i / (lambda_i + epsilon): the largest
        // deviation from 1 is epsilon / (lambda_min + epsilon), plus f32 rounding.
        let tol = epsilon / (lambda_min + epsilon) + 5e-5;
        let dev = max_abs_from_identity(&covariance(white.data(), n, d), d);
        assert!(dev < tol, "whitened covariance differs from I by {dev} (tolerance {tol})");
        // ... and the whitened data has zero mean.
        for (j, (m, _)) in channel_moments(&white).into_iter().enumerate() {
            assert!(m.abs() < 1e-5, "feature {j}: mean {m}");
        }
    }

    #[test]
    fn zca_matrix_is_symmetric_and_inverts_the_regularised_covariance() {
        // Sizes past one covariance block (512 rows), one band (256 features) and one apply block
        // (1024 rows), so every boundary of the blocked code is crossed.
        let (n, d) = (1100, 300);
        let x = correlated(n, d, 20);
        let epsilon = 0.05;
        let zca = Zca::fit(&x, ZcaOptions { epsilon });
        let w = zca.matrix();
        assert_eq!(w.shape(), &[d, d]);
        for i in 0..d {
            for j in 0..i {
                assert_eq!(w.data()[i * d + j], w.data()[j * d + i], "W[{i},{j}] vs W[{j},{i}]");
            }
        }
        // W = U (L + eps)^-1/2 U^T, so W (C + eps I) W = I whatever the eigenvectors.
        let mut c = covariance(x.data(), n, d);
        for i in 0..d {
            c[i * d + i] += epsilon;
        }
        let w64: Vec<f64> = w.data().iter().map(|&v| v as f64).collect();
        let dev = max_abs_from_identity(&matmul64(&matmul64(&w64, &c, d), &w64, d), d);
        assert!(dev < 1e-4, "W (C + eps I) W differs from I by {dev}");
        // Eigenvalues ascending, and the trace of the whitened covariance is
        // sum lambda / (lambda + eps).
        assert!(zca.eigenvalues().windows(2).all(|p| p[0] <= p[1]));
        let white = zca.apply(&x);
        let cw = covariance(white.data(), n, d);
        let trace: f64 = (0..d).map(|i| cw[i * d + i]).sum();
        let want: f64 = zca.eigenvalues().iter().map(|&l| l.max(0.0) / (l.max(0.0) + epsilon)).sum();
        assert!((trace - want).abs() < 1e-5 * want, "trace {trace} vs {want}");
    }

    #[test]
    fn zca_applies_the_training_statistics_to_other_data_and_keeps_the_shape() {
        let (n, d) = (800, 12);
        let train = correlated(n, d, 30).reshape(&[n, 3, 2, 2]);
        let zca = Zca::fit(&train, ZcaOptions::default());
        assert_eq!(zca.dim(), d);
        let means: Vec<f64> = (0..d)
            .map(|j| train.data().iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n as f64)
            .collect();
        for (j, (got, want)) in zca.mean().iter().zip(&means).enumerate() {
            assert!((got - want).abs() < 1e-9, "feature {j}: mean {got} vs {want}");
        }
        // Other data, shifted by 1 in every feature.
        let test = correlated(100, d, 31).map(|v| v + 1.0).reshape(&[100, 3, 2, 2]);
        let out = zca.apply(&test);
        assert_eq!(out.shape(), &[100, 3, 2, 2]);
        let w = zca.matrix().data();
        for r in 0..100 {
            for j in 0..d {
                let want: f64 = (0..d)
                    .map(|k| (test.data()[r * d + k] as f64 - zca.mean()[k]) * w[k * d + j] as f64)
                    .sum();
                let got = out.data()[r * d + j] as f64;
                assert!(
                    (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "row {r}, feature {j}: {got} vs {want}"
                );
            }
        }
        // Centred on the training mean, the shifted set does not come out centred.
        let out_means = channel_moments(&out.reshape(&[100, d]));
        assert!(out_means.iter().any(|(m, _)| m.abs() > 0.5), "{out_means:?}");
    }

    #[test]
    fn zca_fit_and_apply_do_not_depend_on_the_thread_count() {
        let x = correlated(1100, 130, 40);
        let serial = with_mode(Mode::Serial, || Zca::fit(&x, ZcaOptions::default()));
        let parallel = with_mode(Mode::Parallel, || Zca::fit(&x, ZcaOptions::default()));
        assert_eq!(serial.matrix(), parallel.matrix());
        assert_eq!(serial.eigenvalues(), parallel.eigenvalues());
        let a = with_mode(Mode::Serial, || serial.apply(&x));
        let b = with_mode(Mode::Parallel, || serial.apply(&x));
        assert_eq!(a, b);
    }

    #[test]
    #[should_panic(expected = "epsilon must be positive")]
    fn zca_rejects_a_zero_epsilon() {
        let _ = Zca::fit(&correlated(10, 3, 1), ZcaOptions { epsilon: 0.0 });
    }

    #[test]
    #[should_panic(expected = "fitted on 3 features per example")]
    fn zca_rejects_data_with_another_feature_count() {
        let zca = Zca::fit(&correlated(10, 3, 1), ZcaOptions::default());
        let _ = zca.apply(&Tensor::zeros(&[2, 4]));
    }

    /// Times the fit and the application on CIFAR-10's training shape (random pixels; the time
    /// depends on the shape only). Run with
    /// `cargo test --release -p adamant-data -- --ignored --nocapture zca_timing`.
    #[test]
    #[ignore = "slow: ZCA timing on CIFAR-10 shapes"]
    fn zca_timing_on_cifar10_shapes() {
        let (n, d) = (50_000, 3 * 32 * 32);
        let x = Tensor::rand_uniform(&[n, 3, 32, 32], 0.0, 1.0, &mut rng::seeded(1));
        let start = std::time::Instant::now();
        let zca = Zca::fit(&x, ZcaOptions::default());
        let fit = start.elapsed();
        let start = std::time::Instant::now();
        let white = zca.apply(&x);
        let apply = start.elapsed();
        println!("ZCA on [{n}, 3, 32, 32]: fit {fit:.2?}, apply {apply:.2?}");
        assert_eq!(white.shape(), x.shape());
        // Uniform pixels have variance 1/12; with N/D = 16.3 the sample covariance's eigenvalues
        // lie within the Marchenko-Pastur bounds (1 +- sqrt(D/N))^2 / 12 = [0.047, 0.130].
        let (lo, hi) = (zca.eigenvalues()[0], zca.eigenvalues()[d - 1]);
        assert!(lo > 0.04 && hi < 0.14, "eigenvalues in [{lo}, {hi}]");
        assert!(fit.as_secs_f64() < 120.0, "fitting ZCA took {fit:?}, budget 2 minutes");
    }
}
