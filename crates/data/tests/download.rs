//! Downloads against a tiny HTTP server on 127.0.0.1 (never the internet): good files, every
//! kind of bad mirror (wrong, short, too long, endless and slow bodies, gzip bombs), fallback
//! to the next mirror, tar.gz archives, the user's mirror (a base URL or a local directory,
//! option and environment), no directory left behind, and (ignored unless the shared datasets
//! are there) the real MNIST files checked against the real constants.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use adamant_data::download::{download, download_with, DownloadOptions};
use adamant_data::spec::CIFAR10_ARCHIVE;
use adamant_data::spec::{DataFile, DatasetSpec, Mirror, Packaging, MIRROR_ENV};
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
    /// 200 announcing `Content-Length: claimed`, this much of the body, then nothing for this
    /// long before closing.
    SlowBody(Vec<u8>, usize, Duration),
    /// 200 with no length (the body ends when the connection closes, or, if `chunked`, in
    /// chunks), repeating this block until the client hangs up.
    Endless(Vec<u8>, bool),
    /// 200 with no length: this body, then the connection closes.
    Unsized(Vec<u8>),
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
        Reply::SlowBody(body, claimed, time) => {
            let _ = write_head(&mut stream, 200, "application/octet-stream", Some(claimed), false);
            let _ = stream.write_all(&body);
            let _ = stream.flush();
            thread::sleep(time);
            return;
        }
        Reply::Endless(block, chunked) => {
            let _ = write_head(&mut stream, 200, "application/octet-stream", None, chunked);
            let chunk =
                [format!("{:x}\r\n", block.len()).into_bytes(), block.clone(), b"\r\n".to_vec()].concat();
            let block = if chunked { chunk } else { block };
            // Until the client hangs up (the write fails) or the server's lifetime is over.
            let started = Instant::now();
            while started.elapsed() < MAX_LIFETIME && stream.write_all(&block).is_ok() {}
            return;
        }
        Reply::Unsized(body) => {
            let _ = write_head(&mut stream, 200, "application/octet-stream", None, false);
            let _ = stream.write_all(&body);
            let _ = stream.flush();
            return;
        }
    };
    let _ = write_head(&mut stream, status, content_type, Some(claimed), false);
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

/// Writes a response's status line and headers: `Content-Length` if `length` is given, else
/// chunked or (HTTP/1.1 without either) a body that ends when the connection closes.
fn write_head(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    length: Option<usize>,
    chunked: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    let length = match (length, chunked) {
        (Some(len), _) => format!("Content-Length: {len}\r\n"),
        (None, true) => "Transfer-Encoding: chunked\r\n".to_string(),
        (None, false) => String::new(),
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n{length}Content-Type: {content_type}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())
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

/// A [`DataFile`] named `name` whose uncompressed content is `uncompressed`; a `.gz` may be
/// served up to 64 bytes larger than this test's own gzip of it (other gzip streams of the
/// same content, e.g. of a corrupted copy, differ by a few bytes).
fn data_file(name: &str, uncompressed: &[u8]) -> DataFile {
    let size = uncompressed.len() as u64;
    let download_size = if name.ends_with(".gz") { gzip(uncompressed).len() as u64 + 64 } else { size };
    DataFile {
        name: leak_str(name.to_string()),
        sha256: leak_str(sha256_hex(uncompressed)),
        size,
        download_size,
    }
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
        mirror: None,
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
    assert_bad_file_fails(case, data_file(name, good), reply, needles)
}

/// [`assert_bad_mirror_fails`] for a file spelled out, e.g. with sizes of its own.
fn assert_bad_file_fails(case: &str, file: DataFile, reply: Reply, needles: &[&str]) -> Duration {
    let name = file.name;
    let route = format!("/m/{name}");
    let server = Server::start(vec![(route.as_str(), reply)]);
    // Two levels that do not exist yet under the case's own (not yet existing) directory, as
    // `./datasets/<name>` is created by a first download.
    let root = fresh_dir(case);
    let dest = root.join("datasets").join("test-set");
    let spec = spec(vec![file], vec![server.url("/m/")], Packaging::Files);
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
    assert!(!root.exists(), "{case}: every directory the download created is removed again");
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
    // The same page mislabelled as binary is still recognised by its content (the file
    // expected is larger than the page, so the page is read rather than refused by size).
    assert_bad_mirror_fails(
        "html-sniffed",
        "h.bin",
        &content(18, 1000),
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

// ---------------------------------------------------------------------------------------------
// Sizes: every file's size is known, so no mirror can make a download endless or huge.

#[test]
fn a_content_length_above_the_expected_size_is_refused_before_the_body_is_read() {
    let good = content(20, 10_000);
    // The body never comes: had the client started reading it, it would fail on the read
    // timeout instead, with another message.
    let took = assert_bad_mirror_fails(
        "announced-too-long",
        "big.bin",
        &good,
        Reply::SlowBody(Vec::new(), 10_000_000_000, Duration::from_secs(3)),
        &["Content-Length 10000000000", "expected 10000", "not downloaded"],
    );
    assert!(took < Duration::from_secs(3), "did not wait for the body: {took:?}");
}

#[test]
fn an_endless_body_without_a_length_is_cut_off_one_byte_past_the_expected_size() {
    let good = content(21, 1_000_000);
    for (case, chunked) in [("endless", false), ("endless-chunked", true)] {
        let started = Instant::now();
        assert_bad_mirror_fails(
            case,
            "e.bin",
            &good,
            Reply::Endless(content(22, 65_536), chunked),
            &["more than the expected 1000000 bytes", "cut off after 1000001"],
        );
        // Without the cut-off it would run until the server gives up (a minute).
        assert!(started.elapsed() < Duration::from_secs(20), "{case}: {:?}", started.elapsed());
    }
}

#[test]
fn an_endless_gzip_body_is_cut_off_at_the_compressed_limit() {
    let good = content(23, 100_000);
    let file = data_file("e.bin.gz", &good);
    let limit = file.download_size;
    assert_bad_file_fails(
        "endless-gz",
        file,
        Reply::Endless(gzip(&content(24, 65_536)), false),
        &[&format!("more than the expected {limit} bytes"), &format!("cut off after {}", limit + 1)],
    );
}

#[test]
fn a_body_longer_than_its_expected_size_fails_even_with_a_matching_content_length() {
    let good = content(25, 50_000);
    let mut longer = good.clone();
    longer.extend_from_slice(b"trailing bytes");
    let file = DataFile { download_size: 60_000, ..data_file("l.bin", &good) };
    // Within the download limit but longer than the content: its size, not just its checksum,
    // is wrong, and the message says so.
    assert_bad_file_fails(
        "longer",
        file,
        Reply::Ok(longer, "application/octet-stream"),
        &["longer than the expected 50000"],
    );
}

#[test]
fn a_short_body_without_a_length_fails_on_its_size() {
    let good = content(26, 50_000);
    assert_bad_mirror_fails(
        "short-unsized",
        "s.bin",
        &good,
        Reply::Unsized(good[..30_000].to_vec()),
        &["content is 30000 bytes, expected 50000"],
    );
}

#[test]
fn a_short_body_with_a_longer_content_length_fails() {
    let good = content(27, 80_000);
    assert_bad_mirror_fails(
        "short-announced",
        "s.bin",
        &good,
        Reply::Truncated(good[..20_000].to_vec(), good.len()),
        &["20000 of 80000 bytes"],
    );
}

#[test]
fn a_gzip_bomb_is_stopped_one_byte_past_the_content_size() {
    let good = content(28, 100_000);
    // 64 MiB of zeros in about 64 KiB of gzip: within the download limit, far past the
    // content size. Decompression must stop at 100,001 bytes, not inflate it all.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let file = DataFile { download_size: bomb.len() as u64, ..data_file("b.bin.gz", &good) };
    assert_bad_file_fails(
        "gzip-bomb",
        file,
        Reply::Ok(bomb, "application/gzip"),
        &["uncompressed content is longer than the expected 100000 bytes (stopped after 100001)"],
    );
}

#[test]
fn a_slow_body_times_out_and_leaves_nothing() {
    let good = content(29, 100_000);
    let took = assert_bad_mirror_fails(
        "slow-body",
        "w.bin",
        &good,
        Reply::SlowBody(good[..30_000].to_vec(), good.len(), Duration::from_secs(4)),
        &["timed out after 30000 of 100000 bytes", "read timeout"],
    );
    assert!(took < Duration::from_secs(4), "gave up before the server did: {took:?}");
}

#[test]
fn a_gzip_served_smaller_than_the_official_file_is_accepted() {
    // Another compression of the same content (as the shared MNIST copy is): smaller than the
    // official `.gz`, verified on its content.
    let good = content(30, 200_000);
    let packed = gzip(&good);
    let file = DataFile { download_size: packed.len() as u64 + 5_000, ..data_file("g.bin.gz", &good) };
    let server = Server::start(vec![("/g.bin.gz", Reply::Ok(packed.clone(), "application/gzip"))]);
    let dest = fresh_dir("smaller-gz");
    let spec = spec(vec![file], vec![server.url("/")], Packaging::Files);
    download_with(&spec, &dest, &quick()).expect("a smaller gzip of the right content");
    assert_eq!(fs::read(dest.join("g.bin.gz")).unwrap(), packed, "kept as served");
}

#[test]
fn an_archive_larger_than_its_size_is_refused() {
    let x = content(31, 10_000);
    let archive = tar_gz(&[("set-bin/x.bin", &x)]);
    let mut padded = archive.clone();
    padded.extend_from_slice(&[0u8; 1024]);
    let server = Server::start(vec![("/set.tar.gz", Reply::Ok(padded, "application/gzip"))]);
    let root = fresh_dir("tar-too-long");
    let dest = root.join("cifar");
    let spec = spec(vec![data_file("x.bin", &x)], vec![server.url("/")], tar_packaging(&archive));
    let message = download_error(download_with(&spec, &dest, &quick()), "set.tar.gz");
    assert!(message.contains(&format!("Content-Length {}", archive.len() + 1024)), "{message}");
    assert!(!root.exists(), "no directory left behind");
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
    Packaging::TarGz {
        name: "set.tar.gz",
        sha256: leak_str(sha256_hex(archive)),
        size: archive.len() as u64,
        inner_dir: "set-bin",
    }
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
    // Same length as the member, other bytes: the checksum, not the size, tells them apart.
    let spec = spec(
        vec![data_file("x.bin", &x), data_file("y.bin", &content(99, y.len()))],
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
    let Packaging::TarGz { name, sha256, size, inner_dir } = CIFAR10_ARCHIVE else {
        panic!("CIFAR-10 comes as an archive")
    };
    assert_eq!(name, "cifar-10-binary.tar.gz");
    assert_eq!(size, 170_052_171, "the size the authors' archive has");
    assert_eq!(inner_dir, "cifar-10-batches-bin");
    assert_eq!(sha256.len(), 64);
    assert!(sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{sha256}");
}

// ---------------------------------------------------------------------------------------------
// The user's mirror: `<base>/<dataset>/<file name>`, a URL or a directory, instead of the
// built-in mirrors.

/// [`quick`] with `mirror`.
fn quick_from(mirror: Mirror) -> DownloadOptions {
    DownloadOptions { mirror: Some(mirror), ..quick() }
}

#[test]
fn a_mirror_url_replaces_the_built_in_mirrors() {
    let plain = content(40, 30_000);
    let packed = content(41, 30_000);
    let mirror = Server::start(vec![
        ("/base/test-set/plain.bin", Reply::Ok(plain.clone(), "application/octet-stream")),
        ("/base/test-set/packed.bin.gz", Reply::Ok(gzip(&packed), "application/gzip")),
    ]);
    let built_in = Server::start(vec![]);
    let spec = spec(
        vec![data_file("plain.bin", &plain), data_file("packed.bin.gz", &packed)],
        vec![built_in.url("/")],
        Packaging::Files,
    );
    let dest = fresh_dir("mirror-url");
    // A trailing slash or none: the same base.
    let base = Mirror::parse(format!("{}/", mirror.url("/base"))).unwrap();
    assert_eq!(base, Mirror::Url(mirror.url("/base").to_string()));
    download_with(&spec, &dest, &quick_from(base.clone())).expect("from the mirror");
    assert_eq!(mirror.requests(), ["/base/test-set/plain.bin", "/base/test-set/packed.bin.gz"]);
    assert_eq!(fs::read(dest.join("plain.bin")).unwrap(), plain);
    assert_eq!(gunzip(&fs::read(dest.join("packed.bin.gz")).unwrap()), packed);

    // When the mirror fails, the built-in mirrors are not tried: the error is the mirror's.
    let missing = spec_with_files(&spec, vec![data_file("absent.bin", b"not on the mirror")]);
    let dest = fresh_dir("mirror-url-missing");
    let result = download_with(&missing, &dest, &quick_from(base));
    let Err(DataError::Download { attempts, .. }) = &result else { panic!("{result:?}") };
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(
        attempts[0].starts_with(&format!("{}/test-set/absent.bin: ", mirror.url("/base"))),
        "{attempts:?}"
    );
    assert!(attempts[0].contains("404"), "{attempts:?}");
    assert!(built_in.requests().is_empty(), "the built-in mirror was never asked");
    assert!(!dest.exists());
}

/// `spec` with other files.
fn spec_with_files(spec: &DatasetSpec, files: Vec<DataFile>) -> DatasetSpec {
    DatasetSpec { files: Box::leak(files.into_boxed_slice()), ..*spec }
}

/// A local mirror directory holding `files` (name, bytes) under `test-set/`.
fn mirror_dir(case: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = fresh_dir(case);
    fs::create_dir_all(dir.join("test-set")).unwrap();
    for (name, bytes) in files {
        fs::write(dir.join("test-set").join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn a_mirror_directory_is_copied_with_the_same_checks() {
    let plain = content(42, 40_000);
    let packed = content(43, 40_000);
    let tampered = {
        let mut bad = plain.clone();
        bad[7] ^= 1;
        bad
    };
    let dir = mirror_dir(
        "mirror-dir",
        &[("plain.bin", &plain), ("packed.bin.gz", &gzip(&packed)), ("tampered.bin", &tampered)],
    );
    let unused = closed_port_url();
    let spec = spec(
        vec![data_file("plain.bin", &plain), data_file("packed.bin.gz", &packed)],
        vec![unused],
        Packaging::Files,
    );
    let dest = fresh_dir("mirror-dir-dest");
    let mirror = Mirror::parse(&dir).unwrap();
    assert_eq!(mirror, Mirror::Dir(dir.clone()));
    download_with(&spec, &dest, &quick_from(mirror.clone())).expect("from the directory");
    assert_eq!(listing(&dest), ["packed.bin.gz", "plain.bin"], "no .part left");
    assert_eq!(fs::read(dest.join("plain.bin")).unwrap(), plain);
    assert_eq!(gunzip(&fs::read(dest.join("packed.bin.gz")).unwrap()), packed);
    // A file:// URL names the same directory.
    assert_eq!(Mirror::parse(format!("file://{}", dir.display())).unwrap(), mirror);

    // The same failures as over HTTP, each naming the file on the mirror.
    let cases: [(&str, DataFile, &str); 3] = [
        ("tampered.bin", data_file("tampered.bin", &plain), "sha256 of the content"),
        ("missing.bin", data_file("missing.bin", b"nowhere"), "No such file"),
        // Larger than the expected size: refused before anything is copied.
        (
            "plain.bin",
            DataFile { download_size: 1_000, size: 1_000, ..data_file("plain.bin", &plain) },
            "more than the expected 1000",
        ),
    ];
    for (name, file, needle) in cases {
        let root = fresh_dir("mirror-dir-bad");
        let dest = root.join("test-set");
        let one = spec_with_files(&spec, vec![file]);
        let message = download_error(download_with(&one, &dest, &quick_from(mirror.clone())), name);
        let path = dir.join("test-set").join(name);
        assert!(message.contains(&format!("{}: ", path.display())), "{message}");
        assert!(message.contains(needle), "{name}: expected '{needle}' in: {message}");
        assert!(!root.exists(), "{name}: nothing left behind");
    }
}

#[test]
fn a_mirror_directory_serves_an_archive_by_its_name() {
    let x = content(44, 20_000);
    let archive = tar_gz(&[("set-bin/x.bin", &x)]);
    let dir = mirror_dir("mirror-dir-archive", &[("set.tar.gz", &archive)]);
    let spec = spec(vec![data_file("x.bin", &x)], vec![], tar_packaging(&archive));
    let dest = fresh_dir("mirror-dir-archive-dest");
    download_with(&spec, &dest, &quick_from(Mirror::Dir(dir))).expect("extract from the mirror's archive");
    assert_eq!(listing(&dest), ["x.bin"]);
}

#[test]
fn bad_mirror_values_are_one_line_errors() {
    let file = fresh_dir("mirror-not-a-dir");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, b"a file").unwrap();
    let missing = fresh_dir("mirror-missing");
    for (value, needle) in [
        (String::new(), "empty".to_string()),
        ("ftp://example.org/data".to_string(), "unsupported scheme".to_string()),
        ("https://".to_string(), "no host".to_string()),
        ("file://host/data".to_string(), "file:///absolute/path".to_string()),
        (missing.display().to_string(), "no such directory".to_string()),
        (file.display().to_string(), "is not a directory".to_string()),
    ] {
        let why = Mirror::parse(&value).expect_err(&value);
        assert!(why.contains(&needle), "{value}: {why}");
        assert!(!why.contains('\n'), "{value}: one line: {why}");
    }
    assert_eq!(
        Mirror::parse("HTTPS://mirror.example.org/datasets/").unwrap(),
        Mirror::Url("HTTPS://mirror.example.org/datasets".to_string())
    );
}

/// Serialises the tests that set `$ADAMANT_MIRROR` or `$ADAMANT_DATA` (process-wide).
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` with the environment variables `vars` set, restoring them after.
fn with_env<T>(vars: &[(&str, &std::ffi::OsStr)], f: impl FnOnce() -> T) -> T {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let previous: Vec<_> = vars.iter().map(|(name, _)| (*name, std::env::var_os(name))).collect();
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
    let result = f();
    for (name, value) in previous {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
    result
}

#[test]
fn download_reads_the_mirror_from_the_environment() {
    let a = content(45, 5_000);
    let dir = mirror_dir("mirror-env", &[("a.bin", &a)]);
    let spec = spec(vec![data_file("a.bin", &a)], vec![closed_port_url()], Packaging::Files);
    let dest = fresh_dir("mirror-env-dest");
    with_env(&[(MIRROR_ENV, dir.as_os_str())], || download(&spec, &dest)).expect("from $ADAMANT_MIRROR");
    assert_eq!(fs::read(dest.join("a.bin")).unwrap(), a);

    let root = fresh_dir("mirror-env-bad");
    let dest = root.join("test-set");
    let message = with_env(&[(MIRROR_ENV, "gopher://old".as_ref())], || download(&spec, &dest))
        .unwrap_err()
        .to_string();
    assert!(message.contains("ADAMANT_MIRROR: 'gopher://old': unsupported scheme"), "{message}");
    assert!(!root.exists(), "a bad mirror creates nothing");
}

#[test]
fn load_downloads_from_a_mirror_given_or_in_the_environment() {
    // The bundled MNIST subset's directory is a mirror of `mnist-mini` as it stands: its
    // `.gz` files are the ones the spec's sizes and checksums describe.
    let bundled = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets"));
    let mirror = Mirror::parse(bundled).unwrap();
    let spec = adamant_data::MNIST_MINI;
    for from_env in [false, true] {
        let data = fresh_dir(if from_env { "load-mirror-env" } else { "load-mirror" });
        let mut vars = vec![("ADAMANT_DATA", data.as_os_str())];
        if from_env {
            vars.push((MIRROR_ENV, bundled.as_os_str()));
        }
        let given = (!from_env).then_some(&mirror);
        let splits = with_env(&vars, || adamant_data::locate::load_with_mirror(&spec, None, true, given))
            .expect("downloaded from the mirror, then read");
        assert_eq!((splits.train.len(), splits.test.len()), (10_000, 10_000));
        assert_eq!(splits.source, data.join("mnist-mini"));
        assert_eq!(listing(&data.join("mnist-mini")).len(), 4);
    }
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

#[test]
#[ignore = "needs ../shared/datasets and Debian's dataset-fashion-mnist"]
fn real_datasets_download_from_directory_mirrors() {
    // `../shared/datasets` holds `mnist/<file>` and Debian's `/usr/share/datasets` holds
    // `fashion-mnist/<file>`: both are mirrors as they stand. Their `.gz` files are other
    // compressions of the original content (smaller than the originals), so this also holds
    // the size rule to real files: at most the official size, content exact.
    let shared = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets"));
    for (spec, root) in
        [(adamant_data::MNIST, shared), (adamant_data::FASHION_MNIST, Path::new("/usr/share/datasets"))]
    {
        let mirror =
            Mirror::parse(root).unwrap_or_else(|why| panic!("{why} (the real datasets are missing)"));
        let dest = fresh_dir(&format!("real-mirror-{}", spec.name));
        download_with(&spec, &dest, &quick_from(mirror)).expect("the real files match the real constants");
        for file in spec.files {
            let served = root.join(spec.name).join(file.name);
            assert_eq!(
                fs::read(dest.join(file.name)).unwrap(),
                fs::read(&served).unwrap(),
                "{}",
                served.display()
            );
            assert!(fs::metadata(&served).unwrap().len() <= file.download_size, "{}", served.display());
        }
    }
}
