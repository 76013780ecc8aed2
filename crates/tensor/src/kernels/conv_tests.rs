//! Tests of `conv.rs`: im2col/col2im against index loops, the convolution against a direct
//! sum, the backward against its definition, parallel = serial.

use super::*;
use crate::kernels::parallel::{with_mode, Mode};
use crate::testing::randn;

/// Index of (c, iy, ix) in a [C, H, W] image, or None where that position is padding.
fn at(g: &Conv2dGeometry, c: usize, iy: isize, ix: isize) -> Option<usize> {
    if iy < 0 || ix < 0 || iy >= g.height as isize || ix >= g.width as isize {
        None
    } else {
        Some((c * g.height + iy as usize) * g.width + ix as usize)
    }
}

fn input_pos(g: &Conv2dGeometry, oy: usize, ox: usize, ki: usize, kj: usize) -> (isize, isize) {
    ((oy * g.stride_h + ki) as isize - g.pad_h as isize, (ox * g.stride_w + kj) as isize - g.pad_w as isize)
}

fn naive_im2col(image: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut col = vec![0.0; g.col_rows() * oh * ow];
    for c in 0..g.channels {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let row = (c * g.kernel_h + ki) * g.kernel_w + kj;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (iy, ix) = input_pos(g, oy, ox, ki, kj);
                        col[row * oh * ow + oy * ow + ox] = at(g, c, iy, ix).map_or(0.0, |i| image[i]);
                    }
                }
            }
        }
    }
    col
}

fn naive_col2im(col: &[f32], g: &Conv2dGeometry, image: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for c in 0..g.channels {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let row = (c * g.kernel_h + ki) * g.kernel_w + kj;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (iy, ix) = input_pos(g, oy, ox, ki, kj);
                        if let Some(i) = at(g, c, iy, ix) {
                            image[i] += col[row * oh * ow + oy * ow + ox];
                        }
                    }
                }
            }
        }
    }
}

fn geometries() -> Vec<Conv2dGeometry> {
    let rect = Conv2dGeometry {
        channels: 2,
        height: 6,
        width: 9,
        kernel_h: 3,
        kernel_w: 2,
        stride_h: 2,
        stride_w: 3,
        pad_h: 1,
        pad_w: 0,
    };
    vec![
        Conv2dGeometry::new(1, 7, 5, 5, 1, 2),
        Conv2dGeometry::new(3, 7, 5, 5, 1, 2),
        Conv2dGeometry::new(1, 7, 5, 3, 2, 1),
        Conv2dGeometry::new(3, 8, 8, 3, 2, 1),
        Conv2dGeometry::new(1, 7, 5, 1, 1, 0),
        Conv2dGeometry::new(3, 5, 7, 1, 1, 0),
        Conv2dGeometry::new(3, 1, 1, 1, 1, 0),
        Conv2dGeometry::new(2, 4, 6, 3, 1, 0),
        Conv2dGeometry::new(2, 3, 3, 5, 1, 2),
        Conv2dGeometry::new(1, 2, 2, 3, 1, 3),
        // Stride-1 "same" shapes (the shifted-plane path of im2col), incl. a 1-row image.
        Conv2dGeometry::new(2, 6, 4, 3, 1, 1),
        Conv2dGeometry::new(1, 1, 6, 3, 1, 1),
        Conv2dGeometry::new(2, 9, 3, 7, 1, 3),
        rect,
    ]
}

#[test]
fn geometry_sizes_follow_pytorch() {
    let g = Conv2dGeometry::new(3, 32, 32, 5, 1, 2);
    assert_eq!((g.out_h(), g.out_w()), (32, 32));
    assert_eq!((g.col_rows(), g.col_cols()), (75, 1024));
    let g = Conv2dGeometry::new(1, 7, 5, 3, 2, 1);
    assert_eq!((g.out_h(), g.out_w()), (4, 3));
    let g = Conv2dGeometry::new(2, 28, 28, 5, 1, 0);
    assert_eq!((g.out_h(), g.out_w()), (24, 24));
    let g = Conv2dGeometry::new(1, 8, 8, 3, 3, 0);
    assert_eq!((g.out_h(), g.out_w()), (2, 2));
}

#[test]
#[should_panic(expected = "Conv2dGeometry: height kernel 5 is larger than the padded height 4")]
fn geometry_kernel_too_large_panics() {
    Conv2dGeometry::new(1, 4, 9, 5, 1, 0);
}

#[test]
#[should_panic(expected = "stride 0 must be positive")]
fn geometry_zero_stride_panics() {
    Conv2dGeometry::new(1, 4, 4, 3, 0, 0);
}

#[test]
fn im2col_matches_naive() {
    for (s, g) in geometries().iter().enumerate() {
        let image = randn(g.image_len(), 10 + s as u64);
        let mut col = vec![f32::NAN; g.col_rows() * g.col_cols()];
        im2col(&image, g, &mut col);
        assert_eq!(col, naive_im2col(&image, g), "{g:?}");
    }
}

#[test]
fn im2col_padding_is_zero() {
    // All-ones image, 3x3 kernel, pad 1: the top-left output's column has zeros exactly
    // where the window hangs off the image.
    let g = Conv2dGeometry::new(1, 4, 4, 3, 1, 1);
    let mut col = vec![7.0; g.col_rows() * g.col_cols()];
    im2col(&[1.0; 16], &g, &mut col);
    let first_col: Vec<f32> = (0..9).map(|r| col[r * 16]).collect();
    assert_eq!(first_col, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
}

#[test]
fn col2im_matches_naive_and_accumulates() {
    for (s, g) in geometries().iter().enumerate() {
        let col = randn(g.col_rows() * g.col_cols(), 30 + s as u64);
        let start = randn(g.image_len(), 50 + s as u64);
        let mut got = start.clone();
        col2im(&col, g, &mut got);
        let mut want = start.clone();
        naive_col2im(&col, g, &mut want);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{g:?}: {a} vs {b}");
        }
    }
}

#[test]
fn empty_image_axis_gives_all_padding_columns() {
    // Zero-width image with padding: every cell of col is padding.
    let g = Conv2dGeometry::new(2, 3, 0, 3, 1, 2);
    assert_eq!((g.out_h(), g.out_w()), (5, 2));
    let mut col = vec![f32::NAN; g.col_rows() * g.col_cols()];
    im2col(&[], &g, &mut col);
    assert!(col.iter().all(|&v| v == 0.0));
    col2im(&col, &g, &mut []);
}

#[test]
fn col2im_counts_overlaps() {
    // col of ones: each pixel receives how many windows cover it.
    let g = Conv2dGeometry::new(1, 3, 3, 2, 1, 0);
    let mut img = vec![0.0; 9];
    col2im(&[1.0; 16], &g, &mut img);
    assert_eq!(img, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
}

#[test]
fn im2col_col2im_adjoint_identity() {
    for (s, g) in geometries().iter().enumerate() {
        let x = randn(g.image_len(), 70 + s as u64);
        let c = randn(g.col_rows() * g.col_cols(), 90 + s as u64);
        let mut col = vec![0.0; c.len()];
        im2col(&x, g, &mut col);
        let mut back = vec![0.0; x.len()];
        col2im(&c, g, &mut back);
        let lhs: f64 = col.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()), "{g:?}: {lhs} vs {rhs}");
    }
}

#[test]
#[should_panic(expected = "im2col: col has 3 elements, expected [9, 4]")]
fn im2col_wrong_col_len_panics() {
    let g = Conv2dGeometry::new(1, 3, 3, 3, 1, 1);
    let mut col = vec![0.0; 3];
    im2col(&[0.0; 9], &Conv2dGeometry { stride_h: 2, stride_w: 2, ..g }, &mut col);
}

#[test]
#[should_panic(expected = "col2im: image has 8 elements, expected [1, 3, 3]")]
fn col2im_wrong_image_len_panics() {
    let g = Conv2dGeometry::new(1, 3, 3, 3, 1, 1);
    col2im(&[0.0; 81], &g, &mut [0.0; 8]);
}

/// Direct 7-loop convolution in f64.
fn naive_conv(
    x: &[f32],
    n: usize,
    g: &Conv2dGeometry,
    w: &[f32],
    oc: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0f64; n * oc * oh * ow];
    for b in 0..n {
        let img = &x[b * g.image_len()..(b + 1) * g.image_len()];
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias.map_or(0.0, |bv| bv[o] as f64);
                    for c in 0..g.channels {
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                let (iy, ix) = input_pos(g, oy, ox, ki, kj);
                                if let Some(i) = at(g, c, iy, ix) {
                                    let wi = ((o * g.channels + c) * g.kernel_h + ki) * g.kernel_w + kj;
                                    s += w[wi] as f64 * img[i] as f64;
                                }
                            }
                        }
                    }
                    y[((b * oc + o) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    y
}

/// Direct gradient loops in f64: (dx, dW, db).
fn naive_conv_grads(
    x: &[f32],
    n: usize,
    g: &Conv2dGeometry,
    w: &[f32],
    oc: usize,
    dy: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; oc];
    for b in 0..n {
        let base = b * g.image_len();
        let img = &x[base..base + g.image_len()];
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let d = dy[((b * oc + o) * oh + oy) * ow + ox] as f64;
                    db[o] += d;
                    for c in 0..g.channels {
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                let (iy, ix) = input_pos(g, oy, ox, ki, kj);
                                if let Some(i) = at(g, c, iy, ix) {
                                    let wi = ((o * g.channels + c) * g.kernel_h + ki) * g.kernel_w + kj;
                                    dw[wi] += d * img[i] as f64;
                                    dx[base + i] += d * w[wi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!((a as f64 - b).abs() <= 1e-5 * scale, "{what}[{i}]: {a} vs {b}");
    }
}

fn conv_cases() -> Vec<(usize, Conv2dGeometry, usize)> {
    vec![
        (1, Conv2dGeometry::new(1, 7, 5, 3, 1, 1), 2),
        (3, Conv2dGeometry::new(3, 7, 5, 3, 2, 1), 4),
        (3, Conv2dGeometry::new(3, 8, 6, 5, 1, 2), 5),
        (1, Conv2dGeometry::new(2, 5, 5, 1, 1, 0), 3),
        (
            5,
            Conv2dGeometry {
                channels: 2,
                height: 6,
                width: 9,
                kernel_h: 3,
                kernel_w: 2,
                stride_h: 2,
                stride_w: 3,
                pad_h: 1,
                pad_w: 0,
            },
            3,
        ),
        (9, Conv2dGeometry::new(3, 9, 9, 3, 2, 1), 2),
    ]
}

#[test]
fn conv2d_forward_matches_direct_convolution() {
    for (s, &(n, g, oc)) in conv_cases().iter().enumerate() {
        let s = s as u64 * 10;
        let x = randn(n * g.image_len(), s + 1);
        let w = randn(oc * g.col_rows(), s + 2);
        let b = randn(oc, s + 3);
        for bias in [None, Some(b.as_slice())] {
            let mut out = vec![f32::NAN; n * oc * g.col_cols()];
            conv2d_forward(&x, n, &g, &w, oc, bias, &mut out);
            let want = naive_conv(&x, n, &g, &w, oc, bias);
            assert_close(&out, &want, &format!("forward n={n} {g:?} bias={}", bias.is_some()));
        }
    }
}

#[test]
fn conv2d_forward_known_values() {
    // 1x3x3 image of 1..9, 2x2 all-ones kernel, bias 0.5: sums of 2x2 windows + 0.5.
    let g = Conv2dGeometry::new(1, 3, 3, 2, 1, 0);
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut out = vec![0.0; 4];
    conv2d_forward(&x, 1, &g, &[1.0; 4], 1, Some(&[0.5]), &mut out);
    assert_eq!(out, [12.5, 16.5, 24.5, 28.5]);
}

#[test]
fn conv2d_backward_matches_direct_gradients() {
    for (s, &(n, g, oc)) in conv_cases().iter().enumerate() {
        let s = s as u64 * 10;
        let x = randn(n * g.image_len(), s + 1);
        let w = randn(oc * g.col_rows(), s + 2);
        let dy = randn(n * oc * g.col_cols(), s + 4);
        // Pre-filled accumulators check that every gradient is added, not stored.
        let dx0 = randn(x.len(), s + 5);
        let dw0 = randn(w.len(), s + 6);
        let db0 = randn(oc, s + 7);
        let (mut dx, mut dw, mut db) = (dx0.clone(), dw0.clone(), db0.clone());
        conv2d_backward(&x, n, &g, &w, oc, &dy, Some(&mut dx), &mut dw, Some(&mut db));
        let (ndx, ndw, ndb) = naive_conv_grads(&x, n, &g, &w, oc, &dy);
        let plus = |base: &[f32], d: &[f64]| -> Vec<f64> {
            base.iter().zip(d).map(|(&a, &b)| a as f64 + b).collect()
        };
        let what = format!("n={n} {g:?}");
        assert_close(&dx, &plus(&dx0, &ndx), &format!("dx {what}"));
        assert_close(&dw, &plus(&dw0, &ndw), &format!("dW {what}"));
        assert_close(&db, &plus(&db0, &ndb), &format!("db {what}"));
    }
}

#[test]
fn conv2d_backward_without_dx_and_db() {
    let (n, g, oc) = (3, Conv2dGeometry::new(2, 6, 5, 3, 2, 1), 3);
    let x = randn(n * g.image_len(), 1);
    let w = randn(oc * g.col_rows(), 2);
    let dy = randn(n * oc * g.col_cols(), 3);
    let mut dw = vec![0.0; w.len()];
    conv2d_backward(&x, n, &g, &w, oc, &dy, None, &mut dw, None);
    let (_, ndw, _) = naive_conv_grads(&x, n, &g, &w, oc, &dy);
    assert_close(&dw, &ndw, "dW");
    // Same dW as when dx and db are also requested.
    let mut dw2 = vec![0.0; w.len()];
    let (mut dx, mut db) = (vec![0.0; x.len()], vec![0.0; oc]);
    conv2d_backward(&x, n, &g, &w, oc, &dy, Some(&mut dx), &mut dw2, Some(&mut db));
    assert_eq!(dw, dw2);
}

#[test]
fn conv2d_parallel_equals_serial_bitwise() {
    // 11 images: two full groups of 4 and a short one of 3.
    let (n, g, oc) = (11, Conv2dGeometry::new(3, 12, 10, 5, 1, 2), 6);
    let x = randn(n * g.image_len(), 1);
    let w = randn(oc * g.col_rows(), 2);
    let b = randn(oc, 3);
    let dy = randn(n * oc * g.col_cols(), 4);
    let run = |mode| {
        with_mode(mode, || {
            let mut out = vec![0.0; dy.len()];
            conv2d_forward(&x, n, &g, &w, oc, Some(&b), &mut out);
            let (mut dx, mut dw, mut db) = (vec![0.5; x.len()], vec![0.25; w.len()], vec![1.0; oc]);
            conv2d_backward(&x, n, &g, &w, oc, &dy, Some(&mut dx), &mut dw, Some(&mut db));
            (out, dx, dw, db)
        })
    };
    let serial = run(Mode::Serial);
    let parallel = run(Mode::Parallel);
    assert_eq!(serial, parallel);
    assert!(serial.0.iter().all(|v| v.is_finite()));
}

#[test]
fn conv2d_empty_batch_is_a_no_op() {
    let g = Conv2dGeometry::new(2, 4, 4, 3, 1, 1);
    let w = randn(3 * g.col_rows(), 1);
    let mut out: Vec<f32> = vec![];
    conv2d_forward(&[], 0, &g, &w, 3, None, &mut out);
    let mut dw = vec![1.0; w.len()];
    conv2d_backward(&[], 0, &g, &w, 3, &[], Some(&mut []), &mut dw, None);
    assert_eq!(dw, vec![1.0; w.len()]);
}

#[test]
#[should_panic(expected = "conv2d_forward: weight has 10 elements, expected [2, 27]")]
fn conv2d_forward_wrong_weight_panics() {
    let g = Conv2dGeometry::new(3, 4, 4, 3, 1, 1);
    let mut out = vec![0.0; 2 * 16];
    conv2d_forward(&[0.0; 48], 1, &g, &[0.0; 10], 2, None, &mut out);
}

#[test]
#[should_panic(expected = "conv2d_forward: out has 5 elements, expected [1, 2, 4, 4]")]
fn conv2d_forward_wrong_out_panics() {
    let g = Conv2dGeometry::new(3, 4, 4, 3, 1, 1);
    let mut out = vec![0.0; 5];
    conv2d_forward(&[0.0; 48], 1, &g, &[0.0; 54], 2, None, &mut out);
}

#[test]
#[should_panic(expected = "conv2d_backward: dy has 31 elements, expected [1, 2, 4, 4]")]
fn conv2d_backward_wrong_dy_panics() {
    let g = Conv2dGeometry::new(3, 4, 4, 3, 1, 1);
    let mut dw = vec![0.0; 54];
    conv2d_backward(&[0.0; 48], 1, &g, &[0.0; 54], 2, &[0.0; 31], None, &mut dw, None);
}

/// The side-by-side row sums have the bits of one `Iterator::sum` per row: row counts around
/// the lane count, rows of -0.0 (the sum's start value decides their sign) and empty rows.
#[test]
fn add_row_sums_equals_sequential_sums_bitwise() {
    for (rows, len) in [(1, 5), (15, 7), (16, 1024), (17, 3), (40, 33), (3, 0)] {
        let mut data = randn(rows * len, rows as u64);
        if len > 0 {
            data[..len].fill(-0.0);
        }
        for start in [0.0f32, -0.0, 1.5] {
            let mut want = vec![start; rows];
            for (w, row) in want.iter_mut().zip(data.chunks_exact(len.max(1))) {
                *w += row.iter().sum::<f32>();
            }
            if len == 0 {
                want.iter_mut().for_each(|w| *w += std::iter::empty::<f32>().sum::<f32>());
            }
            let mut got = vec![start; rows];
            add_row_sums(&data, len, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{rows}x{len} from {start}");
        }
    }
}
