//! Unpacking downloaded archives (`.tar`, `.tar.gz`/`.tgz`, `.zip`) without
//! letting one write outside its folder.
//!
//! Every archive of a dataset is unpacked into one scratch folder beside
//! the data root, and the dataset folder is moved into place in one rename,
//! so an interrupted unpack never looks like a dataset. Each entry is
//! checked before it is written: an absolute path or a `..`, a link whose
//! target is absolute or climbs out, and device files and FIFOs are
//! refused (the tar crate alone would skip some of them silently). Zip
//! archives may not hold links at all (no dataset needs one, and a chain
//! of links is the classic way out), and every zip entry's folder is
//! checked, after links are resolved, to lie inside the scratch folder.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::DataError;

/// The archive formats `data fetch` unpacks, told by the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `.tar`.
    Tar,
    /// `.tar.gz`, `.tgz`.
    TarGz,
    /// `.zip`.
    Zip,
}

impl Format {
    /// The format of the archive named `name`, if it is one.
    pub(crate) fn of(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if lower.ends_with(".tar") {
            Some(Self::Tar)
        } else if lower.ends_with(".zip") {
            Some(Self::Zip)
        } else {
            None
        }
    }
}

/// Unpacks `archives` into one scratch folder, then moves its `inner`
/// folder (`""`: the archives hold the dataset's contents at their top) to
/// `dest_root/subdir`, replacing what was there.
pub(crate) fn unpack_all(
    archives: &[PathBuf],
    dest_root: &Path,
    inner: &str,
    subdir: &str,
) -> Result<(), DataError> {
    let scratch = dest_root.join(format!(".{}.unpacking", subdir.replace('/', "_")));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| DataError::io(&scratch, e))?;
    }
    std::fs::create_dir_all(&scratch).map_err(|e| DataError::io(&scratch, e))?;
    let result = archives
        .iter()
        .try_for_each(|a| unpack_into(a, &scratch))
        .and_then(|()| {
            let from = if inner.is_empty() {
                scratch.clone()
            } else {
                scratch.join(inner)
            };
            if !from.is_dir() {
                return Err(DataError::Archive {
                    path: archives.last().cloned().unwrap_or_default(),
                    message: format!("it holds no `{inner}/` folder"),
                });
            }
            let target = dest_root.join(subdir);
            if target.exists() {
                std::fs::remove_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
            }
            std::fs::rename(&from, &target).map_err(|e| DataError::io(&target, e))
        });
    // Only scratch space is left to tidy (after a move of the whole scratch
    // folder there is none); failing to remove it does not affect the
    // dataset.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Unpacks one archive into `dest`, its format told by its name.
fn unpack_into(archive: &Path, dest: &Path) -> Result<(), DataError> {
    let archive_err = |message: String| DataError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    let format = Format::of(&name).ok_or_else(|| {
        archive_err("not a .tar, .tar.gz, .tgz or .zip file, so it cannot be unpacked".into())
    })?;
    let file = BufReader::new(File::open(archive).map_err(|e| DataError::io(archive, e))?);
    match format {
        Format::Tar => untar_checked(tar::Archive::new(file), dest),
        Format::TarGz => untar_checked(tar::Archive::new(flate2::read::GzDecoder::new(file)), dest),
        Format::Zip => unzip_checked(file, dest),
    }
    .map_err(archive_err)
}

/// Whether a path written in an archive leaves the folder it is unpacked
/// into on its own: absolute, or with a `..` or a root anywhere.
fn escapes(p: &Path) -> bool {
    p.is_absolute()
        || p.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        })
}

fn escape_error(path: &Path) -> String {
    format!("entry `{}` escapes the target folder", path.display())
}

/// Unpacks every entry of a tar archive into `dest` after [`check_tar_entry`].
fn untar_checked<R: Read>(mut archive: tar::Archive<R>, dest: &Path) -> Result<(), String> {
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        check_tar_entry(&entry)?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let written = entry
            .unpack_in(dest)
            .map_err(|e| format!("entry `{}`: {e}", path.display()))?;
        if !written {
            return Err(escape_error(&path));
        }
    }
    Ok(())
}

/// Refuses a tar entry that would write outside the folder it is unpacked
/// into: an absolute path or a `..`, a symbolic or hard link whose target
/// is absolute or climbs out, and device files and FIFOs.
fn check_tar_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), String> {
    let path = entry.path().map_err(|e| e.to_string())?;
    if escapes(&path) {
        return Err(escape_error(&path));
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

/// The file-type bits of a Unix mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// Unpacks every entry of a zip archive into `dest`: regular files and
/// folders only, each inside `dest` (module docs).
fn unzip_checked<R: Read + std::io::Seek>(reader: R, dest: &Path) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| e.to_string())?;
    let root = dest
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("entry {i}: {e}"))?
            .into_owned();
        let path = Path::new(&name);
        // Both the plain rule and the zip crate's own must agree.
        let rel = match entry.enclosed_name() {
            Some(rel) if !escapes(path) => rel,
            _ => return Err(escape_error(path)),
        };
        if entry.is_symlink() {
            return Err(format!(
                "entry `{name}` is a symbolic link, which a zip dataset archive may not hold"
            ));
        }
        let kind = entry.unix_mode().map(|m| m & S_IFMT);
        if kind.is_some_and(|k| k != 0 && k != S_IFREG && k != S_IFDIR) {
            return Err(format!("entry `{name}` is a device, FIFO or socket"));
        }
        let out = root.join(&rel);
        let folder = if entry.is_dir() {
            out.as_path()
        } else {
            out.parent().unwrap_or(&root)
        };
        std::fs::create_dir_all(folder).map_err(|e| format!("entry `{name}`: {e}"))?;
        let real = folder
            .canonicalize()
            .map_err(|e| format!("entry `{name}`: {e}"))?;
        if !real.starts_with(&root) {
            return Err(escape_error(path));
        }
        if entry.is_dir() {
            continue;
        }
        let mut file = File::create(&out).map_err(|e| format!("entry `{name}`: {e}"))?;
        std::io::copy(&mut entry, &mut file).map_err(|e| format!("entry `{name}`: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A zip of `(name, data)` files, names written as they are.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::of("VOCtest_06-Nov-2007.tar"), Some(Format::Tar));
        assert_eq!(Format::of("cifar-10-binary.tar.gz"), Some(Format::TarGz));
        assert_eq!(Format::of("x.TGZ"), Some(Format::TarGz));
        assert_eq!(Format::of("val2017.zip"), Some(Format::Zip));
        assert_eq!(Format::of("train-images-idx3-ubyte.gz"), None);
    }

    #[test]
    fn a_zip_unpacks_and_its_top_level_can_be_the_dataset() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = tmp.path().join("annotations_trainval2017.zip");
        let b = tmp.path().join("val2017.zip");
        std::fs::write(&a, zip_of(&[("annotations/instances_val2017.json", b"{}")])).expect("a");
        std::fs::write(&b, zip_of(&[("val2017/1.jpg", b"jpeg")])).expect("b");
        unpack_all(&[a, b], tmp.path(), "", "coco").expect("unpacks");
        let coco = tmp.path().join("coco");
        assert_eq!(
            std::fs::read(coco.join("annotations/instances_val2017.json")).expect("json"),
            b"{}"
        );
        assert_eq!(
            std::fs::read(coco.join("val2017/1.jpg")).expect("jpg"),
            b"jpeg"
        );
        assert!(!tmp.path().join(".coco.unpacking").exists());
    }

    #[test]
    fn hostile_zips_are_refused_and_write_nothing_outside() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                zip_of(&[("coco/../../evil", b"x")]),
                "entry `coco/../../evil` escapes the target folder",
            ),
            (
                zip_of(&[("/tmp/acbench-evil-zip", b"x")]),
                "escapes the target folder",
            ),
            (
                zip_of(&[("a/../../evil", b"x")]),
                "escapes the target folder",
            ),
            (
                {
                    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                    let opts = zip::write::SimpleFileOptions::default();
                    w.add_symlink("coco/up", "../..", opts).expect("link");
                    w.start_file("coco/up/evil", opts).expect("file");
                    w.write_all(b"x").expect("write");
                    w.finish().expect("finish").into_inner()
                },
                "entry `coco/up` is a symbolic link",
            ),
        ];
        for (bytes, expect) in cases {
            let root = tempfile::tempdir().expect("tmp");
            let data = root.path().join("data");
            std::fs::create_dir_all(&data).expect("mkdir");
            let archive = data.join("evil.zip");
            std::fs::write(&archive, &bytes).expect("write");
            let m = unpack_all(&[archive], &data, "", "coco")
                .expect_err("hostile")
                .to_string();
            assert!(m.contains(expect), "{m}");
            let beside: Vec<_> = std::fs::read_dir(root.path())
                .expect("ls")
                .map(|e| e.expect("entry").file_name())
                .collect();
            assert_eq!(beside, ["data"], "nothing written beside the data root");
            assert!(!data.join("coco").exists(), "no half dataset");
            assert!(!Path::new("/tmp/acbench-evil-zip").exists());
        }
    }
}
