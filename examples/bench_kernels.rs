//! Throughput of the GEMM and convolution kernels that dominate training time.
//!
//! ```text
//! cargo run --release --example bench_kernels            # all thread settings, one table
//! cargo run --release --example bench_kernels -- --backend portable --gemm-only
//! RAYON_NUM_THREADS=1 cargo run --release --example bench_kernels -- --child
//!                                                        # one setting, raw tab-separated rows
//! ```
//!
//! `--backend all` (the default) times every GEMM shape with each GEMM backend this CPU has
//! (`portable` = matrixmultiply on 64-row blocks; `avx2`, `avx512` = adamant's packed GEMM
//! with that micro-kernel; `bf16` = the bf16 GEMM `sgemm_bf16` with its `vdpbf16ps` kernel,
//! operands rounded to bf16, f32 sums) in the same process, taking turns over three rounds so
//! that they see the same machine load, which makes the f32 and bf16 rows of one run
//! comparable; `--backend NAME[,NAME...]` times those (`bf16-fallback` is the bf16 GEMM's f32
//! fallback, not part of `all`). Convolutions always use the default f32 backend (what
//! `matmul` picks). `--gemm-only` skips the convolutions.
//!
//! All parallelism is rayon's (matrixmultiply is built without its own threading, which
//! fought rayon for the two cores), and rayon fixes its thread count once per process, so the
//! parent runs this same binary as a child process per setting, with `RAYON_NUM_THREADS` set
//! in the child's environment, and gathers the rows into one table. Each timing is the median (and the
//! minimum, steadier on a shared machine) of several repetitions after one warm-up run (for
//! the GEMM rows, the best median and minimum of the three rounds); GFLOP/s ("best": from the
//! minimum) counts 2*M*K*N per GEMM; a convolution pass counts one such GEMM per product it
//! performs (forward 1; backward 1 for dW, +1 for dx).
//!
//! Shapes: `M x K x N` means `out[M,N] = op(a)[M,K] @ op(b)[K,N]`; NT means `b` is stored
//! transposed (`[N,K]`, like a dense layer's weight), TN that `a` is (`[K,M]`). The three
//! "im2col" GEMMs are the CIFAR-10 CNN's convolutions written as one batch-wide GEMM
//! (batch 128: conv1 3->64 ch on 32x32, conv2 64->64 on 16x16, conv3 64->128 on 8x8, all 5x5).

use adamant_lab::cli::{self, exit_on_error, CliError};
use adamant_lab::lexopt::prelude::*;
use adamant_tensor::kernels::parallel::{with_mode, Mode};
use adamant_tensor::kernels::{
    conv2d_backward, conv2d_forward, gemm_backend, sgemm_bf16_with, sgemm_with, Bf16Backend, Conv2dGeometry,
    GemmBackend, StridedMat,
};
use adamant_tensor::rng::seeded;
use adamant_tensor::Tensor;
use std::process::Command;
use std::time::{Duration, Instant};

/// (label, RAYON_NUM_THREADS) of each child process.
const SETTINGS: [(&str, usize); 2] = [("1 thread", 1), ("2 threads", 2)];

fn random(len: usize, seed: u64) -> Vec<f32> {
    Tensor::rand_uniform(&[len], -1.0, 1.0, &mut seeded(seed)).into_vec()
}

/// (median, minimum) seconds of `f` over enough repetitions to fill about a second (3 to 15).
fn time(mut f: impl FnMut()) -> (f64, f64) {
    let start = Instant::now();
    f(); // warm-up: page faults, packing buffers, thread pools
    let once = start.elapsed().max(Duration::from_micros(1));
    let reps = (1.0 / once.as_secs_f64()).clamp(3.0, 15.0) as usize;
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    (times[reps / 2], times[0])
}

/// One output row of a child: name, shape, backend, flop count, median and minimum seconds.
fn row(name: &str, shape: &str, backend: &str, flop: f64, (median, min): (f64, f64)) {
    println!("{name}\t{shape}\t{backend}\t{flop}\t{median}\t{min}");
}

/// Short name of an f32 GEMM backend in the table.
fn backend_name(backend: GemmBackend) -> &'static str {
    match backend {
        GemmBackend::Portable => "portable",
        GemmBackend::Avx2 => "avx2",
        GemmBackend::Avx512 => "avx512",
    }
}

/// One GEMM the table times: the f32 GEMM with a backend, or the bf16 GEMM with one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    F32(GemmBackend),
    Bf16(Bf16Backend),
}

/// Every variant, under its name on the command line and in the table.
const VARIANTS: [(&str, Variant); 5] = [
    ("portable", Variant::F32(GemmBackend::Portable)),
    ("avx2", Variant::F32(GemmBackend::Avx2)),
    ("avx512", Variant::F32(GemmBackend::Avx512)),
    ("bf16", Variant::Bf16(Bf16Backend::Avx512Bf16)),
    ("bf16-fallback", Variant::Bf16(Bf16Backend::RoundedF32)),
];

impl Variant {
    fn name(self) -> &'static str {
        VARIANTS.iter().find(|(_, v)| *v == self).map_or("?", |(name, _)| name)
    }

    fn is_available(self) -> bool {
        match self {
            Variant::F32(b) => b.is_available(),
            Variant::Bf16(b) => b.is_available(),
        }
    }

    /// `c = a @ b` with this variant.
    fn run(self, a: StridedMat, b: StridedMat, c: &mut [f32]) {
        match self {
            Variant::F32(backend) => sgemm_with(backend, a, b, c, false),
            Variant::Bf16(backend) => sgemm_bf16_with(backend, a, b, c, false),
        }
    }
}

/// Times `out = op(a) @ op(b)` (what `matmul` does) with each of `backends`, taking turns:
/// `rounds` rounds, each timing every backend once, and keeps each backend's best round.
#[allow(clippy::too_many_arguments)]
fn bench_gemm(name: &str, m: usize, k: usize, n: usize, ta: bool, tb: bool, backends: &[Variant]) {
    let a = random(m * k, 1);
    let b = random(k * n, 2);
    let mut c = vec![0.0f32; m * n];
    let (av, bv) = (StridedMat::row_major(&a, m, k, ta), StridedMat::row_major(&b, k, n, tb));
    let rounds = 3;
    let mut best = vec![(f64::INFINITY, f64::INFINITY); backends.len()];
    for _ in 0..rounds {
        for (backend, best) in backends.iter().zip(&mut best) {
            let (med, min) = time(|| backend.run(av, bv, &mut c));
            *best = (best.0.min(med), best.1.min(min));
        }
    }
    for (backend, t) in backends.iter().zip(best) {
        row(name, &format!("{m}x{k}x{n}"), backend.name(), 2.0 * (m * k * n) as f64, t);
    }
}

fn bench_conv(name: &str, batch: usize, g: Conv2dGeometry, oc: usize, with_dx: bool) {
    let x = random(batch * g.channels * g.height * g.width, 3);
    let w = random(oc * g.col_rows(), 4);
    let bias = random(oc, 5);
    let dy = random(batch * oc * g.col_cols(), 6);
    let mut y = vec![0.0f32; dy.len()];
    let mut dx = vec![0.0f32; x.len()];
    let mut dw = vec![0.0f32; w.len()];
    let mut db = vec![0.0f32; oc];
    let gemm = 2.0 * (batch * oc * g.col_rows() * g.col_cols()) as f64;
    let shape =
        format!("N={batch} {}x{}x{}->{oc} k{} p{}", g.channels, g.height, g.width, g.kernel_h, g.pad_h);
    let bwd_gemms = if with_dx { 2.0 } else { 1.0 };
    let dx_note = if with_dx { "bwd dW,db,dx" } else { "bwd dW,db" };
    let mut fwd = || conv2d_forward(&x, batch, &g, &w, oc, Some(&bias), &mut y);
    let mut bwd = || {
        let dx = if with_dx { Some(dx.as_mut_slice()) } else { None };
        conv2d_backward(&x, batch, &g, &w, oc, &dy, dx, &mut dw, Some(&mut db));
    };
    let backend = backend_name(gemm_backend());
    row(&format!("{name} fwd"), &shape, backend, gemm, time(&mut fwd));
    row(&format!("{name} {dx_note}"), &shape, backend, bwd_gemms * gemm, time(&mut bwd));
    let both = (1.0 + bwd_gemms) * gemm;
    row(
        &format!("{name} fwd+bwd"),
        &shape,
        backend,
        both,
        time(|| {
            fwd();
            bwd();
        }),
    );
    // For comparison: the batch loop (and matmul's row blocks) kept on the calling thread,
    // so only matrixmultiply's own threads, if any, can help.
    let serial = with_mode(Mode::Serial, || {
        time(|| {
            fwd();
            bwd();
        })
    });
    row(&format!("{name} fwd+bwd, rayon off"), &shape, backend, both, serial);
}

fn child(backends: &[Variant], gemm_only: bool) {
    let gemm = |name, m, k, n, ta, tb| bench_gemm(name, m, k, n, ta, tb, backends);
    gemm("matmul NT (dense fwd)", 128, 784, 1000, false, true);
    gemm("matmul NT", 128, 1000, 1000, false, true);
    gemm("matmul NT (k 128)", 768, 128, 512, false, true);
    gemm("matmul NN", 128, 1000, 1000, false, false);
    gemm("matmul TN (dense dW)", 1000, 128, 1000, true, false);
    gemm("im2col GEMM conv1 NN", 131072, 75, 64, false, false);
    gemm("im2col GEMM conv2 NN", 32768, 1600, 64, false, false);
    gemm("im2col GEMM conv3 NN", 8192, 1600, 128, false, false);
    if gemm_only {
        return;
    }
    // conv1 takes the data as input, so its backward needs no dx.
    bench_conv("conv1", 128, Conv2dGeometry::new(3, 32, 32, 5, 1, 2), 64, false);
    bench_conv("conv2", 128, Conv2dGeometry::new(64, 16, 16, 5, 1, 2), 64, true);
}

const USAGE: &str = "usage: bench_kernels [--backend all|NAME[,NAME...]] [--gemm-only] [--child]\n  \
     NAME: portable, avx2, avx512, bf16, bf16-fallback";

/// The parsed command line.
struct Args {
    is_child: bool,
    gemm_only: bool,
    backend: String,
}

/// The command line, or `None` for `--help`; errors are one line naming the argument, as in
/// every example (a non-UTF-8 or multi-line argument included).
fn parse_args() -> Result<Option<Args>, CliError> {
    let mut parser = adamant_lab::lexopt::Parser::from_env();
    let mut a = Args { is_child: false, gemm_only: false, backend: "all".to_string() };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("child") => a.is_child = true,
            Long("gemm-only") => a.gemm_only = true,
            Long("backend") => a.backend = cli::value(&mut parser, "--backend")?,
            Long("help") | Short('h') => return Ok(None),
            other => return Err(cli::unexpected(other)),
        }
    }
    Ok(Some(a))
}

fn main() {
    let Some(Args { is_child, gemm_only, backend }) = exit_on_error(parse_args()) else {
        println!("{USAGE}");
        return;
    };
    let backends: Vec<Variant> = if backend == "all" {
        // Every native kernel (the bf16 fallback is the f32 GEMM again, plus copies).
        VARIANTS
            .iter()
            .map(|&(_, v)| v)
            .filter(|&v| v != Variant::Bf16(Bf16Backend::RoundedF32) && v.is_available())
            .collect()
    } else {
        let parse = |name: &str| match VARIANTS.iter().find(|(n, _)| *n == name) {
            Some(&(_, v)) if v.is_available() => Ok(v),
            _ => Err(CliError::invalid(
                "--backend",
                format!(
                    "'{}' is unknown or not supported by this CPU (expected all, or names from portable, \
                     avx2, avx512, bf16, bf16-fallback separated by commas)",
                    name.escape_debug()
                ),
            )),
        };
        exit_on_error(backend.split(',').map(parse).collect())
    };
    if is_child {
        return child(&backends, gemm_only);
    }
    let exe = std::env::current_exe().expect("bench_kernels: cannot find own executable");
    let mut rows: Vec<(String, String, String, String, f64, f64, f64)> = vec![];
    for (label, rayon) in SETTINGS {
        let mut command = Command::new(&exe);
        command.args(["--child", "--backend", &backend]);
        if gemm_only {
            command.arg("--gemm-only");
        }
        let output = command
            .env("RAYON_NUM_THREADS", rayon.to_string())
            .output()
            .expect("bench_kernels: cannot run child process");
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
            panic!("bench_kernels: child with threads={label} failed: {}", output.status);
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if let [name, shape, backend, flop, med, min] = f[..] {
                let num = |v: &str| -> f64 { v.parse().expect("bench_kernels: bad row from child") };
                rows.push((
                    name.into(),
                    shape.into(),
                    backend.into(),
                    label.into(),
                    num(med),
                    num(min),
                    num(flop),
                ));
            }
        }
    }
    // GFLOP/s from the median and, steadier on a shared machine, from the fastest repetition.
    println!(
        "{:<28} {:<24} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "kernel", "shape (MxKxN)", "backend", "threads", "med ms", "min ms", "GFLOP/s", "best"
    );
    // Each kernel's settings together, kernels in the order they ran.
    let mut order: Vec<(&str, &str)> = vec![];
    for r in &rows {
        if !order.contains(&(&r.0, &r.1)) {
            order.push((&r.0, &r.1));
        }
    }
    for (name, shape) in order {
        for r in rows.iter().filter(|r| r.0 == name && r.1 == shape) {
            println!(
                "{:<28} {:<24} {:>9} {:>10} {:>8.2} {:>8.2} {:>8.1} {:>8.1}",
                r.0,
                r.1,
                r.2,
                r.3,
                r.4 * 1e3,
                r.5 * 1e3,
                r.6 / r.4 / 1e9,
                r.6 / r.5 / 1e9
            );
        }
    }
}
