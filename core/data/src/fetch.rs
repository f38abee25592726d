//! Downloading the official archives, checked against their published MD5s.
//!
//! Each file is streamed to `NAME.part` while its MD5 is computed, and only
//! renamed to `NAME` once the checksum matches, so a file with its final name
//! is always a verified one (an archive already there with the right
//! checksum is not downloaded again). Archives (`.tar`, `.tar.gz`, `.zip`)
//! are unpacked together into a scratch folder and the dataset folder is
//! moved into place in one rename, so an interrupted unpack never looks
//! like a dataset either; no entry may write outside that folder
//! ([`archive`]).
//!
//! A transfer that fails on the way (connection refused or reset, a stall,
//! a body cut short, a 5xx or 429 answer) is tried again after a wait that
//! doubles each time ([`FetchOptions::attempts`], [`FetchOptions::backoff`]);
//! a cut transfer resumes where it stopped when the server honours `Range`
//! (206), and starts over when it does not. A file whose checksum is wrong
//! is downloaded once more from scratch before that is an error. After the
//! last failure the `.part` file is removed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::DataError;

/// Environment variable overriding the download base URL.
pub const MIRROR_ENV: &str = "ACBENCH_MIRROR";

/// Download progress, so that a front end can draw a bar.
pub trait Progress {
    /// A download of `what` begins; `total` is its size when the server says.
    fn start(&self, what: &str, total: Option<u64>);
    /// `bytes` more bytes arrived.
    fn advance(&self, bytes: u64);
    /// The download ended (successfully or not).
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// One file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, appended to the base URL (`zips/val2017.zip`); its last
    /// segment is the name on disk.
    pub name: String,
    /// Expected MD5, lowercase hex.
    pub md5: String,
}

/// Where a dataset's files come from and how they land on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Base URL the file names are appended to.
    pub base_url: String,
    /// The files, each checked against its MD5.
    pub files: Vec<RemoteFile>,
    /// The dataset folder inside the destination root.
    pub subdir: String,
    /// Whether the files are archives (`.tar`, `.tar.gz`, `.zip`) to unpack
    /// (rather than files to put into `subdir/` as they are).
    pub extract: bool,
    /// The folder inside the unpacked archives that becomes `subdir`:
    /// `None` for `subdir` itself, `Some("")` when the archives hold the
    /// dataset's contents at their top (COCO's zips).
    pub inner: Option<String>,
}

/// Options of [`fetch`].
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Base URL replacing the official one (else `$ACBENCH_MIRROR`, else
    /// the official site).
    pub mirror: Option<String>,
    /// Download again even when the dataset is already there.
    pub force: bool,
    /// Replaces the official source table (tests serve generated archives
    /// whose checksums differ from the official ones).
    pub source: Option<Source>,
    /// Tries per file before giving up (default [`DEFAULT_ATTEMPTS`]).
    pub attempts: Option<u32>,
    /// The wait before the first retry, doubled after each (default
    /// [`DEFAULT_BACKOFF`], at most [`MAX_BACKOFF`]).
    pub backoff: Option<Duration>,
    /// How long a read may wait for the next bytes before the transfer
    /// counts as stalled (default [`DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Option<Duration>,
}

/// Tries per file when [`FetchOptions::attempts`] is not set.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// First wait between tries when [`FetchOptions::backoff`] is not set.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Stall limit when [`FetchOptions::read_timeout`] is not set.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

fn file(name: &str, md5: &str) -> RemoteFile {
    RemoteFile {
        name: name.to_owned(),
        md5: md5.to_owned(),
    }
}

/// The official source of a registered dataset.
pub fn source(name: &str) -> Result<Source, DataError> {
    let idx = |base: &str, subdir: &str, sums: [&str; 4]| Source {
        base_url: base.to_owned(),
        files: [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
        .iter()
        .zip(sums)
        .map(|(n, m)| file(n, m))
        .collect(),
        subdir: subdir.to_owned(),
        extract: false,
        inner: None,
    };
    match name {
        "fashion-mnist" => Ok(idx(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "fashion-mnist",
            [
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ],
        )),
        "mnist" => Ok(idx(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "mnist",
            [
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ],
        )),
        "cifar10" => Ok(Source {
            base_url: "https://www.cs.toronto.edu/~kriz/".to_owned(),
            files: vec![file(
                "cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
            )],
            subdir: "cifar-10-batches-bin".to_owned(),
            extract: true,
            inner: None,
        }),
        "cifar100" | "cifar100-coarse" => Ok(Source {
            base_url: "https://www.cs.toronto.edu/~kriz/".to_owned(),
            files: vec![file(
                "cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            )],
            subdir: "cifar-100-binary".to_owned(),
            extract: true,
            inner: None,
        }),
        // The checksums are those every downloader of these sets checks
        // (torchvision's among them); the servers publish none.
        "voc2007" => Ok(Source {
            base_url: "http://host.robots.ox.ac.uk/pascal/VOC/".to_owned(),
            files: vec![
                file(
                    "voc2007/VOCtrainval_06-Nov-2007.tar",
                    "c52e279531787c972589f7e41ab4ae64",
                ),
                file(
                    "voc2007/VOCtest_06-Nov-2007.tar",
                    "b6e924de25625d8de591ea690078ad9f",
                ),
            ],
            subdir: "VOCdevkit/VOC2007".to_owned(),
            extract: true,
            inner: None,
        }),
        "voc2012" => Ok(Source {
            base_url: "http://host.robots.ox.ac.uk/pascal/VOC/".to_owned(),
            files: vec![file(
                "voc2012/VOCtrainval_11-May-2012.tar",
                "6cd6e144f989b92b3379bac3b3de84fd",
            )],
            subdir: "VOCdevkit/VOC2012".to_owned(),
            extract: true,
            inner: None,
        }),
        "coco2017" => Ok(Source {
            base_url: "http://images.cocodataset.org/".to_owned(),
            files: vec![
                file(
                    "annotations/annotations_trainval2017.zip",
                    "f4bbac642086de4f52a3fdda2de5fa2c",
                ),
                file("zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
                file("zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
            ],
            subdir: "coco".to_owned(),
            extract: true,
            inner: Some(String::new()),
        }),
        "mini-imagenet" => Err(DataError::NotFetchable {
            name: name.to_owned(),
            reason: "miniImageNet has no official download (it is a subset of ImageNet, whose \
                     licence requires registration). Build or obtain the 100-class image folder \
                     and place it as DIR/mini-imagenet/train/<class>/*.jpg and \
                     DIR/mini-imagenet/test/<class>/*.jpg (or val/), then pass --data-dir DIR, \
                     set ACBENCH_DATA=DIR, or use DIR = the acbench cache folder"
                .to_owned(),
        }),
        n if n.starts_with(crate::registry::FOLDER_PREFIX) => Err(DataError::NotFetchable {
            name: name.to_owned(),
            reason: "image-folder datasets are read from the given path, not downloaded".to_owned(),
        }),
        n => Err(DataError::UnknownDataset {
            name: n.to_owned(),
            known: crate::registry::names().join(", "),
        }),
    }
}

/// Downloads dataset `name` into `dest_root` (usually
/// [`default_root`](crate::default_root)) and returns the dataset folder.
/// Files already present are kept unless [`FetchOptions::force`] is set.
pub fn fetch(
    name: &str,
    dest_root: &Path,
    opts: &FetchOptions,
    progress: &dyn Progress,
) -> Result<PathBuf, DataError> {
    let src = match &opts.source {
        Some(s) => s.clone(),
        None => source(name)?,
    };
    let base = opts
        .mirror
        .clone()
        .or_else(|| std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty()))
        .unwrap_or_else(|| src.base_url.clone());
    let target = dest_root.join(&src.subdir);
    std::fs::create_dir_all(dest_root).map_err(|e| DataError::io(dest_root, e))?;
    let agent = agent(opts.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT));
    let retry = Retry {
        attempts: opts.attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1),
        backoff: opts.backoff.unwrap_or(DEFAULT_BACKOFF),
    };
    if src.extract {
        if target.is_dir() && !opts.force {
            return Ok(target);
        }
        // Every archive first (a verified one from an interrupted fetch is
        // kept), then one unpack of them all.
        let mut archives = Vec::with_capacity(src.files.len());
        for f in &src.files {
            let archive = dest_root.join(disk_name(&f.name));
            if !verified(&archive, &f.md5) {
                download(
                    &agent,
                    &retry,
                    &url(&base, &f.name),
                    &archive,
                    &f.md5,
                    progress,
                )?;
            }
            archives.push(archive);
        }
        let inner = src.inner.as_deref().unwrap_or(&src.subdir);
        archive::unpack_all(&archives, dest_root, inner, &src.subdir)?;
        for a in &archives {
            std::fs::remove_file(a).map_err(|e| DataError::io(a, e))?;
        }
    } else {
        std::fs::create_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
        for f in &src.files {
            let dest = target.join(disk_name(&f.name));
            if !dest.is_file() || opts.force {
                download(
                    &agent,
                    &retry,
                    &url(&base, &f.name),
                    &dest,
                    &f.md5,
                    progress,
                )?;
            }
        }
    }
    Ok(target)
}

/// The name on disk of a file whose name in the source is `name`: its
/// last URL segment.
fn disk_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Whether `path` is there with checksum `md5` (a download that finished
/// in an earlier process).
fn verified(path: &Path, md5: &str) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut HashWriter(&mut hasher)).is_ok()
        && hex::encode(hasher.finalize()).eq_ignore_ascii_case(md5)
}

fn url(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

fn agent(read_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(read_timeout))
        // A stalled transfer fails instead of hanging; slow ones keep going.
        .timeout_per_read(Some(read_timeout))
        // The checksums are of the files as stored: ask for no transfer
        // compression, which ureq would undo before the bytes reach us.
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .build()
        .into()
}

/// Calls [`Progress::finish`] however the download ends.
struct Finish<'a>(&'a dyn Progress);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// How often and how patiently a file is tried.
struct Retry {
    attempts: u32,
    backoff: Duration,
}

/// Whether `e` may pass if the transfer is tried again.
fn transient(e: &DataError) -> bool {
    match e {
        DataError::Download { .. } | DataError::Interrupted { .. } => true,
        DataError::HttpStatus { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        _ => false,
    }
}

/// Streams `url` to `dest.part` (tried again and resumed as the module docs
/// say), checks its MD5, renames it to `dest`.
fn download(
    agent: &ureq::Agent,
    retry: &Retry,
    url: &str,
    dest: &Path,
    md5: &str,
    progress: &dyn Progress,
) -> Result<(), DataError> {
    let mut part_name = dest.as_os_str().to_owned();
    part_name.push(".part");
    let part = PathBuf::from(part_name);
    // A part file from an earlier process is not trusted: start afresh.
    let _ = std::fs::remove_file(&part);
    let mut wait = retry.backoff;
    let mut checksum_retried = false;
    let mut attempt = 1;
    let result = loop {
        let outcome = stream(agent, url, &part, progress).and_then(|actual| {
            if actual.eq_ignore_ascii_case(md5) {
                Ok(())
            } else {
                Err(DataError::ChecksumMismatch {
                    path: dest.to_path_buf(),
                    url: url.to_owned(),
                    expected: md5.to_ascii_lowercase(),
                    actual,
                })
            }
        });
        let again = match &outcome {
            Ok(()) => break Ok(()),
            Err(DataError::ChecksumMismatch { .. }) if !checksum_retried => {
                // Perhaps a transfer went wrong: once more, from scratch.
                checksum_retried = true;
                let _ = std::fs::remove_file(&part);
                true
            }
            Err(e) => transient(e),
        };
        if !again || attempt >= retry.attempts {
            break outcome;
        }
        if let Err(e) = &outcome {
            tracing::warn!(
                "{e}; trying again in {wait:?} ({attempt} of {} tries)",
                retry.attempts
            );
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(MAX_BACKOFF);
        attempt += 1;
    };
    if let Err(e) = result {
        // The part file is worthless after the last failure.
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, dest).map_err(|e| DataError::io(dest, e))
}

/// Downloads `url` into `part`, resuming after the bytes already there when
/// the server honours `Range`; returns the MD5 of the whole file.
fn stream(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    progress: &dyn Progress,
) -> Result<String, DataError> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::StatusCode(status) => DataError::HttpStatus {
            url: url.to_owned(),
            status,
        },
        other => DataError::Download {
            url: url.to_owned(),
            source: Box::new(other),
        },
    })?;
    // Resumed only when the server says it sends the rest from `have`.
    let resumed = have > 0
        && response.status().as_u16() == 206
        && response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
    let mut hasher = Md5::new();
    let mut out = if resumed {
        let mut existing = File::open(part).map_err(|e| DataError::io(part, e))?;
        std::io::copy(&mut existing, &mut HashWriter(&mut hasher))
            .map_err(|e| DataError::io(part, e))?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(part)
            .map_err(|e| DataError::io(part, e))?
    } else {
        File::create(part).map_err(|e| DataError::io(part, e))?
    };
    let start = if resumed { have } else { 0 };
    let total = response.body().content_length().map(|n| n + start);
    let what = part.file_name().map_or_else(
        || url.to_owned(),
        |n| n.to_string_lossy().trim_end_matches(".part").to_owned(),
    );
    progress.start(&what, total);
    if start > 0 {
        progress.advance(start);
    }
    let _finish = Finish(progress);
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = out.sync_all();
                return Err(DataError::Interrupted {
                    url: url.to_owned(),
                    received,
                    expected: total,
                    source: e,
                });
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
        received += n as u64;
        progress.advance(n as u64);
    }
    if let Some(total) = total.filter(|&t| t != received) {
        let _ = out.sync_all();
        return Err(DataError::Interrupted {
            url: url.to_owned(),
            received,
            expected: Some(total),
            source: std::io::ErrorKind::UnexpectedEof.into(),
        });
    }
    out.sync_all().map_err(|e| DataError::io(part, e))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Feeds what is written to an MD5.
struct HashWriter<'a>(&'a mut Md5);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

mod archive;

#[cfg(test)]
mod tests;
