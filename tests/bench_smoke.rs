//! The benchmark harness runs every net and measures something sensible: finite, positive
//! timings whose phases add up, and a training step that actually trains.

use adamant::tensor::Precision;
use adamant_lab::bench::{core_round_trip_ns, peak_rss_mb, run, Net};

#[test]
fn every_net_runs_and_reports_finite_positive_timings() {
    let params = [7_850, 1_796_010, 1_796_010, 2_371_266, 860_884, 811_520];
    assert_eq!(params.len(), Net::ALL.len());
    for (net, params) in Net::ALL.into_iter().zip(params) {
        let r = run(net, 2, 1, Precision::F32);
        assert_eq!(r.params, params, "{net}: not the reference net");
        assert_eq!((r.steps, r.warmup, r.losses.len()), (2, 1, 3), "{net}");
        for (what, x) in [
            ("step", r.step_ms),
            ("min", r.step_ms_min),
            ("p90", r.step_ms_p90),
            ("fwd", r.fwd_ms),
            ("bwd", r.bwd_ms),
            ("opt", r.opt_ms),
            ("gflops", r.gflops),
        ] {
            assert!(x.is_finite() && x > 0.0, "{net}: {what} = {x}");
        }
        assert!(r.step_ms_min <= r.step_ms && r.step_ms <= r.step_ms_p90, "{net}: {r:?}");
        assert!(r.losses.iter().all(|l| l.is_finite()), "{net}: losses {:?}", r.losses);
        // Medians of the phases need not sum to the median step exactly, but roughly.
        let phases = r.fwd_ms + r.bwd_ms + r.opt_ms;
        assert!(phases < 3.0 * r.step_ms_p90, "{net}: phases {phases} ms vs step {} ms", r.step_ms);
        let line = r.json_line(1, peak_rss_mb(), false);
        let start = format!("{{\"net\": \"{net}\", \"precision\": \"f32\", \"threads\": 1, \"step_ms\": ");
        assert!(line.starts_with(&start), "{line}");
        assert!(!line.contains('\n') && !line.contains("NaN"), "{line}");
    }
}

#[test]
fn the_logreg_step_trains_in_both_precisions() {
    // The same batch every step: Adam at lr 1e-3 must drive its loss down steadily.
    for precision in [Precision::F32, Precision::Bf16] {
        let r = run(Net::LogReg, 20, 0, precision);
        let (first, last) = (r.losses[0], r.final_loss());
        assert!(first > 2.0 && last < first - 0.3, "{precision}: losses {:?}", r.losses);
        assert!(r.losses.windows(2).all(|w| w[1] < w[0]), "{precision}: losses {:?}", r.losses);
        assert!(r.json_line(1, None, false).contains(&format!("\"precision\": \"{precision}\"")));
    }
}

#[test]
fn bf16_steps_follow_the_f32_losses_of_the_paper_nets() {
    // Mixed precision changes the products by bf16's rounding (about 2^-9 relative), so the
    // losses of a few steps stay close to f32's; a bf16 path that computed something else
    // (a wrong operand, a missing bias) would not.
    for net in [Net::Mlp, Net::Cnn, Net::Vae] {
        let (a, b) = (run(net, 3, 0, Precision::F32), run(net, 3, 0, Precision::Bf16));
        assert_ne!(a.losses, b.losses, "{net}: bf16 gave f32's bits");
        for (x, y) in a.losses.iter().zip(&b.losses) {
            assert!((x - y).abs() <= 0.02 * x.abs(), "{net}: f32 {:?} vs bf16 {:?}", a.losses, b.losses);
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn peak_rss_is_read_on_linux() {
    let mb = peak_rss_mb().expect("VmHWM in /proc/self/status");
    assert!(mb > 1.0 && mb < 1e6, "{mb}");
}

#[test]
fn the_cores_round_trip_is_measured_and_reported() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rtt = core_round_trip_ns();
    if cpus < 2 {
        assert_eq!(rtt, None);
        return;
    }
    // Measured while other tests run beside it: only sane bounds (a cache line's trip takes
    // tens to hundreds of nanoseconds; a descheduled partner would make it microseconds).
    let rtt = rtt.expect("two CPUs: the round trip is measured");
    assert!(rtt.is_finite() && rtt > 1.0 && rtt < 1e6, "{rtt} ns");
    let mut r = run(Net::LogReg, 2, 0, Precision::F32);
    assert!(r.json_line(1, None, false).ends_with("\"core_rtt_ns\": null}"));
    r.core_rtt_ns = Some((81.25, 352.5));
    assert!(r.json_line(1, None, false).ends_with("\"core_rtt_ns\": [81.2500, 352.5000]}"));
}
