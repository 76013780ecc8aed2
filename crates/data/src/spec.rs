//! What each dataset consists of and where it can be downloaded from.
//!
//! The checksums and sizes are constants in the code: a download is accepted only if every
//! file has its size and hashes to its constant, whatever mirror it came from. A [`Mirror`]
//! (`$ADAMANT_MIRROR`, or `--mirror` in the examples) replaces the built-in mirrors.

use std::ffi::OsStr;
use std::path::PathBuf;

/// One file of a dataset as stored in its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFile {
    /// File name in the dataset directory (e.g. `train-images-idx3-ubyte.gz`).
    pub name: &'static str,
    /// sha256 (lowercase hex) of the file's *uncompressed* content: gzip streams of the same
    /// data differ between mirrors, the data does not.
    pub sha256: &'static str,
    /// Size in bytes of the uncompressed content (what `sha256` is of). Enforced exactly, and
    /// decompression stops one byte past it, so a gzip bomb costs no more than this.
    pub size: u64,
    /// Size in bytes of the file as the dataset's own mirrors serve it: the gzip stream for a
    /// `.gz` name, else equal to `size`. A download from any source may be no larger: a longer
    /// body is cut off one byte past it, and a larger `Content-Length` is refused unread.
    ///
    /// An upper bound rather than an exact size for `.gz` files, because the checksum is of
    /// the content and other copies of the same data are compressed differently (Debian's
    /// Fashion-MNIST files are the upstream ones without the stored file name, 23 or 24 bytes
    /// shorter); a copy compressed worse than the original is refused with a message saying so.
    pub download_size: u64,
}

/// How a dataset's files arrive from a mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packaging {
    /// Each [`DataFile`] is fetched as `<mirror><name>`.
    Files,
    /// One archive `<mirror><name>` with this sha256 and size (of the archive bytes) is
    /// fetched and the dataset's files are extracted from it.
    TarGz {
        /// Archive file name on the mirror.
        name: &'static str,
        /// sha256 of the archive (lowercase hex).
        sha256: &'static str,
        /// Size of the archive in bytes, enforced exactly (a longer body is cut off one byte
        /// past it).
        size: u64,
        /// Directory inside the archive holding the files.
        inner_dir: &'static str,
    },
}

/// A dataset: its name, files, mirrors and packaging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Directory name under a data root (`mnist`, `fashion-mnist`, `cifar10`).
    pub name: &'static str,
    /// The files a complete copy holds.
    pub files: &'static [DataFile],
    /// Base URLs, tried in order; a file's URL is the base followed by its name. A [`Mirror`]
    /// given by the user replaces them.
    pub mirrors: &'static [&'static str],
    /// How the files arrive.
    pub packaging: Packaging,
}

/// The canonical CIFAR-10 binary archive (`cifar-10-binary.tar.gz`, 170,052,171 bytes), its
/// batches under `cifar-10-batches-bin/`.
///
/// The dataset's authors publish only an md5 for it (`c32a1d4ab5d03f1284b67883e8d87530`, on
/// the CIFAR-10 home page). The sha256 here is the one independent loaders pin for the same
/// archive (gomlx's `examples/cifar/cifar.go`, ankane/torchvision-ruby's
/// `lib/torchvision/datasets/cifar10.rb`); a third project's records give this sha256 together
/// with the authors' md5 for the same 170,052,171-byte file.
pub const CIFAR10_ARCHIVE: Packaging = Packaging::TarGz {
    name: "cifar-10-binary.tar.gz",
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    size: 170_052_171,
    inner_dir: "cifar-10-batches-bin",
};

/// Environment variable naming a [`Mirror`] that replaces every dataset's built-in mirrors.
pub const MIRROR_ENV: &str = "ADAMANT_MIRROR";

/// The user's copy of the datasets' downloads (`$ADAMANT_MIRROR`, `--mirror`), used *instead
/// of* the built-in mirrors: every file is fetched from `<base>/<dataset>/<file name>`, e.g.
/// `<base>/mnist/train-images-idx3-ubyte.gz` or, for CIFAR-10, the archive
/// `<base>/cifar10/cifar-10-binary.tar.gz`.
///
/// A mirror holds what the dataset's own mirrors serve (the `.gz` files, the CIFAR-10
/// archive), not the files they unpack to: a directory that already holds a dataset's files is
/// a data root (`$ADAMANT_DATA`, `--data`), read in place. What comes from a mirror is checked
/// like any download: size limits, sha256, `.part` file renamed only once verified.
///
/// It replaces the built-in list rather than going first because a mirror is set where those
/// should not be used: offline machines (a fallback would only add timeouts, and an error
/// about the internet instead of about the mirror), networks where outside requests are not
/// wanted, or a pinned copy the user wants to be sure was the one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mirror {
    /// An `http://` or `https://` base URL, without a trailing `/`.
    Url(String),
    /// A local directory (given as a path or a `file://` URL).
    Dir(PathBuf),
}

impl Mirror {
    /// Parses a mirror as `$ADAMANT_MIRROR` and `--mirror` take it: an `http://` or `https://`
    /// base URL, a `file:///` URL or a path of an existing directory. The error is one line
    /// quoting the value.
    pub fn parse(value: impl AsRef<OsStr>) -> Result<Mirror, String> {
        let value = value.as_ref();
        let quoted = format!("'{}'", value.to_string_lossy().escape_debug());
        if value.is_empty() {
            return Err("empty (expected an http:// or https:// base URL, or a directory)".to_string());
        }
        let dir = |path: PathBuf| {
            if path.is_dir() {
                Ok(Mirror::Dir(path))
            } else if path.exists() {
                Err(format!("{quoted} is not a directory"))
            } else {
                Err(format!("{quoted}: no such directory"))
            }
        };
        // Not UTF-8: only a path can be that.
        let Some(text) = value.to_str() else { return dir(PathBuf::from(value)) };
        let Some((scheme, rest)) = text.split_once("://") else { return dir(PathBuf::from(text)) };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => {
                if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
                    return Err(format!("{quoted}: no host in the URL"));
                }
                Ok(Mirror::Url(text.trim_end_matches('/').to_string()))
            }
            // `file:///abs/dir` (an empty host) or `file://localhost/abs/dir`.
            "file" => match rest.strip_prefix("localhost").unwrap_or(rest) {
                path if path.starts_with('/') => dir(PathBuf::from(path)),
                _ => Err(format!("{quoted}: expected file:///absolute/path")),
            },
            _ => Err(format!(
                "{quoted}: unsupported scheme (expected http://, https://, file:// or a directory)"
            )),
        }
    }

    /// The mirror named by `$ADAMANT_MIRROR`: `None` if it is unset or empty, an error (one
    /// line, naming the variable) if it does not parse.
    pub fn from_env() -> Result<Option<Mirror>, String> {
        match std::env::var_os(MIRROR_ENV) {
            Some(value) if !value.is_empty() => {
                Mirror::parse(&value).map(Some).map_err(|why| format!("{MIRROR_ENV}: {why}"))
            }
            _ => Ok(None),
        }
    }
}
