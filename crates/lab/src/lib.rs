//! # adamant-lab
//!
//! The tooling of adamant's own experiments, kept out of the library so that a program that
//! only wants tensors, autodiff and Adam does not compile a command-line parser, a plotting
//! library or an HTTPS stack. The examples, the integration tests and the benchmarks of the
//! repository use it; it is not published, and no library crate depends on it.
//!
//! | module | what it holds |
//! |---|---|
//! | [`cli`] | flag parsing shared by the examples: one-line errors naming the flag, optimizer options |
//! | [`experiment`] | the paper's experiments as one runner with one command line (`--compare`, `--json`, ...) |
//! | [`bench`](mod@bench) | the step-time benchmark of the paper's nets and the char GPT (`examples/bench.rs`) |
//! | [`char_gpt`] | the character-level GPT with the AdamW recipe, its comparisons (`examples/char_gpt.rs`) |
//! | [`playground`] | optimizer paths on 2-d test functions (`examples/optimize.rs`) |
//! | [`trace`] | Adam's Algorithm 1 printed step by step (`examples/trace_adam.rs`) |
//! | [`plot`] | training curves and paths as SVG line charts |

pub mod bench;
pub mod char_gpt;
pub mod cli;
pub mod experiment;
pub mod playground;
pub mod plot;
pub mod trace;

/// The argument lexer the command lines are built on, for examples that add flags of their own.
pub use lexopt;
