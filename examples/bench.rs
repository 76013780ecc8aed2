//! Times one training step of each of the Adam paper's nets and of the character-level GPT
//! (`char_gpt`), for comparison with PyTorch.
//!
//! ```text
//! cargo run --release --example bench -- --threads 2
//! cargo run --release --example bench -- --nets cnn --threads 2 --json   # one net per process: its own peak RSS
//! bench/compare_pytorch.sh                                              # side by side with torch_paper_nets.py
//! ```
//!
//! The nets, the step and the statistics live in `adamant_lab::bench`; this is the command line.

use std::io::Write;

use adamant_lab::bench::{core_round_trip_ns, parse_args, peak_rss_mb, run, Command, USAGE};
use adamant_lab::cli::{exit_on_error, CliError};

/// With the `mimalloc` feature, this program (not the library) uses mimalloc, to compare the
/// step against the system allocator: `bench/compare_allocators.sh`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = match exit_on_error(parse_args(std::env::args_os().skip(1))) {
        Command::Help => return print!("{USAGE}"),
        Command::Run(args) => args,
    };
    if let Some(n) = args.threads {
        // rayon fixes its global pool at first use, so this must come before any kernel runs.
        let built = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        exit_on_error(built.map_err(|e| CliError::invalid("--threads", e.to_string())));
    }
    let threads = rayon::current_num_threads();
    if !args.json {
        println!(
            "adamant training step, batch 128 (char_gpt: 12 x 64 tokens), {threads} rayon thread(s), \
             {} products, medians over the timed steps",
            args.precision
        );
        println!(
            "{:<11} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>11}",
            "net",
            "steps",
            "step_ms",
            "min",
            "p90",
            "fwd",
            "bwd",
            "adam",
            "epoch_s",
            "GFLOP/s",
            "peak_MB",
            "rtt_ns"
        );
    }
    for (i, &net) in args.nets.iter().enumerate() {
        // The cores' distance before and after: two-thread timings depend on it (BENCHMARKS.md).
        let rtt_before = core_round_trip_ns();
        let mut r = run(net, args.steps.unwrap_or(net.default_steps()), args.warmup, args.precision);
        r.core_rtt_ns = rtt_before.zip(core_round_trip_ns());
        let rss = peak_rss_mb();
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            writeln!(out, "{}", r.json_line(threads, rss, i > 0))
        } else {
            let rss = rss.map_or("-".to_string(), |m| format!("{m:.0}"));
            let rtt = r.core_rtt_ns.map_or("-".to_string(), |(b, a)| format!("{b:.0}/{a:.0}"));
            writeln!(
                out,
                "{:<11} {:>5} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8.2} {:>8.1} {:>9} {:>11}",
                net.name(),
                r.steps,
                r.step_ms,
                r.step_ms_min,
                r.step_ms_p90,
                r.fwd_ms,
                r.bwd_ms,
                r.opt_ms,
                r.epoch_s(),
                r.gflops,
                rss,
                rtt
            )
        };
        // Results appear as each net finishes; a closed pipe (`| head`) just ends the run.
        if written.and_then(|_| out.flush()).is_err() {
            return;
        }
    }
    if !args.json && args.nets.len() > 1 {
        println!("peak_MB is the process's peak so far (VmHWM): run one net per process (--nets NAME) for each net's own.");
    }
    if !args.json {
        println!(
            "rtt_ns: a cache line's round trip between two cores before/after the net (core_round_trip_ns)."
        );
    }
}
