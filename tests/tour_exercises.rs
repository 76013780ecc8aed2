//! The tour's exercise answers that quote a command's output (`docs/tour/*.md`, sections
//! "Exercises"): each test runs the same computation as the command and asserts that every
//! quoted line is a line of its output, so the answers cannot drift from the code.

use std::ffi::OsString;

use adamant_lab::{playground, trace};

/// The chapter's text.
fn chapter(name: &str) -> String {
    let path = format!("{}/docs/tour/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines quoted under `$ COMMAND` in `text`, up to the end of the code block; `...`
/// stands for lines left out.
fn quoted_output<'a>(text: &'a str, command: &str) -> Vec<&'a str> {
    let prompt = format!("$ {command}");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != prompt);
    assert!(lines.next().is_some(), "no line `{prompt}` in the chapter");
    let quoted: Vec<&str> =
        lines.take_while(|l| !l.starts_with("```")).filter(|l| l.trim() != "...").collect();
    assert!(!quoted.is_empty(), "nothing quoted under `{prompt}`");
    quoted
}

/// The arguments after `--` in `command`.
fn args(command: &str) -> Vec<OsString> {
    let (_, rest) = command.split_once(" -- ").expect("a command with arguments after --");
    rest.split_whitespace().map(OsString::from).collect()
}

/// Asserts that each quoted line is a line of `output`.
fn assert_quoted(chapter_name: &str, command: &str, output: &str) {
    let text = chapter(chapter_name);
    let lines: Vec<&str> = output.lines().map(str::trim_end).collect();
    for line in quoted_output(&text, command) {
        assert!(
            lines.contains(&line.trim_end()),
            "{chapter_name}: `{line}` is not in the output of `{command}`:\n{output}"
        );
    }
}

/// What `examples/trace_adam.rs` prints for `command`.
fn trace_adam(command: &str) -> String {
    match trace::parse_args(args(command)).expect("valid arguments") {
        trace::Command::Run(config) => trace::format_table(&config, &trace::trace(&config)),
        trace::Command::Help | trace::Command::Ratio { .. } => {
            unreachable!("the exercises quote tables, not --help or a figure")
        }
    }
}

/// What `examples/optimize.rs` prints for `command`.
fn optimize(command: &str) -> String {
    match playground::parse_args(args(command)).expect("valid arguments") {
        playground::Command::Run(a) => {
            let mut out = Vec::new();
            playground::execute(&a, &mut out).expect("the run succeeds");
            String::from_utf8(out).expect("UTF-8")
        }
        playground::Command::Help => unreachable!("not a --help command"),
    }
}

#[test]
fn bias_correction_exercise_quotes_trace_adam_without_momentum() {
    let command = "cargo run --release --example trace_adam -- --beta1 0 --steps 5";
    assert_quoted("08-bias-correction.md", command, &trace_adam(command));
}

#[test]
fn family_exercise_quotes_optimize_on_the_bowl() {
    for command in [
        "cargo run --release --example optimize -- --problem quadratic --optimizer sgd --lr 0.019",
        "cargo run --release --example optimize -- --problem quadratic --optimizer sgd --lr 0.021",
        "cargo run --release --example optimize -- --problem quadratic --optimizer adam --lr 0.021",
    ] {
        assert_quoted("09-the-family.md", command, &optimize(command));
    }
}
