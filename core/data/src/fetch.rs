//! Downloading the official archives, checked against their published MD5s.
//!
//! Each file is streamed to `NAME.part` while its MD5 is computed, and only
//! renamed to `NAME` once the checksum matches, so a file with its final name
//! is always a verified one. Tar archives are unpacked into a scratch folder
//! and the dataset folder is moved into place in one rename, so an
//! interrupted unpack never looks like a dataset either.
//!
//! A transfer that fails on the way (connection refused or reset, a stall,
//! a body cut short, a 5xx or 429 answer) is tried again after a wait that
//! doubles each time ([`FetchOptions::attempts`], [`FetchOptions::backoff`]);
//! a cut transfer resumes where it stopped when the server honours `Range`
//! (206), and starts over when it does not. A file whose checksum is wrong
//! is downloaded once more from scratch before that is an error. After the
//! last failure the `.part` file is removed.

use std::fs::File;
use std::io::{BufReader, Read, Write};
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
    /// File name, appended to the base URL and used on disk.
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
    /// Whether the files are `.tar.gz` archives holding `subdir/` (rather
    /// than files to put into `subdir/` as they are).
    pub extract: bool,
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
        }),
        "cifar100" | "cifar100-coarse" => Ok(Source {
            base_url: "https://www.cs.toronto.edu/~kriz/".to_owned(),
            files: vec![file(
                "cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            )],
            subdir: "cifar-100-binary".to_owned(),
            extract: true,
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
        for f in &src.files {
            let archive = dest_root.join(&f.name);
            download(
                &agent,
                &retry,
                &url(&base, &f.name),
                &archive,
                &f.md5,
                progress,
            )?;
            unpack(&archive, dest_root, &src.subdir)?;
            std::fs::remove_file(&archive).map_err(|e| DataError::io(&archive, e))?;
        }
    } else {
        std::fs::create_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
        for f in &src.files {
            let dest = target.join(&f.name);
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

/// Unpacks `archive` (tar.gz) and moves its `subdir/` to `dest_root/subdir`.
fn unpack(archive: &Path, dest_root: &Path, subdir: &str) -> Result<(), DataError> {
    let scratch = dest_root.join(format!(".{subdir}.unpacking"));
    let archive_err = |message: String| DataError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| DataError::io(&scratch, e))?;
    }
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    std::fs::create_dir_all(&scratch).map_err(|e| DataError::io(&scratch, e))?;
    // Every entry is checked before it is written: a hostile archive's
    // `..`, absolute paths, links pointing out and device files are refused
    // (the tar crate alone would skip some of them silently).
    let unpacked = unpack_checked(
        tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file))),
        &scratch,
    )
    .map_err(archive_err);
    let result = unpacked.and_then(|()| {
        let inner = scratch.join(subdir);
        if !inner.is_dir() {
            return Err(archive_err(format!("it holds no `{subdir}/` folder")));
        }
        let target = dest_root.join(subdir);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
        }
        std::fs::rename(&inner, &target).map_err(|e| DataError::io(&target, e))
    });
    // Only scratch space is left to tidy; failing to remove it does not
    // affect the dataset.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Unpacks every entry of `archive` into `dest` after [`check_entry`].
fn unpack_checked<R: Read>(mut archive: tar::Archive<R>, dest: &Path) -> Result<(), String> {
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        check_entry(&entry)?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let written = entry
            .unpack_in(dest)
            .map_err(|e| format!("entry `{}`: {e}", path.display()))?;
        if !written {
            return Err(format!(
                "entry `{}` escapes the target folder",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Refuses an entry that would write outside the folder it is unpacked
/// into: an absolute path or a `..`, a symbolic or hard link whose target
/// is absolute or climbs out, and device files and FIFOs.
fn check_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), String> {
    use std::path::Component;
    let path = entry.path().map_err(|e| e.to_string())?;
    let escapes = |p: &Path| {
        p.is_absolute()
            || p.components().any(|c| {
                matches!(
                    c,
                    Component::ParentDir | Component::RootDir | Component::Prefix(_)
                )
            })
    };
    if escapes(&path) {
        return Err(format!(
            "entry `{}` escapes the target folder",
            path.display()
        ));
    }
    let kind = entry.header().entry_type();
    if kind.is_symlink() || kind.is_hard_link() {
        let target = entry
            .link_name()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("link `{}` has no target", path.display()))?;
        // A symbolic link resolves from its own folder, a hard link from
        // the archive's root.
        let from = if kind.is_symlink() {
            path.parent().unwrap_or(Path::new("")).to_path_buf()
        } else {
            PathBuf::new()
        };
        let mut depth: usize = from.components().count();
        let mut out = target.is_absolute();
        for c in target.components() {
            match c {
                Component::ParentDir if depth == 0 => out = true,
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => out = true,
            }
        }
        if out {
            return Err(format!(
                "link `{}` points to `{}`, outside the target folder",
                path.display(),
                target.display()
            ));
        }
    }
    if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
        return Err(format!("entry `{}` is a device or FIFO", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
