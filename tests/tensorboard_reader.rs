//! TensorBoard itself reads adamant's event files: `tests/tensorboard/check_events.py` loads a
//! real run's file with TensorBoard's `EventAccumulator` and checks every scalar against the
//! run's CSV logs and the histograms and Adam's internals against its checkpoint; then a
//! TensorBoard server on 127.0.0.1 is opened in headless Chromium, which must show the tags.
//!
//! Needs a Python with the `tensorboard` package (`ADAMANT_TB_PYTHON`, the venv `.ci/run`
//! makes) and, for the browser, `selenium` in it and Debian's `chromium` and
//! `chromium-driver`; both are ignored tests that fail, never pass, when those are missing.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NEEDS: &str = "needs ADAMANT_TB_PYTHON: a python with the tensorboard package (.ci/run installs it)";

/// The python that has TensorBoard.
fn tb_python() -> PathBuf {
    let python = std::env::var_os("ADAMANT_TB_PYTHON").unwrap_or_else(|| panic!("{NEEDS}"));
    PathBuf::from(python)
}

/// A 2-epoch MNIST MLP run (100 steps each, on the bundled mini set) with TensorBoard logs
/// every 20 steps and the optimizer's internals; returns (out dir, run dir).
fn short_run(out: &Path) -> PathBuf {
    let tb = out.join("tb");
    let output = common::mnist_mlp_command(
        out,
        2,
        &["--epochs", "2", "--steps-per-epoch", "100", "--batch-size", "16"],
    )
    .arg("--tensorboard")
    .arg(&tb)
    .args(["--log-every", "20", "--log-optimizer-state", "--json"])
    .output()
    .unwrap();
    assert!(output.status.success(), "mnist_mlp failed: {}", String::from_utf8_lossy(&output.stderr));
    tb.join("mnist_mlp_adam")
}

#[test]
#[ignore = "needs ADAMANT_TB_PYTHON: a python with the tensorboard package (.ci/run installs it)"]
fn tensorboards_reader_agrees_with_the_csv_logs_and_the_checkpoint() {
    let python = tb_python();
    let out = common::Scratch::new("tb-reader");
    let run = short_run(&out);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tensorboard/check_events.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&run)
        .arg(&*out)
        .args(["mnist_mlp_adam", "20", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

/// A TensorBoard server, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` from 127.0.0.1:`port`: the status line and body, or `None` if nothing answers.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
#[ignore = "needs ADAMANT_TB_PYTHON (tensorboard, selenium) and Debian's chromium, chromium-driver (.ci/run installs them)"]
fn a_browser_shows_the_tags_on_tensorboards_page() {
    let python = tb_python();
    let out = common::Scratch::new("tb-browser");
    short_run(&out);
    // A free port: bound by us, released, then given to TensorBoard.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tensorboard = python.parent().unwrap().join("tensorboard");
    let child = Command::new(&tensorboard)
        .arg("--logdir")
        .arg(out.join("tb"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", tensorboard.display()));
    let _server = Server(child);
    let started = Instant::now();
    // TensorBoard has loaded the run once its runs list names it.
    while !get(port, "/data/runs").is_some_and(|r| r.contains("mnist_mlp_adam")) {
        assert!(started.elapsed() < Duration::from_secs(60), "TensorBoard did not serve the run within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The Time Series page, filtered to the scalar groups so that their cards are drawn (it
    // draws only the cards in view); browser_check.py waits until the tags are on it.
    let url = format!("http://127.0.0.1:{port}/?tagFilter=train%7Ctest#timeseries");
    let shot = out.join("tensorboard.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tensorboard/browser_check.py");
    let tags = "train/loss,train/lr,train/step_ms,test/loss,test/accuracy";
    let output = Command::new(&python).arg(script).arg(&url).arg(&shot).arg(tags).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let mut png = Vec::new();
    std::fs::File::open(&shot).unwrap().read_to_end(&mut png).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot of {} bytes", png.len());
    // Kept for the docs when asked (docs/figures/tensorboard_*.png come from here).
    if let Some(dir) = std::env::var_os("ADAMANT_TB_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("tensorboard_scalars.png")).unwrap();
    }
}
