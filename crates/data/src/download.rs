//! Checksummed, size-limited download of a dataset from its mirrors or the user's.
//!
//! Every file is streamed to `<dest>/<name>.part` while its sha256 is computed on the way
//! (for a `.gz` file, of the *uncompressed* content, gunzipped in the same pass, so mirrors
//! that gzip differently all pass), and only a verified `.part` is renamed to its final name:
//! a file under its final name is always complete and verified, and a failed attempt removes
//! its `.part`. Any failure on a mirror — connection refused or timed out, a status other than
//! 200, a truncated or too long body, an HTML error page served with status 200, a wrong size
//! or checksum — moves on to the next mirror; the error returned when all mirrors failed
//! lists one line per mirror. A failed call also removes every directory it created (only if
//! empty), so `./datasets/` does not appear just because a download was tried.
//!
//! Sizes are known in advance ([`DataFile::size`], [`DataFile::download_size`], the archive's
//! size) and enforced, so no mirror can fill the disk or keep a download going forever: a
//! larger `Content-Length` is refused before the body is read, a body without one is cut off
//! one byte past the expected size, and gunzipping stops one byte past the content size (a
//! gzip bomb costs nothing more). A mirror that stops sending fails after
//! [`DownloadOptions::read_timeout`].
//!
//! Where from: the dataset's built-in mirrors (HTTPS wherever the source offers it), or, when
//! [`DownloadOptions::mirror`] is set (`$ADAMANT_MIRROR` for [`download`] and
//! [`crate::locate::load`], `--mirror` in the examples), only that [`Mirror`]: a base URL or
//! a local directory holding `<dataset>/<file name>`. A local mirror's files are copied with
//! the same limits and checks. HTTP proxies come from the environment: the client (ureq)
//! reads `ALL_PROXY`, `HTTPS_PROXY` and `HTTP_PROXY` (or their lowercase spellings) and
//! `NO_PROXY`. An `https://` URL is never redirected to plain `http://`.
//!
//! This module needs the cargo feature `download` (plain HTTP); HTTPS needs the feature
//! `https` too (rustls). Without it an `https://` mirror fails with a message saying so, and
//! the next mirror is tried.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::spec::{DataFile, DatasetSpec, Mirror, Packaging};
use crate::DataError;

/// How [`download_with`] behaves; [`Default`] is the built-in mirrors with the timeouts below.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// Show a progress bar on stderr. It is hidden anyway when stderr is not a terminal, so
    /// logs and CI output never fill with redraws.
    pub progress: bool,
    /// Longest wait for a TCP (and TLS) connection to a mirror.
    pub connect_timeout: Duration,
    /// Longest wait for any single read (response headers or a piece of the body): a mirror
    /// that stalls fails after this, while a slow but moving download is never cut off.
    pub read_timeout: Duration,
    /// Fetch every file from this mirror only, instead of the dataset's own mirrors (see
    /// [`Mirror`] for the layout and why it replaces rather than precedes them).
    pub mirror: Option<Mirror>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            progress: true,
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
            mirror: None,
        }
    }
}

/// Downloads every file of `spec` into `dest` (created if missing) with the default
/// [`DownloadOptions`] and the mirror of `$ADAMANT_MIRROR` if set (a bad value is an error
/// naming the variable); files already there with the right checksum are kept as they are.
pub fn download(spec: &DatasetSpec, dest: &Path) -> Result<(), DataError> {
    let mirror = Mirror::from_env()
        .map_err(|why| DataError::Download { file: spec.name.to_string(), attempts: vec![why] })?;
    download_with(spec, dest, &DownloadOptions { mirror, ..DownloadOptions::default() })
}

/// Downloads every file of `spec` into `dest` (created if missing), trying `spec.mirrors` in
/// order for each file or archive, or only `options.mirror` if it is set.
///
/// Files already in `dest` that verify are kept and not fetched again. On failure nothing
/// unverified, no `.part` and no directory this call created and left empty remains; with
/// [`Packaging::Files`] the files of the dataset that did verify before the failure stay
/// (they are complete, and a retry skips them), with [`Packaging::TarGz`] nothing extracted
/// by this call stays.
pub fn download_with(spec: &DatasetSpec, dest: &Path, options: &DownloadOptions) -> Result<(), DataError> {
    let created = missing_dirs(dest);
    let result = fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e)).and_then(|()| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_resolve(Some(options.connect_timeout))
            .timeout_connect(Some(options.connect_timeout))
            .timeout_per_read(Some(options.read_timeout))
            // Statuses are checked here, so a 404 is reported like any other mirror failure.
            .http_status_as_error(false)
            .build()
            .into();
        let fetcher = Fetcher { agent, options };
        match spec.packaging {
            Packaging::Files => download_files(spec, dest, &fetcher),
            Packaging::TarGz { name, sha256, size, inner_dir } => {
                let archive = Expected { max_len: size, gzip: false, len: size, sha256, what: "archive" };
                download_archive(spec, dest, &fetcher, name, &archive, inner_dir)
            }
        }
    });
    if result.is_err() {
        // Deepest first, and only if empty: a directory this call made and filled with nothing
        // should not be left looking like a (broken) dataset, nor its parents like a data root.
        for dir in &created {
            let _ = fs::remove_dir(dir);
        }
    }
    result
}

/// The directories `create_dir_all(dest)` would create, deepest first.
fn missing_dirs(dest: &Path) -> Vec<PathBuf> {
    // `Path::ancestors` of a relative path ends in "", which never exists: stop before it.
    dest.ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && fs::symlink_metadata(dir).is_err())
        .map(Path::to_path_buf)
        .collect()
}

/// Why one attempt failed: a mirror's fault (try the next one) or a local one (stop, since
/// no mirror can fix a full disk or an unwritable directory).
enum Failure {
    Mirror(String),
    Local(DataError),
}

/// What one download must deliver.
struct Expected<'a> {
    /// Most bytes the body may have.
    max_len: u64,
    /// Whether the checksum and `len` are of the gunzipped body rather than the body itself.
    gzip: bool,
    /// Exact length of the checksummed content.
    len: u64,
    /// sha256 of the checksummed content (lowercase hex).
    sha256: &'a str,
    /// What the checksum is of, for messages.
    what: &'static str,
}

impl Expected<'_> {
    /// What a download of `file` must deliver.
    fn file(file: &DataFile) -> Expected<'_> {
        let gzip = file.name.ends_with(".gz");
        Expected {
            max_len: file.download_size,
            gzip,
            len: file.size,
            sha256: file.sha256,
            what: if gzip { "uncompressed content" } else { "content" },
        }
    }
}

/// Where one attempt fetches a file from.
enum Source {
    /// An `http://` or `https://` URL.
    Url(String),
    /// A file of a local mirror directory.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(url) => f.write_str(url),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The places to try for the file (or archive) `name` of `spec`, in order: the user's mirror
/// alone if there is one, else each of the dataset's mirrors.
fn sources(spec: &DatasetSpec, options: &DownloadOptions, name: &str) -> Vec<Source> {
    match &options.mirror {
        Some(Mirror::Url(base)) => vec![Source::Url(format!("{base}/{}/{name}", spec.name))],
        Some(Mirror::Dir(dir)) => vec![Source::File(dir.join(spec.name).join(name))],
        None => spec.mirrors.iter().map(|mirror| Source::Url(format!("{mirror}{name}"))).collect(),
    }
}

/// The line of an error when there was nothing to try.
fn no_mirrors(spec: &DatasetSpec) -> String {
    format!("dataset '{}' has no mirrors (set a mirror: $ADAMANT_MIRROR or --mirror)", spec.name)
}

/// The agent and options shared by all fetches of one download.
struct Fetcher<'a> {
    agent: ureq::Agent,
    options: &'a DownloadOptions,
}

/// Removes a file when dropped unless [`PartFile::commit`] was called, so every early return
/// (and a panic) cleans up the `.part` it was writing.
struct PartFile {
    path: PathBuf,
    armed: bool,
}

impl PartFile {
    fn new(path: PathBuf) -> PartFile {
        PartFile { path, armed: true }
    }

    /// Renames the `.part` to `target` (replacing any stale file there) and disarms the guard.
    fn commit(mut self, target: &Path) -> Result<(), DataError> {
        fs::rename(&self.path, target).map_err(|e| DataError::io(target, e))?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `<dest>/<name>.part`.
fn part_path(dest: &Path, name: &str) -> PathBuf {
    dest.join(format!("{name}.part"))
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Hashing<R> {
        Hashing { inner, hasher: Sha256::new(), len: 0 }
    }

    /// Lowercase hex sha256 and length of everything read so far.
    fn finish(self) -> (String, u64) {
        (format!("{:x}", self.hasher.finalize()), self.len)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// sha256 and length of what `reader` yields, reading at most `cap + 1` bytes: one byte past
/// `cap` tells that the content is too long, whatever it would have grown to.
fn sha256_capped(reader: impl Read, cap: u64) -> io::Result<(String, u64)> {
    let mut hashing = Hashing::new(reader.take(cap.saturating_add(1)));
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}

/// sha256 and length of the content of the file at `path`, gunzipped first when `name` ends
/// in `.gz`, read no further than one byte past `cap`. Opening the file is a local failure;
/// undecodable gzip is the content's fault.
fn content_sha256(path: &Path, name: &str, cap: u64) -> Result<(String, u64), Failure> {
    let file = File::open(path).map_err(|e| Failure::Local(DataError::io(path, e)))?;
    let reader = BufReader::new(file);
    if name.ends_with(".gz") {
        sha256_capped(MultiGzDecoder::new(reader), cap)
            .map_err(|e| Failure::Mirror(format!("not a valid gzip file ({e})")))
    } else {
        sha256_capped(reader, cap).map_err(|e| Failure::Local(DataError::io(path, e)))
    }
}

/// Whether `path` exists and its content has `file`'s size and checksum.
fn already_valid(path: &Path, file: &DataFile) -> bool {
    path.is_file()
        && matches!(content_sha256(path, file.name, file.size),
            Ok((sha256, len)) if len == file.size && sha256 == file.sha256)
}

/// Whether `bytes` (the start of a body) look like an HTML page rather than data.
fn looks_like_html(bytes: &[u8]) -> bool {
    let start: Vec<u8> = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(14)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
}

/// Why a [`Tee`] stopped: the caller sorts these out after a decoder reading through the tee
/// has turned them all into plain `io::Error`s.
enum Fault {
    /// The body went past the expected size.
    TooLong,
    /// Reading the body failed (the mirror's fault).
    Read(io::Error),
    /// Writing the `.part` failed (a local fault).
    Write(io::Error),
}

/// A body (of a response or a local mirror's file) on its way to the `.part` file: every
/// byte read through it is written there, counted, and the first ones kept; it stops with a
/// [`Fault`] at the first byte past `limit`, so an endless body costs `limit + 1` bytes.
struct Tee<'a, R> {
    body: R,
    out: BufWriter<File>,
    limit: u64,
    total: u64,
    eof: bool,
    /// The first bytes, to tell an HTML page served as if it were the file.
    head: Vec<u8>,
    fault: Option<Fault>,
    bar: &'a ProgressBar,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.fault.is_some() {
            return Err(io::Error::other("the download already failed"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // No more than one byte past the limit is ever asked for.
        let room = self.limit.saturating_add(1) - self.total;
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = loop {
            match self.body.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let message = e.to_string();
                    self.fault = Some(Fault::Read(e));
                    return Err(io::Error::other(message));
                }
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(0);
        }
        self.total += n as u64;
        if self.total > self.limit {
            self.fault = Some(Fault::TooLong);
            return Err(io::Error::other("the body is longer than expected"));
        }
        if self.head.len() < 64 {
            self.head.extend(buf[..n].iter().take(64 - self.head.len()));
        }
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let message = e.to_string();
            self.fault = Some(Fault::Write(e));
            return Err(io::Error::other(message));
        }
        self.bar.set_position(self.total);
        Ok(n)
    }
}

/// Whether `e` (from a body read) is one of ureq's timeouts.
fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)))
}

impl Fetcher<'_> {
    /// A progress bar for `len` bytes, hidden unless asked for and stderr is a terminal.
    fn progress_bar(&self, len: u64, label: &str) -> ProgressBar {
        if !self.options.progress || !io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        bar
    }

    /// The timeouts, for messages.
    fn timeouts(&self) -> String {
        format!(
            "connect timeout {:?}, read timeout {:?}",
            self.options.connect_timeout, self.options.read_timeout
        )
    }

    /// Fetches `source` into a new file at `part`, checking it against `expected` on the way.
    /// Fails as the mirror's fault on anything wrong with what arrives, as a local fault when
    /// the `.part` cannot be written.
    fn fetch(&self, source: &Source, part: &Path, label: &str, expected: &Expected) -> Result<(), Failure> {
        match source {
            Source::Url(url) => self.fetch_url(url, part, label, expected),
            Source::File(path) => {
                let file = File::open(path).map_err(|e| Failure::Mirror(e.to_string()))?;
                let metadata = file.metadata().map_err(|e| Failure::Mirror(e.to_string()))?;
                if !metadata.is_file() {
                    return Err(Failure::Mirror("not a regular file".into()));
                }
                if metadata.len() > expected.max_len {
                    return Err(Failure::Mirror(format!(
                        "{} bytes, more than the expected {}: not copied",
                        metadata.len(),
                        expected.max_len
                    )));
                }
                self.receive(file, Some(metadata.len()), part, label, expected)
            }
        }
    }

    /// GETs `url` into `part` (see [`Fetcher::fetch`]): a status other than 200, an HTML page
    /// or a `Content-Length` above the expected size fail before the body is read.
    fn fetch_url(&self, url: &str, part: &Path, label: &str, expected: &Expected) -> Result<(), Failure> {
        let https = url.starts_with("https://");
        if https && !cfg!(feature = "https") {
            return Err(Failure::Mirror(
                "https is not available: adamant-data was built without its `https` feature \
                 (rebuild with default features, or use an http mirror)"
                    .into(),
            ));
        }
        let response = self
            .agent
            .get(url)
            .config()
            // A redirect from https to plain http would undo the point of an https mirror.
            .https_only(https)
            .build()
            .call()
            .map_err(|e| {
                Failure::Mirror(match e {
                    ureq::Error::Timeout(which) => format!("timed out ({which}; {})", self.timeouts()),
                    e => e.to_string(),
                })
            })?;
        if response.status() != 200 {
            // Anything but 200 is not the whole file (206 partial content included).
            return Err(Failure::Mirror(format!("HTTP status {} (expected 200)", response.status())));
        }
        if response.body().mime_type().is_some_and(|m| m.eq_ignore_ascii_case("text/html")) {
            return Err(Failure::Mirror(
                "served an HTML page (Content-Type: text/html) instead of the file".into(),
            ));
        }
        let announced = response.body().content_length();
        if let Some(len) = announced.filter(|&len| len > expected.max_len) {
            return Err(Failure::Mirror(format!(
                "Content-Length {len}, more than the expected {} bytes: not downloaded",
                expected.max_len
            )));
        }
        self.receive(response.into_body().into_reader(), announced, part, label, expected)
    }

    /// Streams `body` (of `announced` length, if known) into a new file at `part` and checks
    /// it against `expected` in the same pass: the sha256 (of the gunzipped stream for a
    /// `.gz`) is computed as the bytes arrive, and neither the body nor its content is read
    /// more than one byte past its expected size.
    fn receive(
        &self,
        body: impl Read,
        announced: Option<u64>,
        part: &Path,
        label: &str,
        expected: &Expected,
    ) -> Result<(), Failure> {
        let file = File::create(part).map_err(|e| Failure::Local(DataError::io(part, e)))?;
        let bar = self.progress_bar(announced.unwrap_or(expected.max_len), label);
        let mut tee = Tee {
            body,
            out: BufWriter::new(file),
            limit: expected.max_len,
            total: 0,
            eof: false,
            head: Vec::with_capacity(64),
            fault: None,
            bar: &bar,
        };
        let hashed = if expected.gzip {
            sha256_capped(MultiGzDecoder::new(&mut tee), expected.len)
        } else {
            sha256_capped(&mut tee, expected.len)
        };
        // The gzip stream, or the content cap, can end before the body does: read the rest
        // (no further than the limit), so that the `.part` is the whole body and a body too
        // long or shorter than announced is seen.
        let drained = match &hashed {
            Ok(_) if !tee.eof && tee.fault.is_none() => io::copy(&mut tee, &mut io::sink()).map(drop),
            _ => Ok(()),
        };
        let result = self.judge(&mut tee, part, announced, hashed, drained, expected);
        let result = result.and_then(|()| {
            // On disk before the rename, so a crash cannot leave a short file under the
            // final name.
            tee.out
                .flush()
                .and_then(|()| tee.out.get_ref().sync_all())
                .map_err(|e| Failure::Local(DataError::io(part, e)))
        });
        match &result {
            Ok(()) => bar.finish_and_clear(),
            Err(Failure::Mirror(message)) => bar.abandon_with_message(format!("{label}: {message}")),
            Err(Failure::Local(_)) => bar.abandon(),
        }
        result
    }

    /// What went wrong with a received body, first cause first: the `.part` could not be
    /// written, the body was too long, broke off or was shorter than announced, it is an HTML
    /// page, not gzip, or its content has the wrong size or checksum.
    fn judge<R: Read>(
        &self,
        tee: &mut Tee<'_, R>,
        part: &Path,
        announced: Option<u64>,
        hashed: io::Result<(String, u64)>,
        drained: io::Result<()>,
        expected: &Expected,
    ) -> Result<(), Failure> {
        let total = tee.total;
        let of = announced.map(|len| format!(" of {len}")).unwrap_or_default();
        match tee.fault.take() {
            Some(Fault::Write(e)) => return Err(Failure::Local(DataError::io(part, e))),
            Some(Fault::TooLong) => {
                return Err(Failure::Mirror(format!(
                    "sent more than the expected {} bytes (cut off after {total})",
                    expected.max_len
                )))
            }
            Some(Fault::Read(e)) if is_timeout(&e) => {
                return Err(Failure::Mirror(format!(
                    "timed out after {total}{of} bytes ({e}; {})",
                    self.timeouts()
                )))
            }
            Some(Fault::Read(e)) => {
                return Err(Failure::Mirror(format!("download broke off after {total}{of} bytes: {e}")))
            }
            None => {}
        }
        if let Some(len) = announced.filter(|&len| tee.eof && len != total) {
            return Err(Failure::Mirror(format!("truncated: received {total} of {len} bytes")));
        }
        if looks_like_html(&tee.head) {
            return Err(Failure::Mirror("served an HTML page instead of the file".into()));
        }
        drained.map_err(|e| Failure::Mirror(e.to_string()))?;
        let (found, len) = hashed.map_err(|e| {
            Failure::Mirror(if expected.gzip {
                format!("not a valid gzip file ({e})")
            } else {
                e.to_string()
            })
        })?;
        if len > expected.len {
            return Err(Failure::Mirror(format!(
                "the {} is longer than the expected {} bytes (stopped after {len})",
                expected.what, expected.len
            )));
        }
        if len != expected.len {
            return Err(Failure::Mirror(format!(
                "the {} is {len} bytes, expected {}",
                expected.what, expected.len
            )));
        }
        if found != expected.sha256 {
            return Err(Failure::Mirror(format!(
                "sha256 of the {} is {found}, expected {}",
                expected.what, expected.sha256
            )));
        }
        Ok(())
    }
}

/// [`Packaging::Files`]: each file from each source in turn, until one verifies.
fn download_files(spec: &DatasetSpec, dest: &Path, fetcher: &Fetcher) -> Result<(), DataError> {
    for file in spec.files {
        let target = dest.join(file.name);
        if already_valid(&target, file) {
            continue;
        }
        let expected = Expected::file(file);
        let mut attempts = Vec::new();
        let mut done = false;
        for source in sources(spec, fetcher.options, file.name) {
            let part = PartFile::new(part_path(dest, file.name));
            match fetcher.fetch(&source, &part.path, file.name, &expected) {
                Ok(()) => {
                    part.commit(&target)?;
                    done = true;
                    break;
                }
                Err(Failure::Mirror(message)) => attempts.push(format!("{source}: {message}")),
                Err(Failure::Local(e)) => return Err(e),
            }
        }
        if !done {
            if attempts.is_empty() {
                attempts.push(no_mirrors(spec));
            }
            return Err(DataError::Download { file: file.name.to_string(), attempts });
        }
    }
    Ok(())
}

/// [`Packaging::TarGz`]: the archive from the first source whose copy has the right size and
/// sha256, then the missing files extracted from `inner_dir`, each verified.
fn download_archive(
    spec: &DatasetSpec,
    dest: &Path,
    fetcher: &Fetcher,
    archive: &str,
    expected: &Expected,
    inner_dir: &str,
) -> Result<(), DataError> {
    let wanted: Vec<&DataFile> =
        spec.files.iter().filter(|f| !already_valid(&dest.join(f.name), f)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut attempts = Vec::new();
    let mut fetched = None;
    for source in sources(spec, fetcher.options, archive) {
        let part = PartFile::new(part_path(dest, archive));
        match fetcher.fetch(&source, &part.path, archive, expected) {
            Ok(()) => {
                fetched = Some((source, part));
                break;
            }
            Err(Failure::Mirror(message)) => attempts.push(format!("{source}: {message}")),
            Err(Failure::Local(e)) => return Err(e),
        }
    }
    let Some((source, part)) = fetched else {
        if attempts.is_empty() {
            attempts.push(no_mirrors(spec));
        }
        return Err(DataError::Download { file: archive.to_string(), attempts });
    };
    // The archive bytes are verified, so every other mirror would serve the same bytes: an
    // extraction failure is final, not a reason to try the next mirror.
    let mut written = Vec::new();
    let result = extract(&part.path, &source.to_string(), dest, inner_dir, &wanted, &mut written);
    if result.is_err() {
        for path in &written {
            let _ = fs::remove_file(path);
        }
    }
    drop(part); // the archive itself is not kept: only the dataset's files are
    result
}

/// Path components of an archive member, without `.` components (`./dir/x` is `dir/x`).
fn normal_components(path: &Path) -> Option<Vec<String>> {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(s) => s.to_str().map(str::to_string),
            _ => None, // `..`, `/`: never one of ours
        })
        .collect()
}

/// Extracts each of `wanted` from `inner_dir` of the verified archive at `archive_path`
/// (`url` is only for messages), pushing every final path it creates onto `written`.
///
/// A wanted `x.gz` is taken from the member `x.gz`, or else from the member `x`, gzipped on
/// the way: either way it is verified on its uncompressed content like any downloaded file.
fn extract(
    archive_path: &Path,
    url: &str,
    dest: &Path,
    inner_dir: &str,
    wanted: &[&DataFile],
    written: &mut Vec<PathBuf>,
) -> Result<(), DataError> {
    let label = format!("{url} (extracting)");
    let bad_archive = |e: io::Error| DataError::format(&label, "a readable .tar.gz archive", e.to_string());
    let file = File::open(archive_path).map_err(|e| DataError::io(archive_path, e))?;
    let mut tar = tar::Archive::new(MultiGzDecoder::new(BufReader::new(file)));
    let inner: Vec<String> = normal_components(Path::new(inner_dir)).unwrap_or_default();
    let mut done: HashSet<&str> = HashSet::new();
    for entry in tar.entries().map_err(bad_archive)? {
        let mut entry = entry.map_err(bad_archive)?;
        let member = entry.path().map_err(bad_archive)?.into_owned();
        let Some(parts) = normal_components(&member) else { continue };
        let Some((base, dir)) = parts.split_last() else { continue };
        if dir != inner.as_slice() {
            continue;
        }
        // The member is either the wanted file itself or, for a wanted `x.gz`, the plain `x`.
        let Some((file, gzip)) = wanted.iter().find_map(|f| {
            if f.name == base {
                Some((*f, false))
            } else if f.name.strip_suffix(".gz") == Some(base.as_str()) {
                Some((*f, true))
            } else {
                None
            }
        }) else {
            continue;
        };
        if done.contains(file.name) {
            return Err(DataError::format(
                &label,
                format!("one member {} for {}", member.display(), file.name),
                "a second one",
            ));
        }
        if !entry.header().entry_type().is_file() {
            return Err(DataError::format(
                &label,
                format!("{} to be a regular file", member.display()),
                format!("{:?}", entry.header().entry_type()),
            ));
        }
        let target = dest.join(file.name);
        let part = PartFile::new(part_path(dest, file.name));
        let out = File::create(&part.path).map_err(|e| DataError::io(&part.path, e))?;
        let write_err = |e: io::Error| DataError::io(&part.path, e);
        // Hashed on the way out of the archive, and read no further than one byte past the
        // expected size (the archive is verified, so this only guards against a wrong spec).
        let mut content = Hashing::new((&mut entry).take(file.size.saturating_add(1)));
        if gzip {
            let mut encoder = GzEncoder::new(BufWriter::new(out), Compression::default());
            io::copy(&mut content, &mut encoder).map_err(bad_archive)?;
            let out = encoder.finish().map_err(write_err)?;
            out.into_inner().map_err(|e| write_err(e.into_error()))?.sync_all().map_err(write_err)?;
        } else {
            let mut out = BufWriter::new(out);
            io::copy(&mut content, &mut out).map_err(bad_archive)?;
            out.into_inner().map_err(|e| write_err(e.into_error()))?.sync_all().map_err(write_err)?;
        }
        let (found, len) = content.finish();
        if len != file.size {
            return Err(DataError::format(
                &label,
                format!("{} of {} bytes", member.display(), file.size),
                if len > file.size { format!("more than {}", file.size) } else { format!("{len} bytes") },
            ));
        }
        if found != file.sha256 {
            return Err(DataError::Checksum {
                path: format!("{url}: {}", member.display()),
                expected: file.sha256.to_string(),
                found,
            });
        }
        part.commit(&target)?;
        written.push(target);
        done.insert(file.name);
    }
    let missing: Vec<&str> = wanted.iter().map(|f| f.name).filter(|name| !done.contains(name)).collect();
    if !missing.is_empty() {
        return Err(DataError::format(
            &label,
            format!("{} under '{inner_dir}/'", missing.join(", ")),
            "no such member in the archive",
        ));
    }
    Ok(())
}
