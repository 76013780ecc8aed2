//! Adam's moments step by step, with and without bias correction, on `f(x) = x^2 / 2`.
//!
//! ```text
//! cargo run --release --example trace_adam
//! cargo run --release --example trace_adam -- --beta2 0.99 --steps 20 --lr 0.1
//! cargo run --release --example trace_adam -- --ratio-svg docs/figures/bias_correction_ratio.svg
//! ```
//!
//! Each line is one step t: the gradient g, the moments m and v as the real optimizer
//! (`adamant::optim::Adam`) stores them, the corrected m_hat and v_hat, and how far the
//! parameter moved. The tracing lives in `adamant_lab::trace`, where the tests call it; the tour's
//! chapter on bias correction (`docs/tour/08-bias-correction.md`) reads this output.

use adamant_lab::cli::exit_on_error;
use adamant_lab::trace::{format_table, parse_args, trace, write_ratio_svg, Command, USAGE};

fn main() {
    match exit_on_error(parse_args(std::env::args_os().skip(1))) {
        Command::Help => print!("{USAGE}"),
        Command::Run(config) => print!("{}", format_table(&config, &trace(&config))),
        Command::Ratio { beta1, path } => print!("{}", exit_on_error(write_ratio_svg(beta1, &path))),
    }
}
