//! PyTorch's side of the comparison: the JSON log `torch_char_gpt.py --json FILE` writes
//! (`{"log": [{"step": .., "val_loss": .., "val_loss_ema": ..}, ..], ..}`), and the figure
//! of both runs' validation curves.

use std::fs;
use std::path::{Path, PathBuf};

use adamant::train::History;
use serde_json::Value;

use crate::cli::{quote_path, CliError};
use crate::plot::{line_chart, Series};

/// The most a log may weigh: a run validated every step for a million steps is far less.
const MAX_LOG_BYTES: u64 = 64 << 20;

/// The validations of a PyTorch run.
#[derive(Clone, Debug, PartialEq)]
pub struct TorchLog {
    /// The file read.
    pub source: PathBuf,
    /// `(step, val_loss, val_loss_ema)` in the file's order.
    pub points: Vec<(u64, f64, Option<f64>)>,
}

impl TorchLog {
    /// Reads `path`; anything but a JSON object with a non-empty `log` of rows holding a whole
    /// `step` and a finite `val_loss` is a one-line error naming the file.
    pub fn read(path: &Path) -> Result<TorchLog, CliError> {
        let bad = |why: String| CliError::invalid("--torch-log", format!("{}: {why}", quote_path(path)));
        let size = fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
        if size > MAX_LOG_BYTES {
            return Err(bad(format!("{size} bytes, more than a log holds ({MAX_LOG_BYTES} at most)")));
        }
        let text = fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let rows = json["log"].as_array().filter(|rows| !rows.is_empty()).ok_or_else(|| {
            bad("no \"log\" of validations (write it with torch_char_gpt.py --json FILE)".to_string())
        })?;
        let points = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let step = row["step"].as_u64();
                let val = row["val_loss"].as_f64().filter(|v| v.is_finite());
                let ema = row["val_loss_ema"].as_f64().filter(|v| v.is_finite());
                match (step, val) {
                    (Some(step), Some(val)) => Ok((step, val, ema)),
                    _ => Err(bad(format!("log row {i} lacks a whole \"step\" or a finite \"val_loss\""))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TorchLog { source: path.to_path_buf(), points })
    }

    /// The last validation loss.
    pub fn val_loss(&self) -> f64 {
        self.points.last().map_or(f64::NAN, |p| p.1)
    }

    /// The last validation loss of the EMA weights, if logged.
    pub fn val_loss_ema(&self) -> Option<f64> {
        self.points.last().and_then(|p| p.2)
    }
}

/// Draws this run's validation curves (weights and average) beside PyTorch's into `path`.
pub fn write_figure(path: &Path, ours: &History, torch: &TorchLog, seed: u64) -> Result<(), CliError> {
    let ours_val = ours.epochs.iter().map(|e| (e.step as f64, e.test_loss)).collect();
    let ours_ema =
        ours.epochs.iter().filter_map(|e| e.averaged_test_loss.map(|a| (e.step as f64, a))).collect();
    let torch_val = torch.points.iter().map(|&(s, v, _)| (s as f64, v)).collect();
    let torch_ema = torch.points.iter().filter_map(|&(s, _, e)| e.map(|e| (s as f64, e))).collect();
    let series = vec![
        Series { label: "adamant".to_string(), points: ours_val },
        Series { label: "adamant, EMA weights".to_string(), points: ours_ema },
        Series { label: "PyTorch".to_string(), points: torch_val },
        Series { label: "PyTorch, EMA weights".to_string(), points: torch_ema },
    ];
    let title = format!("char_gpt, seed {seed}: validation loss, adamant and PyTorch");
    let svg = line_chart(&title, "step", "validation loss (nats)", &series, false)
        .map_err(|e| CliError::invalid("--torch-log", e))?;
    adamant::tensor::io::write_atomic(path, svg.as_bytes())
        .map_err(|e| CliError::invalid("--out", format!("{}: {e}", path.display())))
}
