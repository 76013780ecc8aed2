//! [`EventWriter`]: one TensorBoard event file per run directory, written record by record,
//! continued by a resumed run.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::histogram::histogram;
use super::proto::{Event, Summary, SummaryValue};
use super::record::{write_record, RecordError, Records};

/// The start of every event file's name; TensorBoard reads the files whose names contain
/// `tfevents`.
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// The version string of the first record, as TensorFlow and torch write it.
const FILE_VERSION: &str = "brain.Event:2";

/// An event file that could not be written or read, with the file it concerns.
#[derive(Debug)]
pub struct TensorBoardError {
    /// The event file (or its directory).
    pub path: PathBuf,
    /// What went wrong.
    pub source: io::Error,
}

impl fmt::Display for TensorBoardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for TensorBoardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn error_at(path: &Path) -> impl FnOnce(io::Error) -> TensorBoardError + '_ {
    move |source| TensorBoardError { path: path.to_path_buf(), source }
}

/// Writes the events of one run into `<dir>/events.out.tfevents.<time>.<host>.<pid>.0`.
///
/// Every record goes out in one `write` once [`EventWriter::flush`] is called (the
/// [`Logger`](super::Logger) flushes after each step it logs), so a run killed at any moment
/// leaves a file TensorBoard reads up to its last whole record; [`EventWriter::resume`] cuts
/// off what a resumed run will write again.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// A new event file in `dir` (created if missing). Event files an earlier run left in
    /// `dir` itself are removed first, as a new run replaces its CSV logs: one run per
    /// directory, so TensorBoard does not draw two runs as one.
    pub fn create(dir: &Path) -> Result<EventWriter, TensorBoardError> {
        fs::create_dir_all(dir).map_err(error_at(dir))?;
        for old in event_files(dir)? {
            fs::remove_file(&old).map_err(error_at(&old))?;
        }
        EventWriter::start(dir)
    }

    /// Continues the run in `dir` after a resume from the checkpoint of `step`: the newest
    /// event file there loses the records of steps after `step` (logged after that checkpoint
    /// was written, and about to be logged again) and a torn last record, and is appended to.
    /// Without an event file in `dir`, starts one. A file damaged before its end (a checksum
    /// that does not match, a record that is not an event) is refused, naming it.
    pub fn resume(dir: &Path, step: u64) -> Result<EventWriter, TensorBoardError> {
        fs::create_dir_all(dir).map_err(error_at(dir))?;
        let Some(path) = event_files(dir)?.pop() else {
            return EventWriter::start(dir);
        };
        let keep = resume_point(&path, step)?;
        let file = OpenOptions::new().write(true).open(&path).map_err(error_at(&path))?;
        file.set_len(keep).map_err(error_at(&path))?;
        drop(file);
        let file = OpenOptions::new().append(true).open(&path).map_err(error_at(&path))?;
        Ok(EventWriter { path, out: BufWriter::new(file) })
    }

    fn start(dir: &Path) -> Result<EventWriter, TensorBoardError> {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!("{FILE_PREFIX}{seconds}.{}.{}.0", host_name(), std::process::id());
        let path = dir.join(name);
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(error_at(&path))?;
        let mut writer = EventWriter { path, out: BufWriter::new(file) };
        let first =
            Event { wall_time: now(), step: 0, file_version: Some(FILE_VERSION.into()), summary: None };
        writer.write_event(&first)?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: &Event) -> Result<(), TensorBoardError> {
        write_record(&mut self.out, &event.encode_to_vec()).map_err(error_at(&self.path))
    }

    /// One event holding `values` at `step`.
    pub fn write_values(&mut self, step: u64, values: Vec<SummaryValue>) -> Result<(), TensorBoardError> {
        if values.is_empty() {
            return Ok(());
        }
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.write_event(&Event {
            wall_time: now(),
            step,
            file_version: None,
            summary: Some(Summary { value: values }),
        })
    }

    /// A scalar `value` under `tag` at `step` (`add_scalar`).
    pub fn add_scalar(&mut self, tag: &str, step: u64, value: f32) -> Result<(), TensorBoardError> {
        self.write_values(step, vec![scalar(tag, value)])
    }

    /// A histogram of `values` under `tag` at `step` (`add_histogram` with TensorFlow's
    /// buckets); nothing when no value is finite.
    pub fn add_histogram(&mut self, tag: &str, step: u64, values: &[f32]) -> Result<(), TensorBoardError> {
        self.write_values(step, histogram_value(tag, values).into_iter().collect())
    }

    /// Hands everything written so far to the operating system.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.out.flush().map_err(error_at(&self.path))
    }
}

/// A scalar summary value.
pub fn scalar(tag: &str, value: f32) -> SummaryValue {
    SummaryValue { tag: tag.to_string(), simple_value: Some(value), histo: None }
}

/// A histogram summary value of `values`, or `None` when no value is finite.
pub fn histogram_value(tag: &str, values: &[f32]) -> Option<SummaryValue> {
    Some(SummaryValue { tag: tag.to_string(), simple_value: None, histo: Some(histogram(values)?) })
}

/// The event files directly in `dir`, in name order (which is time order: the names start
/// with the creation time).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>, TensorBoardError> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(error_at(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(error_at(dir))?;
        let is_file = entry.file_type().map_err(error_at(dir))?.is_file();
        if is_file && entry.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Every event of the file at `path`, up to a torn last record (which a killed writer leaves
/// and TensorBoard skips too). A damaged record before the end is an error naming the file.
pub fn read_events(path: &Path) -> Result<Vec<Event>, TensorBoardError> {
    let mut events = Vec::new();
    scan(path, |_, event| {
        events.push(event);
        true
    })?;
    Ok(events)
}

/// Reads the events of `path` in order, calling `visit(offset, event)` until it returns
/// false; returns the offset after the last record read whole.
fn scan(path: &Path, mut visit: impl FnMut(u64, Event) -> bool) -> Result<u64, TensorBoardError> {
    let file = File::open(path).map_err(error_at(path))?;
    let mut end = 0;
    for item in Records::new(BufReader::new(file)) {
        let (offset, data) = match item {
            Ok(record) => record,
            Err(RecordError::Truncated) => break,
            Err(e) => return Err(damaged(path, end, &e.to_string())),
        };
        let event =
            Event::decode(&data[..]).map_err(|e| damaged(path, offset, &format!("not an event ({e})")))?;
        if !visit(offset, event) {
            return Ok(offset);
        }
        end = offset + data.len() as u64 + 16;
    }
    Ok(end)
}

fn damaged(path: &Path, offset: u64, what: &str) -> TensorBoardError {
    let message = format!("damaged event file at byte {offset}: {what}; move it away to start a new one");
    TensorBoardError { path: path.to_path_buf(), source: io::Error::new(io::ErrorKind::InvalidData, message) }
}

/// The length to keep of the event file `path` when resuming at `step`: up to the first event
/// of a later step, or to the last whole record.
fn resume_point(path: &Path, step: u64) -> Result<u64, TensorBoardError> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    scan(path, |_, event| event.step <= step)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The machine's name for the file name (as torch uses `socket.gethostname()`), kept to
/// characters safe in a file name.
fn host_name() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}
