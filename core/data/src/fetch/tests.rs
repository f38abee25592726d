use super::*;
use std::cell::RefCell;
use std::io::BufRead;
use std::net::TcpListener;
use std::time::Instant;

/// What the loopback server answers for one path.
#[derive(Clone)]
enum Reply {
    Body(Vec<u8>),
    /// Announce `.1` bytes, send `.0`, hang up.
    Truncated(Vec<u8>, usize),
    NotFound,
    /// Close the connection without answering.
    Reset,
    /// Answer with this status and no body.
    Status(u16),
    /// Announce the whole body, send its first `.1` bytes, then stall for
    /// `.2` before hanging up.
    Stall(Vec<u8>, usize, Duration),
    /// The body, honouring `Range: bytes=N-` with a 206.
    Ranged(Vec<u8>),
}

/// Serves `routes` on 127.0.0.1 for at most `max_requests` connections
/// or 20 seconds, whichever ends first; returns the base URL. A path listed
/// several times gets its replies in order, the last one repeating.
fn serve(routes: Vec<(&'static str, Reply)>, max_requests: usize) -> String {
    serve_logged(routes, max_requests).0
}

/// [`serve`], also returning the `Range` header of each request (empty
/// when none), in order.
fn serve_logged(
    routes: Vec<(&'static str, Reply)>,
    max_requests: usize,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        while served < max_requests && Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            served += 1;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = std::io::BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut range = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = v.trim().to_owned();
                }
                line.clear();
            }
            if let Ok(mut l) = seen.lock() {
                l.push(range.clone());
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let k = counts.entry(path.clone()).or_insert(0);
            let matching: Vec<&Reply> = routes
                .iter()
                .filter(|(p, _)| *p == path)
                .map(|(_, r)| r)
                .collect();
            let reply = matching.get(*k).or(matching.last()).map(|r| (*r).clone());
            *k += 1;
            let mut stream = reader.into_inner();
            // Each answer in a thread of its own, so that a stalled one
            // does not hold up the next connection.
            std::thread::spawn(move || {
                let send = |stream: &mut std::net::TcpStream,
                            status: &str,
                            extra: &str,
                            claimed: usize,
                            body: &[u8]| {
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {claimed}\r\n{extra}Connection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                };
                match reply.unwrap_or(Reply::NotFound) {
                    Reply::Body(b) => send(&mut stream, "200 OK", "", b.len(), &b),
                    Reply::Truncated(b, n) => send(&mut stream, "200 OK", "", n, &b),
                    Reply::NotFound => send(&mut stream, "404 Not Found", "", 12, b"no such file"),
                    Reply::Reset => drop(stream),
                    Reply::Status(code) => send(&mut stream, &format!("{code} Oops"), "", 0, b""),
                    Reply::Stall(b, n, pause) => {
                        send(&mut stream, "200 OK", "", b.len(), &b[..n]);
                        let _ = stream.flush();
                        std::thread::sleep(pause);
                    }
                    Reply::Ranged(b) => {
                        let from = range
                            .strip_prefix("bytes=")
                            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
                        match from {
                            Some(f) if f < b.len() => send(
                                &mut stream,
                                "206 Partial Content",
                                &format!(
                                    "Content-Range: bytes {f}-{}/{}\r\n",
                                    b.len() - 1,
                                    b.len()
                                ),
                                b.len() - f,
                                &b[f..],
                            ),
                            _ => send(&mut stream, "200 OK", "", b.len(), &b),
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/files"), log)
}

/// Options for a test: fast retries and a short stall limit.
fn quick(base: String, source: Source) -> FetchOptions {
    FetchOptions {
        mirror: Some(base),
        source: Some(source),
        backoff: Some(Duration::from_millis(10)),
        read_timeout: Some(Duration::from_millis(400)),
        ..Default::default()
    }
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

/// A tar.gz holding `cifar-10-batches-bin/` with a tiny dataset.
fn cifar10_archive() -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    crate::cifar::tests::write_cifar10(&dir);
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("cifar-10-batches-bin", &dir)
        .expect("tar");
    tar.into_inner().expect("tar").finish().expect("gzip")
}

fn cifar_source(md5: String) -> Source {
    Source {
        base_url: "http://unused.invalid/".to_owned(),
        files: vec![RemoteFile {
            name: "cifar-10-binary.tar.gz".to_owned(),
            md5,
        }],
        subdir: "cifar-10-batches-bin".to_owned(),
        extract: true,
        inner: None,
    }
}

#[derive(Default)]
struct Recorder(RefCell<Vec<String>>);

impl Progress for Recorder {
    fn start(&self, what: &str, total: Option<u64>) {
        self.0.borrow_mut().push(format!("start {what} {total:?}"));
    }
    fn advance(&self, bytes: u64) {
        let mut v = self.0.borrow_mut();
        match v
            .last_mut()
            .and_then(|l| l.strip_prefix("bytes ").map(str::to_owned))
        {
            Some(n) => {
                let sum = n.parse::<u64>().expect("ours") + bytes;
                *v.last_mut().expect("nonempty") = format!("bytes {sum}");
            }
            None => v.push(format!("bytes {bytes}")),
        }
    }
    fn finish(&self) {
        self.0.borrow_mut().push("finish".to_owned());
    }
}

#[test]
fn fetches_and_unpacks_archive() {
    let archive = cifar10_archive();
    let len = archive.len();
    let base = serve(
        vec![(
            "/files/cifar-10-binary.tar.gz",
            Reply::Body(archive.clone()),
        )],
        1,
    );
    let root = tempfile::tempdir().expect("temp dir");
    let opts = FetchOptions {
        mirror: Some(base),
        source: Some(cifar_source(md5_hex(&archive))),
        ..Default::default()
    };
    let rec = Recorder::default();
    let dir = fetch("cifar10", root.path(), &opts, &rec).expect("fetched");
    assert_eq!(dir, root.path().join("cifar-10-batches-bin"));
    assert_eq!(
        *rec.0.borrow(),
        [
            format!("start cifar-10-binary.tar.gz Some({len})"),
            format!("bytes {len}"),
            "finish".into()
        ]
    );
    let d = crate::cifar::load_cifar10(&dir, "cifar10").expect("loads");
    assert_eq!(d.train.len(), 10);
    // Archive and scratch space are gone; only the dataset is left.
    let left: Vec<_> = std::fs::read_dir(root.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["cifar-10-batches-bin"]);
    // Present now: a second fetch does not touch the (finished) server.
    assert_eq!(
        fetch("cifar10", root.path(), &opts, &NoProgress).expect("cached"),
        dir
    );
}

#[test]
fn fetches_plain_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    crate::idx::tests::write_dataset(tmp.path(), true);
    let names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];
    let bodies: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(tmp.path().join(n)).expect("read"))
        .collect();
    let routes = [
        "/files/train-images-idx3-ubyte.gz",
        "/files/train-labels-idx1-ubyte.gz",
        "/files/t10k-images-idx3-ubyte.gz",
        "/files/t10k-labels-idx1-ubyte.gz",
    ]
    .into_iter()
    .zip(&bodies)
    .map(|(p, b)| (p, Reply::Body(b.clone())))
    .collect();
    let base = serve(routes, 4);
    let mut src = source("fashion-mnist").expect("official");
    for (f, b) in src.files.iter_mut().zip(&bodies) {
        f.md5 = md5_hex(b);
    }
    let root = tempfile::tempdir().expect("temp dir");
    let opts = FetchOptions {
        mirror: Some(base + "/"),
        source: Some(src),
        ..Default::default()
    };
    let dir = fetch("fashion-mnist", root.path(), &opts, &NoProgress).expect("fetched");
    let d = crate::idx::load_dir(&dir, "fashion-mnist", 10, &[]).expect("loads");
    assert_eq!(d.train.labels, [9, 0, 5]);
}

#[test]
fn corrupted_download_is_rejected_and_deleted() {
    let archive = cifar10_archive();
    let mut bad = archive.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let (base, log) = serve_logged(
        vec![("/files/cifar-10-binary.tar.gz", Reply::Body(bad.clone()))],
        2,
    );
    let root = tempfile::tempdir().expect("temp dir");
    let expected = md5_hex(&archive);
    let opts = quick(base, cifar_source(expected.clone()));
    let m = fetch("cifar10", root.path(), &opts, &NoProgress)
        .expect_err("bad md5")
        .to_string();
    assert!(
        m.contains(&format!("expected {expected}, got {}", md5_hex(&bad))),
        "{m}"
    );
    assert_eq!(
        log.lock().expect("log").len(),
        2,
        "downloaded once more, then given up"
    );
    assert_eq!(
        std::fs::read_dir(root.path()).expect("read").count(),
        0,
        "nothing left behind"
    );
}

#[test]
fn truncated_response_is_an_error() {
    let archive = cifar10_archive();
    let half = archive[..archive.len() / 2].to_vec();
    let base = serve(
        vec![(
            "/files/cifar-10-binary.tar.gz",
            Reply::Truncated(half, archive.len()),
        )],
        1,
    );
    let root = tempfile::tempdir().expect("temp dir");
    let opts = FetchOptions {
        attempts: Some(1),
        ..quick(base, cifar_source(md5_hex(&archive)))
    };
    let m = fetch("cifar10", root.path(), &opts, &NoProgress)
        .expect_err("cut")
        .to_string();
    assert!(
        m.contains("cifar-10-binary.tar.gz") && m.contains("connection ended after"),
        "{m}"
    );
    assert_eq!(
        std::fs::read_dir(root.path()).expect("read").count(),
        0,
        "nothing left behind"
    );
}

#[test]
fn not_found_and_not_fetchable() {
    let base = serve(vec![], 1);
    let root = tempfile::tempdir().expect("temp dir");
    let opts = FetchOptions {
        mirror: Some(base.clone()),
        source: Some(cifar_source("0".repeat(32))),
        ..Default::default()
    };
    let m = fetch("cifar10", root.path(), &opts, &NoProgress)
        .expect_err("404")
        .to_string();
    assert_eq!(
        m,
        format!("downloading {base}/cifar-10-binary.tar.gz: server answered HTTP 404")
    );
    let m = fetch(
        "mini-imagenet",
        root.path(),
        &FetchOptions::default(),
        &NoProgress,
    )
    .expect_err("no archive")
    .to_string();
    assert!(m.contains("mini-imagenet/train/<class>"), "{m}");
    assert!(fetch("nope", root.path(), &FetchOptions::default(), &NoProgress).is_err());
}

#[test]
fn archive_without_dataset_folder() {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "other/x", &b"hi"[..])
        .expect("tar");
    let archive = tar.into_inner().expect("tar").finish().expect("gzip");
    let base = serve(
        vec![(
            "/files/cifar-10-binary.tar.gz",
            Reply::Body(archive.clone()),
        )],
        1,
    );
    let root = tempfile::tempdir().expect("temp dir");
    let opts = FetchOptions {
        mirror: Some(base),
        source: Some(cifar_source(md5_hex(&archive))),
        ..Default::default()
    };
    let m = fetch("cifar10", root.path(), &opts, &NoProgress)
        .expect_err("wrong")
        .to_string();
    assert!(m.contains("holds no `cifar-10-batches-bin/` folder"), "{m}");
}

#[test]
fn official_table() {
    let s = source("cifar100-coarse").expect("official");
    assert_eq!(s.files[0].md5, "03b5dce01913d631647c71ecec9e9cb8");
    assert_eq!(
        source("mnist").expect("official").files[3].md5,
        "ec29112dd5afa0611ce80d1b7f02629c"
    );
}

/// A tar.gz of `entries`: `(name, kind, link target, data)`, names written
/// raw into the header so that hostile ones (`../x`, `/x`) go in as they are.
fn crafted(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for &(name, kind, link, data) in entries {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().expect("gnu");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append(&header, data).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            crafted(&[("cifar-10-batches-bin/../../evil", Regular, None, b"x")]),
            "entry `cifar-10-batches-bin/../../evil` escapes the target folder",
        ),
        (
            crafted(&[("/tmp/acbench-evil-abs", Regular, None, b"x")]),
            "escapes the target folder",
        ),
        (
            crafted(&[
                ("cifar-10-batches-bin/", Directory, None, b""),
                ("cifar-10-batches-bin/up", Symlink, Some("../../.."), b""),
                ("cifar-10-batches-bin/up/evil", Regular, None, b"x"),
            ]),
            "link `cifar-10-batches-bin/up` points to `../../..`, outside the target folder",
        ),
        (
            crafted(&[("cifar-10-batches-bin/abs", Symlink, Some("/etc"), b"")]),
            "points to `/etc`, outside the target folder",
        ),
        (
            crafted(&[("cifar-10-batches-bin/hard", Link, Some("../outside"), b"")]),
            "outside the target folder",
        ),
    ];
    for (archive, expect) in cases {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let base = serve(
            vec![(
                "/files/cifar-10-binary.tar.gz",
                Reply::Body(archive.clone()),
            )],
            1,
        );
        let opts = FetchOptions {
            mirror: Some(base),
            source: Some(cifar_source(md5_hex(&archive))),
            ..Default::default()
        };
        let m = fetch("cifar10", &data, &opts, &NoProgress)
            .expect_err("hostile")
            .to_string();
        assert!(m.contains("cannot unpack archive"), "{m}");
        assert!(m.contains(expect), "{m}");
        let outside: Vec<_> = std::fs::read_dir(root.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(outside, ["data"], "nothing written beside the data root");
        assert!(
            !data.join("cifar-10-batches-bin").exists(),
            "no half dataset"
        );
        assert!(!Path::new("/tmp/acbench-evil-abs").exists());
    }
    // A link that stays inside is fine.
    let ok = crafted(&[
        ("cifar-10-batches-bin/", Directory, None, b""),
        ("cifar-10-batches-bin/sub/", Directory, None, b""),
        ("cifar-10-batches-bin/sub/link", Symlink, Some("../x"), b""),
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("ok.tar.gz");
    std::fs::write(&archive, &ok).expect("write");
    archive::unpack_all(
        &[archive],
        dir.path(),
        "cifar-10-batches-bin",
        "cifar-10-batches-bin",
    )
    .expect("inside links are fine");
}

#[test]
fn flaky_servers_are_retried_with_backoff_and_resumed() {
    let archive = cifar10_archive();
    let third = archive.len() / 3;
    let path = "/files/cifar-10-binary.tar.gz";
    let (base, log) = serve_logged(
        vec![
            (path, Reply::Reset),
            (path, Reply::Status(500)),
            (
                path,
                Reply::Truncated(archive[..third].to_vec(), archive.len()),
            ),
            (
                path,
                Reply::Stall(archive.clone(), 2 * third, Duration::from_secs(2)),
            ),
            (path, Reply::Ranged(archive.clone())),
        ],
        5,
    );
    let root = tempfile::tempdir().expect("temp dir");
    let opts = quick(base, cifar_source(md5_hex(&archive)));
    let dir = fetch("cifar10", root.path(), &opts, &NoProgress).expect("fetched in the end");
    assert!(dir.join("data_batch_1.bin").is_file());
    let ranges = log.lock().expect("log").clone();
    // The first three start from nothing (nothing kept, or a server that
    // does not resume: the fourth resends everything); the last resumes
    // after the stalled transfer's bytes.
    assert_eq!(ranges.len(), 5, "{ranges:?}");
    assert_eq!(ranges[0], "");
    assert_eq!(ranges[4], format!("bytes={}-", 2 * third), "{ranges:?}");
    let left: Vec<_> = std::fs::read_dir(root.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["cifar-10-batches-bin"], "no part or archive left");
}

#[test]
fn a_client_error_is_not_retried_and_leaves_nothing() {
    let path = "/files/cifar-10-binary.tar.gz";
    let (base, log) = serve_logged(vec![(path, Reply::Status(403))], 3);
    let root = tempfile::tempdir().expect("temp dir");
    let opts = quick(base, cifar_source("0".repeat(32)));
    let m = fetch("cifar10", root.path(), &opts, &NoProgress)
        .expect_err("forbidden")
        .to_string();
    assert!(m.contains("403"), "{m}");
    assert_eq!(log.lock().expect("log").len(), 1, "not retried");
    assert_eq!(std::fs::read_dir(root.path()).expect("ls").count(), 0);
}

#[test]
fn a_server_that_keeps_failing_is_given_up_after_the_attempts() {
    let path = "/files/cifar-10-binary.tar.gz";
    let (base, log) = serve_logged(vec![(path, Reply::Status(503))], 10);
    let root = tempfile::tempdir().expect("temp dir");
    let opts = FetchOptions {
        attempts: Some(3),
        ..quick(base, cifar_source("0".repeat(32)))
    };
    let m = fetch("cifar10", root.path(), &opts, &NoProgress)
        .expect_err("down")
        .to_string();
    assert!(m.contains("503"), "{m}");
    assert_eq!(log.lock().expect("log").len(), 3);
    assert_eq!(std::fs::read_dir(root.path()).expect("ls").count(), 0);
}

/// The files under `dir/prefix` whose path (from `dir`) passes `keep`, as a
/// plain tar.
fn tar_of(dir: &Path, prefix: &str, keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut stack = vec![dir.join(prefix)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(dir)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&rel) {
                tar.append_path_with_name(&p, &rel).expect("append");
            }
        }
    }
    tar.into_inner().expect("tar")
}

/// A zip of the files under `dir/prefix`, named from `dir`.
fn zip_of(dir: &Path, prefix: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for e in std::fs::read_dir(dir.join(prefix)).expect("ls") {
        let p = e.expect("entry").path();
        let rel = p
            .strip_prefix(dir)
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        w.start_file(rel, opts).expect("start");
        w.write_all(&std::fs::read(&p).expect("read"))
            .expect("write");
    }
    w.finish().expect("zip").into_inner()
}

/// Serves `bodies` at the official source's paths under `/files/`, with
/// their checksums put in its table.
fn serve_source(name: &str, bodies: Vec<Vec<u8>>) -> FetchOptions {
    let mut src = source(name).expect("official");
    assert_eq!(src.files.len(), bodies.len());
    let routes = src
        .files
        .iter_mut()
        .zip(&bodies)
        .map(|(f, b)| {
            f.md5 = md5_hex(b);
            let path: &'static str = Box::leak(format!("/files/{}", f.name).into_boxed_str());
            (path, Reply::Body(b.clone()))
        })
        .collect();
    FetchOptions {
        mirror: Some(serve(routes, bodies.len())),
        source: Some(src),
        ..Default::default()
    }
}

#[test]
fn voc2007_comes_from_its_two_tars_into_one_folder() {
    let made = tempfile::tempdir().expect("tmp");
    crate::detection::voc::tests::voc_folder(&made.path().join("VOCdevkit/VOC2007"));
    let test_ids = |rel: &str| rel.contains("/c.") || rel.ends_with("test.txt");
    let trainval = tar_of(made.path(), "VOCdevkit", |r| !test_ids(r));
    let test = tar_of(made.path(), "VOCdevkit", test_ids);
    let root = tempfile::tempdir().expect("tmp");
    let opts = serve_source("voc2007", vec![trainval, test]);
    let dir = fetch("voc2007", root.path(), &opts, &NoProgress).expect("fetched");
    assert_eq!(dir, root.path().join("VOCdevkit/VOC2007"));
    let load = crate::LoadOptions {
        data_dir: Some(root.path().to_path_buf()),
        image_size: Some((32, 32)),
        ..Default::default()
    };
    let set = crate::detection::load("voc2007", &load, 0).expect("loads");
    assert_eq!((set.train.len(), set.test.len()), (2, 1));
    let left: Vec<_> = std::fs::read_dir(root.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["VOCdevkit"], "archives and scratch removed");
}

#[test]
fn coco2017_comes_from_its_three_zips() {
    let made = tempfile::tempdir().expect("tmp");
    crate::detection::coco::tests::coco_folder(made.path());
    let bodies = vec![
        zip_of(made.path(), "annotations"),
        zip_of(made.path(), "val2017"),
        zip_of(made.path(), "train2017"),
    ];
    let root = tempfile::tempdir().expect("tmp");
    let opts = serve_source("coco2017", bodies);
    let dir = fetch("coco2017", root.path(), &opts, &NoProgress).expect("fetched");
    assert_eq!(dir, root.path().join("coco"));
    let load = crate::LoadOptions {
        data_dir: Some(root.path().to_path_buf()),
        image_size: Some((20, 40)),
        ..Default::default()
    };
    let set = crate::detection::load("coco2017", &load, 0).expect("loads");
    assert_eq!((set.train.len(), set.test.len()), (2, 2));
}

#[test]
fn an_archive_verified_earlier_is_not_downloaded_again() {
    let archive = cifar10_archive();
    let root = tempfile::tempdir().expect("tmp");
    std::fs::write(root.path().join("cifar-10-binary.tar.gz"), &archive).expect("kept");
    // A server that answers nothing: the kept archive must be enough.
    let opts = FetchOptions {
        mirror: Some(serve(Vec::new(), 0)),
        source: Some(cifar_source(md5_hex(&archive))),
        attempts: Some(1),
        ..Default::default()
    };
    let dir = fetch("cifar10", root.path(), &opts, &NoProgress).expect("from the kept archive");
    assert!(crate::cifar::present10(&dir));
}

#[test]
fn official_detection_sources() {
    let voc = source("voc2007").expect("official");
    assert_eq!(voc.files[1].name, "voc2007/VOCtest_06-Nov-2007.tar");
    assert_eq!(voc.files[1].md5, "b6e924de25625d8de591ea690078ad9f");
    let coco = source("coco2017").expect("official");
    assert_eq!(coco.inner.as_deref(), Some(""));
    assert_eq!(disk_name(&coco.files[2].name), "train2017.zip");
}

#[test]
fn a_hostile_zip_from_the_server_is_refused_and_leaves_nothing() {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("annotations/../../../escaped", opts)
        .expect("start");
    w.write_all(b"x").expect("write");
    let hostile = w.finish().expect("zip").into_inner();
    let made = tempfile::tempdir().expect("tmp");
    crate::detection::coco::tests::coco_folder(made.path());
    let bodies = vec![
        hostile,
        zip_of(made.path(), "val2017"),
        zip_of(made.path(), "train2017"),
    ];
    let root = tempfile::tempdir().expect("tmp");
    let data = root.path().join("data");
    let opts = serve_source("coco2017", bodies);
    let m = fetch("coco2017", &data, &opts, &NoProgress)
        .expect_err("hostile")
        .to_string();
    assert!(m.contains("annotations_trainval2017.zip"), "{m}");
    assert!(
        m.contains("entry `annotations/../../../escaped` escapes the target folder"),
        "{m}"
    );
    let beside: Vec<_> = std::fs::read_dir(root.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside, ["data"], "nothing written beside the data root");
    assert!(!data.join("coco").exists(), "no half dataset");
}
