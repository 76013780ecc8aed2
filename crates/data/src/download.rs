//! Checksummed download of a dataset from its mirrors.
//!
//! Every file is fetched to `<dest>/<name>.part`, verified against the constant of its
//! [`DataFile`] (sha256 of the *uncompressed* content, so mirrors that gzip differently all
//! pass) and only then renamed to its final name: a file under its final name is always
//! complete and verified, and a failed attempt removes its `.part`. Any failure on a mirror —
//! connection refused or timed out, a status other than 200, a truncated body, an HTML error
//! page served with status 200, a wrong checksum — moves on to the next mirror; the error
//! returned when all mirrors failed lists one line per mirror.
//!
//! This module needs the cargo feature `download` (plain HTTP); HTTPS needs the feature
//! `https` too (rustls). Without it an `https://` mirror
//! fails with a message saying so, and the next mirror is tried.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::spec::{DataFile, DatasetSpec, Packaging};
use crate::DataError;

/// How [`download_with`] behaves; [`Default`] is what [`download`] uses.
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
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            progress: true,
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Downloads every file of `spec` into `dest` (created if missing) with the default
/// [`DownloadOptions`]; files already there with the right checksum are kept as they are.
pub fn download(spec: &DatasetSpec, dest: &Path) -> Result<(), DataError> {
    download_with(spec, dest, &DownloadOptions::default())
}

/// Downloads every file of `spec` into `dest` (created if missing), trying `spec.mirrors` in
/// order for each file or archive.
///
/// Files already in `dest` that verify are kept and not fetched again. On failure nothing
/// unverified and no `.part` is left; with [`Packaging::Files`] the files of the dataset that
/// did verify before the failure stay (they are complete, and a retry skips them), with
/// [`Packaging::TarGz`] nothing extracted by this call stays.
pub fn download_with(spec: &DatasetSpec, dest: &Path, options: &DownloadOptions) -> Result<(), DataError> {
    let created = !dest.exists();
    fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        .timeout_per_read(Some(options.read_timeout))
        // Statuses are checked here, so a 404 is reported like any other mirror failure.
        .http_status_as_error(false)
        .build()
        .into();
    let fetcher = Fetcher { agent, options };
    let result = match spec.packaging {
        Packaging::Files => download_files(spec, dest, &fetcher),
        Packaging::TarGz { name, sha256, inner_dir } => {
            download_archive(spec, dest, &fetcher, name, sha256, inner_dir)
        }
    };
    if result.is_err() && created {
        // Only succeeds if the directory is empty: a directory this call made and filled with
        // nothing should not be left looking like a (broken) dataset.
        let _ = fs::remove_dir(dest);
    }
    result
}

/// Why one attempt failed: a mirror's fault (try the next one) or a local one (stop, since
/// no mirror can fix a full disk or an unwritable directory).
enum Failure {
    Mirror(String),
    Local(DataError),
}

/// The agent and options shared by all fetches of one download.
struct Fetcher<'a> {
    agent: ureq::Agent,
    options: &'a DownloadOptions,
}

/// Removes a file when dropped unless [`PartFile::keep`] was called, so every early return
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

/// Lowercase hex sha256 of everything `reader` yields.
fn sha256_of(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(format!("{:x}", hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// sha256 of the content of the file at `path`, gunzipped first when `name` ends in `.gz`.
/// Opening the file is a local failure; undecodable gzip is the content's (the mirror's) fault.
fn content_sha256(path: &Path, name: &str) -> Result<String, Failure> {
    let file = File::open(path).map_err(|e| Failure::Local(DataError::io(path, e)))?;
    let reader = BufReader::new(file);
    if name.ends_with(".gz") {
        sha256_of(MultiGzDecoder::new(reader))
            .map_err(|e| Failure::Mirror(format!("not a valid gzip file ({e})")))
    } else {
        sha256_of(reader).map_err(|e| Failure::Local(DataError::io(path, e)))
    }
}

/// Whether `path` exists and its content hashes to `file`'s constant.
fn already_valid(path: &Path, file: &DataFile) -> bool {
    path.is_file() && matches!(content_sha256(path, file.name), Ok(h) if h == file.sha256)
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

impl Fetcher<'_> {
    /// A progress bar for `len` bytes (a spinner if unknown), hidden unless asked for and
    /// stderr is a terminal.
    fn progress_bar(&self, len: Option<u64>, label: &str) -> ProgressBar {
        if !self.options.progress || !io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = match len {
            Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(label.to_string());
        bar
    }

    /// GETs `url` into a new file at `part`, returning the body's sha256. Fails (as the
    /// mirror's fault) on a transport error, a status other than 200, an HTML page, or fewer
    /// bytes than the announced `Content-Length`.
    fn fetch(&self, url: &str, part: &Path, label: &str) -> Result<String, Failure> {
        if url.starts_with("https://") && !cfg!(feature = "https") {
            return Err(Failure::Mirror(
                "https is not available: adamant-data was built without its `https` feature \
                 (rebuild with default features, or use an http mirror)"
                    .into(),
            ));
        }
        let response = self.agent.get(url).call().map_err(|e| {
            Failure::Mirror(match e {
                ureq::Error::Timeout(which) => format!(
                    "timed out ({which}; connect timeout {:?}, read timeout {:?})",
                    self.options.connect_timeout, self.options.read_timeout
                ),
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
        let expected_len = response.body().content_length();

        let file = File::create(part).map_err(|e| Failure::Local(DataError::io(part, e)))?;
        let mut out = BufWriter::new(file);
        let mut body = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total: u64 = 0;
        // The first bytes, to tell an HTML page served as if it were the file.
        let mut head: Vec<u8> = Vec::with_capacity(64);
        let bar = self.progress_bar(expected_len, label);
        let result = loop {
            let n = match body.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let of = expected_len.map(|len| format!(" of {len}")).unwrap_or_default();
                    break Err(Failure::Mirror(format!("download broke off after {total}{of} bytes: {e}")));
                }
            };
            if n == 0 {
                break Ok(());
            }
            if head.len() < 64 {
                head.extend(buf[..n].iter().take(64 - head.len()));
            }
            if let Err(e) = out.write_all(&buf[..n]) {
                break Err(Failure::Local(DataError::io(part, e)));
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            bar.set_position(total);
        };
        let result = result.and_then(|()| match expected_len {
            Some(len) if len != total => {
                Err(Failure::Mirror(format!("truncated: received {total} of {len} bytes")))
            }
            _ if looks_like_html(&head) => {
                Err(Failure::Mirror("served an HTML page instead of the file".into()))
            }
            _ => Ok(()),
        });
        let result = result.and_then(|()| {
            // On disk before the rename, so a crash cannot leave a short file under the
            // final name.
            out.flush()
                .and_then(|()| out.get_ref().sync_all())
                .map_err(|e| Failure::Local(DataError::io(part, e)))
        });
        match &result {
            Ok(()) => bar.finish_and_clear(),
            Err(Failure::Mirror(message)) => bar.abandon_with_message(format!("{url}: {message}")),
            Err(Failure::Local(_)) => bar.abandon(),
        }
        result.map(|()| format!("{:x}", hasher.finalize()))
    }
}

/// [`Packaging::Files`]: each file from `<mirror><name>`, verified on its uncompressed content.
fn download_files(spec: &DatasetSpec, dest: &Path, fetcher: &Fetcher) -> Result<(), DataError> {
    for file in spec.files {
        let target = dest.join(file.name);
        if already_valid(&target, file) {
            continue;
        }
        let mut attempts = Vec::new();
        let mut done = false;
        for mirror in spec.mirrors {
            let url = format!("{mirror}{}", file.name);
            let part = PartFile::new(part_path(dest, file.name));
            let verified = fetcher.fetch(&url, &part.path, file.name).and_then(|_| {
                let found = content_sha256(&part.path, file.name)?;
                if found == file.sha256 {
                    Ok(())
                } else {
                    Err(Failure::Mirror(format!(
                        "sha256 of the {}content is {found}, expected {}",
                        if file.name.ends_with(".gz") { "uncompressed " } else { "" },
                        file.sha256
                    )))
                }
            });
            match verified {
                Ok(()) => {
                    part.commit(&target)?;
                    done = true;
                    break;
                }
                Err(Failure::Mirror(message)) => attempts.push(format!("{url}: {message}")),
                Err(Failure::Local(e)) => return Err(e),
            }
        }
        if !done {
            if attempts.is_empty() {
                attempts.push(format!("dataset '{}' has no mirrors", spec.name));
            }
            return Err(DataError::Download { file: file.name.to_string(), attempts });
        }
    }
    Ok(())
}

/// [`Packaging::TarGz`]: the archive from the first mirror whose copy has the right sha256,
/// then the missing files extracted from `inner_dir`, each verified.
fn download_archive(
    spec: &DatasetSpec,
    dest: &Path,
    fetcher: &Fetcher,
    archive: &str,
    archive_sha256: &str,
    inner_dir: &str,
) -> Result<(), DataError> {
    let wanted: Vec<&DataFile> =
        spec.files.iter().filter(|f| !already_valid(&dest.join(f.name), f)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut attempts = Vec::new();
    let mut fetched = None;
    for mirror in spec.mirrors {
        let url = format!("{mirror}{archive}");
        let part = PartFile::new(part_path(dest, archive));
        match fetcher.fetch(&url, &part.path, archive) {
            Ok(found) if found == archive_sha256 => {
                fetched = Some((url, part));
                break;
            }
            Ok(found) => {
                attempts.push(format!("{url}: sha256 of the archive is {found}, expected {archive_sha256}"))
            }
            Err(Failure::Mirror(message)) => attempts.push(format!("{url}: {message}")),
            Err(Failure::Local(e)) => return Err(e),
        }
    }
    let Some((url, part)) = fetched else {
        if attempts.is_empty() {
            attempts.push(format!("dataset '{}' has no mirrors", spec.name));
        }
        return Err(DataError::Download { file: archive.to_string(), attempts });
    };
    // The archive bytes are verified, so every other mirror would serve the same bytes: an
    // extraction failure is final, not a reason to try the next mirror.
    let mut written = Vec::new();
    let result = extract(&part.path, &url, dest, inner_dir, &wanted, &mut written);
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
        if gzip {
            let mut encoder = GzEncoder::new(BufWriter::new(out), Compression::default());
            io::copy(&mut entry, &mut encoder).map_err(bad_archive)?;
            let out = encoder.finish().map_err(write_err)?;
            out.into_inner().map_err(|e| write_err(e.into_error()))?.sync_all().map_err(write_err)?;
        } else {
            let mut out = BufWriter::new(out);
            io::copy(&mut entry, &mut out).map_err(bad_archive)?;
            out.into_inner().map_err(|e| write_err(e.into_error()))?.sync_all().map_err(write_err)?;
        }
        let found = match content_sha256(&part.path, file.name) {
            Ok(found) => found,
            Err(Failure::Local(e)) => return Err(e),
            Err(Failure::Mirror(message)) => {
                return Err(DataError::format(&label, format!("{} readable", file.name), message))
            }
        };
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
