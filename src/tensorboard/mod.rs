//! TensorBoard event files (cargo feature `tensorboard`): watch a run's curves, its weights'
//! and gradients' histograms and Adam's internals per layer while it trains, in the tool
//! PyTorch users already open (`tensorboard --logdir DIR`).
//!
//! The files are TensorBoard's own format, as `torch.utils.tensorboard` writes it: in each run
//! directory one `events.out.tfevents.<time>.<host>.<pid>.0` file of length-prefixed records
//! with masked CRC-32C checksums ([`record`]), each an `Event` protocol buffer ([`proto`]), the
//! first holding the file version, the others scalars (`simple_value`) and histograms
//! (`HistogramProto` with TensorFlow's buckets, [`histogram`]).
//!
//! [`Logger`] is what a training loop uses, and [`TrainLog`] it with the step times a loop
//! reports ([`fit`](crate::train::fit) uses that, given
//! [`FitConfig::tensorboard`](crate::train::FitConfig::tensorboard)); [`EventWriter`] writes
//! tags of your own.
//!
//! ```
//! use adamant::tensorboard::{read_events, EventWriter};
//!
//! let dir = std::env::temp_dir().join(format!("adamant-tb-doc-{}", std::process::id()));
//! let mut writer = EventWriter::create(&dir)?;
//! for step in 1..=3u64 {
//!     writer.add_scalar("train/loss", step, 1.0 / step as f32)?;
//! }
//! writer.add_histogram("weights/w", 3, &[0.5, -0.25, 2.0])?;
//! writer.flush()?;
//! let events = read_events(writer.path())?;
//! assert_eq!(events.len(), 5); // the file version, then one event per call
//! assert_eq!(events[3].summary.as_ref().unwrap().value[0].simple_value, Some(1.0 / 3.0));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), adamant::tensorboard::TensorBoardError>(())
//! ```

pub mod histogram;
mod logger;
pub mod proto;
pub mod record;
mod train_log;
mod writer;

/// Where [`fit`](crate::train::fit) writes a run's events and what it logs
/// ([`FitConfig::tensorboard`](crate::train::FitConfig::tensorboard)).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorBoard {
    /// The run's directory (one run per directory: `tensorboard --logdir` on its parent
    /// shows runs side by side).
    pub dir: std::path::PathBuf,
    /// What is logged, how often.
    pub options: LogOptions,
}

pub use logger::{traced_coordinates, LogOptions, Logger, StepScalars};
pub use train_log::TrainLog;
pub use writer::{
    event_files, histogram_value, read_events, scalar, EventWriter, TensorBoardError, FILE_PREFIX,
};
