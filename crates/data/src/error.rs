//! The one error type of the data crate: every failure names the file (or URL) and says what
//! was expected and what was found.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a dataset could not be read, found or downloaded.
#[derive(Debug)]
pub enum DataError {
    /// A file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file's content is not what its format requires.
    Format {
        /// The file.
        path: PathBuf,
        /// What the format requires, e.g. "magic 0x00000803 (idx3 u8 images)".
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// Two files that belong together disagree (e.g. image and label counts).
    Mismatch {
        /// The first file.
        path: PathBuf,
        /// The second file.
        other: PathBuf,
        /// What disagrees.
        message: String,
    },
    /// A dataset was not in any of the places looked at (and was not downloaded).
    NotFound {
        /// The dataset's name.
        dataset: String,
        /// Every place looked at, in order, with why it was not used.
        searched: Vec<String>,
    },
    /// A download failed on every mirror.
    Download {
        /// The file being fetched.
        file: String,
        /// One line per mirror tried: URL and what went wrong.
        attempts: Vec<String>,
    },
    /// A downloaded or local file's checksum is wrong.
    Checksum {
        /// The file (or URL).
        path: String,
        /// The sha256 it must have.
        expected: String,
        /// The sha256 it has.
        found: String,
    },
}

impl DataError {
    /// A [`DataError::Format`] for `path`.
    pub fn format(
        path: impl Into<PathBuf>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> DataError {
        DataError::Format { path: path.into(), expected: expected.into(), found: found.into() }
    }

    /// A [`DataError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> DataError {
        DataError::Io { path: path.into(), source }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Format { path, expected, found } => {
                write!(f, "{}: expected {expected}, found {found}", path.display())
            }
            DataError::Mismatch { path, other, message } => {
                write!(f, "{} and {}: {message}", path.display(), other.display())
            }
            DataError::NotFound { dataset, searched } => {
                write!(f, "dataset '{dataset}' not found; looked in: {}", searched.join("; "))
            }
            DataError::Download { file, attempts } => {
                write!(f, "could not download {file}: {}", attempts.join("; "))
            }
            DataError::Checksum { path, expected, found } => {
                write!(f, "{path}: sha256 {found} does not match the expected {expected}")
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
