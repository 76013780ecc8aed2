//! Watch an optimizer walk a 2-d loss: prints its path as CSV and can draw it as SVG. The
//! `matrix` problem (a least-squares loss over a `[4, 3]` matrix) is for the optimizers that
//! treat matrices as matrices, and prints the twelve coordinates.
//!
//! ```text
//! cargo run --release --example optimize -- --problem rosenbrock --start=-1.5,2.0 --steps 100 \
//!     --optimizer adam --lr 0.1 --svg adam.svg > adam.csv
//! cargo run --release --example optimize -- --problem matrix --steps 50 --optimizer adam --lr 0.05
//! cargo run --release --example optimize -- --help
//! ```
//!
//! The optimizer flags are those of every adamant example (`adamant_lab::cli`); the problems, the
//! run loop and the plot live in `adamant_lab::playground`, where the tests call them.

use std::io::{self, ErrorKind};

use adamant_lab::cli::{exit_on_error, optimizer_usage};
use adamant_lab::playground::{execute, parse_args, Command, ExecuteError, USAGE};

fn main() {
    match exit_on_error(parse_args(std::env::args_os().skip(1))) {
        Command::Help => print!("{USAGE}\n{}", optimizer_usage()),
        Command::Run(args) => match execute(&args, &mut io::stdout().lock()) {
            Ok(_) => {}
            // A reader that stopped early (`| head`) is not an error.
            Err(ExecuteError::Output(e)) if e.kind() == ErrorKind::BrokenPipe => {}
            Err(e) => exit_on_error(Err::<(), _>(e)),
        },
    }
}
