//! Downloads against a tiny HTTP server on 127.0.0.1 (never the internet): good files, every
//! kind of bad mirror, fallback to the next mirror, tar.gz archives, and (ignored unless the
//! shared datasets are there) the real MNIST files checked against the real constants.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use adamant_data::download::{download_with, DownloadOptions};
use adamant_data::spec::CIFAR10_ARCHIVE;
use adamant_data::spec::{DataFile, DatasetSpec, Packaging};
use adamant_data::DataError;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// The test server: serves an in-memory map of paths, one thread per connection, and stops by
// itself after a bounded number of connections or seconds (or when dropped).

/// What the server answers for one path.
#[derive(Clone)]
enum Reply {
    /// 200 with this body and content type.
    Ok(Vec<u8>, &'static str),
    /// 200 announcing `Content-Length: claimed` but sending only the body, then closing.
    Truncated(Vec<u8>, usize),
    /// This status with a short text body.
    Status(u16),
    /// Reads the request, then says nothing for this long and closes.
    Stall(Duration),
}

/// Most connections one server accepts, and longest it runs: a runaway client loop cannot
/// keep a test alive.
const MAX_CONNECTIONS: usize = 64;
const MAX_LIFETIME: Duration = Duration::from_secs(60);

struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: Vec<(&str, Reply)>) -> Server {
        let routes: HashMap<String, Reply> =
            routes.into_iter().map(|(path, reply)| (path.to_string(), reply)).collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let started = Instant::now();
            let mut workers = Vec::new();
            while !halt.load(Ordering::SeqCst)
                && started.elapsed() < MAX_LIFETIME
                && workers.len() < MAX_CONNECTIONS
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (routes, log) = (routes.clone(), log.clone());
                        workers.push(thread::spawn(move || serve(stream, &routes, &log)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        Server { port, requests, stop, thread: Some(thread) }
    }

    /// `http://127.0.0.1:<port><prefix>`, leaked to the `'static` a spec needs.
    fn url(&self, prefix: &str) -> &'static str {
        leak_str(format!("http://127.0.0.1:{}{prefix}", self.port))
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream` from `routes` (404 for unknown paths).
fn serve(mut stream: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    log.lock().unwrap().push(path.clone());
    let reply = routes.get(&path).cloned().unwrap_or(Reply::Status(404));
    let (status, content_type, claimed, body) = match reply {
        Reply::Ok(body, content_type) => (200, content_type, body.len(), body),
        Reply::Truncated(body, claimed) => (200, "application/octet-stream", claimed, body),
        Reply::Status(code) => {
            let body = format!("status {code}\n").into_bytes();
            (code, "text/plain", body.len(), body)
        }
        Reply::Stall(time) => {
            thread::sleep(time);
            return;
        }
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {claimed}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// Deterministic pseudo-random bytes (large enough to take many reads).
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A [`DataFile`] named `name` whose uncompressed content is `uncompressed`.
fn data_file(name: &str, uncompressed: &[u8]) -> DataFile {
    DataFile { name: leak_str(name.to_string()), sha256: leak_str(sha256_hex(uncompressed)) }
}

fn spec(files: Vec<DataFile>, mirrors: Vec<&'static str>, packaging: Packaging) -> DatasetSpec {
    DatasetSpec {
        name: "test-set",
        files: Box::leak(files.into_boxed_slice()),
        mirrors: Box::leak(mirrors.into_boxed_slice()),
        packaging,
    }
}

/// A fresh, not yet existing directory under cargo's per-target temp dir.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("download-tests").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Sorted file names in `dir` (empty if it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Short timeouts and no progress bar, so failing mirrors fail fast.
fn quick() -> DownloadOptions {
    DownloadOptions {
        progress: false,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(700),
    }
}

/// The message of a download error, checked to be the `Download` variant for `file`.
fn download_error(result: Result<(), DataError>, file: &str) -> String {
    match result {
        Err(e @ DataError::Download { .. }) => {
            let DataError::Download { file: named, attempts } = &e else { unreachable!() };
            assert_eq!(named, file, "the error names the file");
            assert!(!attempts.is_empty(), "at least one attempt is listed");
            e.to_string()
        }
        other => panic!("expected DataError::Download for {file}, got {other:?}"),
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
fn closed_port_url() -> &'static str {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    leak_str(format!("http://127.0.0.1:{port}/"))
}

// ---------------------------------------------------------------------------------------------
// Packaging::Files.

#[test]
fn good_files_are_downloaded_verified_and_renamed() {
    let plain = content(1, 300_000);
    let packed = content(2, 200_000);
    let server = Server::start(vec![
        ("/d/plain.bin", Reply::Ok(plain.clone(), "application/octet-stream")),
        ("/d/packed.bin.gz", Reply::Ok(gzip(&packed), "application/gzip")),
    ]);
    let dest = fresh_dir("good").join("nested");
    let spec = spec(
        vec![data_file("plain.bin", &plain), data_file("packed.bin.gz", &packed)],
        vec![server.url("/d/")],
        Packaging::Files,
    );
    download_with(&spec, &dest, &quick()).expect("download from a good mirror");
    assert_eq!(listing(&dest), ["packed.bin.gz", "plain.bin"]);
    assert_eq!(fs::read(dest.join("plain.bin")).unwrap(), plain);
    assert_eq!(gunzip(&fs::read(dest.join("packed.bin.gz")).unwrap()), packed);
    assert_eq!(server.requests(), ["/d/plain.bin", "/d/packed.bin.gz"]);
}

#[test]
fn verified_files_are_kept_and_a_corrupt_local_file_is_replaced() {
    let a = content(3, 5_000);
    let b = content(4, 5_000);
    let server = Server::start(vec![
        ("/a.bin", Reply::Ok(a.clone(), "application/octet-stream")),
        ("/b.bin", Reply::Ok(b.clone(), "application/octet-stream")),
    ]);
    let dest = fresh_dir("keep");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("a.bin"), &a).unwrap();
    fs::write(dest.join("b.bin"), b"stale and wrong").unwrap();
    let spec =
        spec(vec![data_file("a.bin", &a), data_file("b.bin", &b)], vec![server.url("/")], Packaging::Files);
    download_with(&spec, &dest, &quick()).unwrap();
    assert_eq!(server.requests(), ["/b.bin"], "a.bin verified, so only b.bin is fetched");
    assert_eq!(fs::read(dest.join("b.bin")).unwrap(), b);
    download_with(&spec, &dest, &quick()).unwrap();
    assert_eq!(server.requests().len(), 1, "a complete dataset fetches nothing");
}

/// Downloads one file from a mirror that answers `reply`, expects failure, and checks the
/// message holds every one of `needles` and nothing is left behind. Returns how long the
/// download took.
fn assert_bad_mirror_fails(case: &str, name: &str, good: &[u8], reply: Reply, needles: &[&str]) -> Duration {
    let route = format!("/m/{name}");
    let server = Server::start(vec![(route.as_str(), reply)]);
    let dest = fresh_dir(case);
    let spec = spec(vec![data_file(name, good)], vec![server.url("/m/")], Packaging::Files);
    let started = Instant::now();
    let result = download_with(&spec, &dest, &quick());
    let took = started.elapsed();
    let message = download_error(result, name);
    let url = format!("{}{name}", server.url("/m/"));
    assert!(message.contains(&url), "{case}: the message names the URL: {message}");
    for needle in needles {
        assert!(message.contains(needle), "{case}: expected '{needle}' in: {message}");
    }
    assert_eq!(listing(&dest), Vec::<String>::new(), "{case}: nothing left behind");
    assert!(!dest.exists(), "{case}: the directory the download created is removed again");
    took
}

#[test]
fn truncated_body_fails_and_leaves_nothing() {
    let good = content(5, 100_000);
    let short = good[..40_000].to_vec();
    assert_bad_mirror_fails("truncated", "t.bin", &good, Reply::Truncated(short, good.len()), &[]);
}

#[test]
fn truncated_gzip_fails_and_leaves_nothing() {
    let good = content(6, 100_000);
    let packed = gzip(&good);
    // Announced length matches what is sent: only the gzip stream itself reveals the cut.
    let cut = packed[..packed.len() / 2].to_vec();
    assert_bad_mirror_fails(
        "truncated-gz",
        "t.bin.gz",
        &good,
        Reply::Ok(cut, "application/gzip"),
        &["not a valid gzip"],
    );
}

#[test]
fn corrupted_file_fails_on_checksum_and_leaves_nothing() {
    let good = content(7, 50_000);
    let mut bad = good.clone();
    bad[12_345] ^= 0x40;
    let expected = sha256_hex(&good);
    let found = sha256_hex(&bad);
    assert_bad_mirror_fails(
        "corrupted",
        "c.bin.gz",
        &good,
        Reply::Ok(gzip(&bad), "application/gzip"),
        &[&expected, &found, "uncompressed"],
    );
}

#[test]
fn not_found_fails_and_leaves_nothing() {
    assert_bad_mirror_fails("404", "n.bin", b"anything", Reply::Status(404), &["404"]);
}

#[test]
fn server_error_fails_and_leaves_nothing() {
    assert_bad_mirror_fails("500", "n.bin", b"anything", Reply::Status(500), &["500"]);
}

#[test]
fn html_page_with_status_200_fails_and_leaves_nothing() {
    let page = b"<!DOCTYPE html>\n<html><body>Quota exceeded</body></html>\n".to_vec();
    assert_bad_mirror_fails(
        "html",
        "h.bin.gz",
        b"data",
        Reply::Ok(page.clone(), "text/html; charset=utf-8"),
        &["HTML"],
    );
    // The same page mislabelled as binary is still recognised by its content.
    assert_bad_mirror_fails(
        "html-sniffed",
        "h.bin",
        b"data",
        Reply::Ok(page, "application/octet-stream"),
        &["HTML"],
    );
}

#[test]
fn stalled_mirror_times_out_and_leaves_nothing() {
    let took = assert_bad_mirror_fails(
        "stall",
        "s.bin",
        b"data",
        Reply::Stall(Duration::from_secs(3)),
        &["timeout"],
    );
    assert!(took < Duration::from_secs(3), "gave up before the server did: {took:?}");
}

#[test]
fn bad_first_mirrors_fall_back_to_a_good_one() {
    let good = content(8, 120_000);
    let packed = gzip(&good);
    let bad = Server::start(vec![
        ("/404/f.gz", Reply::Status(404)),
        ("/short/f.gz", Reply::Truncated(packed[..1000].to_vec(), packed.len())),
        ("/html/f.gz", Reply::Ok(b"<html>moved</html>".to_vec(), "text/html")),
        ("/wrong/f.gz", Reply::Ok(gzip(b"other data"), "application/gzip")),
        ("/stall/f.gz", Reply::Stall(Duration::from_secs(2))),
    ]);
    let good_server = Server::start(vec![("/ok/f.gz", Reply::Ok(packed, "application/gzip"))]);
    let refused = closed_port_url();
    let mirrors = vec![
        refused,
        bad.url("/404/"),
        bad.url("/short/"),
        bad.url("/html/"),
        bad.url("/wrong/"),
        bad.url("/stall/"),
        good_server.url("/ok/"),
    ];
    let dest = fresh_dir("fallback");
    let spec = spec(vec![data_file("f.gz", &good)], mirrors, Packaging::Files);
    download_with(&spec, &dest, &quick()).expect("the last mirror is good");
    assert_eq!(listing(&dest), ["f.gz"]);
    assert_eq!(gunzip(&fs::read(dest.join("f.gz")).unwrap()), good);
    assert_eq!(bad.requests().len(), 5, "every bad mirror was tried once");
    assert_eq!(good_server.requests(), ["/ok/f.gz"]);
}

#[test]
fn every_mirror_failing_lists_each_attempt() {
    let server = Server::start(vec![("/x/f.bin", Reply::Status(403))]);
    let refused = closed_port_url();
    let dest = fresh_dir("all-fail");
    let spec = spec(vec![data_file("f.bin", b"data")], vec![refused, server.url("/x/")], Packaging::Files);
    let result = download_with(&spec, &dest, &quick());
    let Err(DataError::Download { attempts, .. }) = &result else {
        panic!("expected a download error, got {result:?}")
    };
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[0].starts_with(&format!("{refused}f.bin: ")), "{attempts:?}");
    assert!(attempts[1].contains("403"), "{attempts:?}");
}

#[test]
fn https_mirror_fails_cleanly_and_the_next_one_is_tried() {
    let good = content(9, 10_000);
    let server = Server::start(vec![("/f.bin", Reply::Ok(good.clone(), "application/octet-stream"))]);
    // An https URL at a plain-HTTP port: with the `https` feature the TLS handshake fails,
    // without it the download refuses https outright. Either way the next mirror is used.
    let https = leak_str(format!("https://127.0.0.1:{}/", server.port));
    let dest = fresh_dir("https");
    let with_fallback = spec(vec![data_file("f.bin", &good)], vec![https, server.url("/")], Packaging::Files);
    download_with(&with_fallback, &dest, &quick()).expect("falls back to http");
    assert_eq!(fs::read(dest.join("f.bin")).unwrap(), good);

    let dest = fresh_dir("https-only");
    let only = spec(vec![data_file("f.bin", &good)], vec![https], Packaging::Files);
    let message = download_error(download_with(&only, &dest, &quick()), "f.bin");
    if cfg!(feature = "https") {
        assert!(message.contains(https), "{message}");
    } else {
        assert!(message.contains("`https` feature"), "{message}");
    }
    assert_eq!(listing(&dest), Vec::<String>::new());
}

#[test]
fn a_failing_file_keeps_the_verified_ones_before_it() {
    let a = content(10, 1000);
    let server = Server::start(vec![("/a.bin", Reply::Ok(a.clone(), "application/octet-stream"))]);
    let dest = fresh_dir("partial-set");
    let spec = spec(
        vec![data_file("a.bin", &a), data_file("b.bin", b"never served")],
        vec![server.url("/")],
        Packaging::Files,
    );
    download_error(download_with(&spec, &dest, &quick()), "b.bin");
    assert_eq!(listing(&dest), ["a.bin"], "a.bin is complete and verified; no b.bin, no .part");
}

#[test]
fn a_spec_without_mirrors_says_so() {
    let dest = fresh_dir("no-mirrors");
    let spec = spec(vec![data_file("a.bin", b"x")], vec![], Packaging::Files);
    let message = download_error(download_with(&spec, &dest, &quick()), "a.bin");
    assert!(message.contains("no mirrors"), "{message}");
    assert!(!dest.exists());
}

// ---------------------------------------------------------------------------------------------
// Packaging::TarGz.

/// A .tar.gz holding `members` (path, content) in order.
fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (path, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *bytes).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn tar_packaging(archive: &[u8]) -> Packaging {
    Packaging::TarGz { name: "set.tar.gz", sha256: leak_str(sha256_hex(archive)), inner_dir: "set-bin" }
}

#[test]
fn tar_gz_files_are_extracted_from_the_inner_dir() {
    let x = content(11, 70_000);
    let y = content(12, 50_000);
    let archive = tar_gz(&[
        ("other/x.bin", b"decoy outside the inner dir"),
        ("set-bin/x.bin", &x),
        ("set-bin/readme.txt", b"not part of the dataset"),
        ("./set-bin/y.bin", &y),
    ]);
    let server = Server::start(vec![("/a/set.tar.gz", Reply::Ok(archive.clone(), "application/gzip"))]);
    let dest = fresh_dir("tar-good");
    // y is wanted compressed: it is taken from the plain member and gzipped on the way.
    let spec = spec(
        vec![data_file("x.bin", &x), data_file("y.bin.gz", &y)],
        vec![server.url("/a/")],
        tar_packaging(&archive),
    );
    download_with(&spec, &dest, &quick()).expect("extract");
    assert_eq!(listing(&dest), ["x.bin", "y.bin.gz"], "only the dataset's files, no archive");
    assert_eq!(fs::read(dest.join("x.bin")).unwrap(), x);
    assert_eq!(gunzip(&fs::read(dest.join("y.bin.gz")).unwrap()), y);
    download_with(&spec, &dest, &quick()).unwrap();
    assert_eq!(server.requests().len(), 1, "a complete dataset does not fetch the archive again");
}

#[test]
fn tar_gz_with_wrong_checksum_leaves_nothing() {
    let x = content(13, 10_000);
    let archive = tar_gz(&[("set-bin/x.bin", &x)]);
    let mut tampered = archive.clone();
    let last = tampered.len() - 9; // inside the gzip trailer's crc: still the same length
    tampered[last] ^= 1;
    let server = Server::start(vec![("/set.tar.gz", Reply::Ok(tampered, "application/gzip"))]);
    let dest = fresh_dir("tar-checksum");
    let spec = spec(vec![data_file("x.bin", &x)], vec![server.url("/")], tar_packaging(&archive));
    let message = download_error(download_with(&spec, &dest, &quick()), "set.tar.gz");
    assert!(message.contains("sha256 of the archive"), "{message}");
    assert!(message.contains(&sha256_hex(&archive)), "{message}");
    assert_eq!(listing(&dest), Vec::<String>::new());
}

#[test]
fn tar_gz_truncated_on_first_mirror_falls_back() {
    let x = content(14, 60_000);
    let archive = tar_gz(&[("set-bin/x.bin", &x)]);
    let server = Server::start(vec![
        ("/bad/set.tar.gz", Reply::Truncated(archive[..archive.len() / 3].to_vec(), archive.len())),
        ("/good/set.tar.gz", Reply::Ok(archive.clone(), "application/gzip")),
    ]);
    let dest = fresh_dir("tar-fallback");
    let spec = spec(
        vec![data_file("x.bin", &x)],
        vec![server.url("/bad/"), server.url("/good/")],
        tar_packaging(&archive),
    );
    download_with(&spec, &dest, &quick()).unwrap();
    assert_eq!(listing(&dest), ["x.bin"]);
    assert_eq!(fs::read(dest.join("x.bin")).unwrap(), x);
}

#[test]
fn tar_gz_missing_member_removes_what_was_extracted() {
    let x = content(15, 10_000);
    let archive = tar_gz(&[("set-bin/x.bin", &x)]);
    let server = Server::start(vec![("/set.tar.gz", Reply::Ok(archive.clone(), "application/gzip"))]);
    let dest = fresh_dir("tar-missing");
    let spec = spec(
        vec![data_file("x.bin", &x), data_file("z.bin", b"absent")],
        vec![server.url("/")],
        tar_packaging(&archive),
    );
    let result = download_with(&spec, &dest, &quick());
    let Err(e @ DataError::Format { .. }) = &result else { panic!("expected Format, got {result:?}") };
    let message = e.to_string();
    assert!(message.contains("z.bin") && message.contains("set-bin"), "{message}");
    assert!(message.contains("set.tar.gz"), "names the archive: {message}");
    assert_eq!(listing(&dest), Vec::<String>::new(), "x.bin was extracted, then removed");
    assert!(!dest.exists());
}

#[test]
fn tar_gz_member_with_wrong_checksum_leaves_nothing() {
    let x = content(16, 10_000);
    let y = content(17, 10_000);
    let archive = tar_gz(&[("set-bin/x.bin", &x), ("set-bin/y.bin", &y)]);
    let server = Server::start(vec![("/set.tar.gz", Reply::Ok(archive.clone(), "application/gzip"))]);
    let dest = fresh_dir("tar-member-checksum");
    let spec = spec(
        vec![data_file("x.bin", &x), data_file("y.bin", b"what the spec expects")],
        vec![server.url("/")],
        tar_packaging(&archive),
    );
    let result = download_with(&spec, &dest, &quick());
    let Err(e @ DataError::Checksum { .. }) = &result else { panic!("expected Checksum, got {result:?}") };
    let message = e.to_string();
    assert!(message.contains("set-bin/y.bin") && message.contains(&sha256_hex(&y)), "{message}");
    assert_eq!(listing(&dest), Vec::<String>::new());
}

#[test]
fn cifar10_archive_constant_is_well_formed() {
    let Packaging::TarGz { name, sha256, inner_dir } = CIFAR10_ARCHIVE else {
        panic!("CIFAR-10 comes as an archive")
    };
    assert_eq!(name, "cifar-10-binary.tar.gz");
    assert_eq!(inner_dir, "cifar-10-batches-bin");
    assert_eq!(sha256.len(), 64);
    assert!(sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{sha256}");
}

// ---------------------------------------------------------------------------------------------
// The real MNIST files through the local server, checked against the real constants.

#[test]
#[ignore = "needs ../shared/datasets"]
fn real_mnist_downloads_with_the_real_constants() {
    let source = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/mnist"));
    let real = adamant_data::MNIST;
    let mut routes = Vec::new();
    for file in real.files {
        let path = source.join(file.name);
        let bytes = fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (the shared datasets are missing)", path.display()));
        routes.push((leak_str(format!("/mnist/{}", file.name)), Reply::Ok(bytes, "application/gzip")));
    }
    let server = Server::start(routes.iter().map(|(p, r)| (*p, r.clone())).collect());
    let spec = DatasetSpec { mirrors: Box::leak(vec![server.url("/mnist/")].into_boxed_slice()), ..real };
    let dest = fresh_dir("real-mnist");
    download_with(&spec, &dest, &quick()).expect("the real files match the real constants");
    let mut expected: Vec<String> = real.files.iter().map(|f| f.name.to_string()).collect();
    expected.sort();
    assert_eq!(listing(&dest), expected);
    for file in real.files {
        assert_eq!(
            fs::read(dest.join(file.name)).unwrap(),
            fs::read(source.join(file.name)).unwrap(),
            "{} arrives byte for byte",
            file.name
        );
    }
    // The constants are also the ones SHA256SUMS publishes for the uncompressed files.
    let sums = fs::read_to_string(source.join("SHA256SUMS")).expect("SHA256SUMS");
    for file in real.files {
        let plain = file.name.trim_end_matches(".gz");
        let line = sums.lines().find(|l| l.ends_with(&format!(" {plain}"))).expect(plain);
        assert!(line.starts_with(file.sha256), "{plain}: SHA256SUMS has {line}");
    }
}
