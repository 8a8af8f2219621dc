//! Copying a data directory at a cut: each shard's segments up to its position, the newest
//! checkpoint inside it, and every other file of the directory whole; the manifest last.
//!
//! Left out: the lock files, the control socket (and the private directory it is made in),
//! spare segments and anything temporary
//! (`*.tmp`, `*.spare`), and checkpoints past the cut (a checkpoint covering records the copy
//! lacks would be refused at open anyway, and cost a full scan).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use spine_storage::format::SEGMENT_HEADER_SIZE;
use spine_storage::{LogExtent, Position};

use super::manifest::{FileEntry, MANIFEST_FILE_NAME, MANIFEST_FORMAT, Manifest, ShardPosition};
use super::{BackupError, Pace, Staging, control, copy_prefix, sync_dir};
use crate::engine::EngineConfig;
use crate::engine::data_dir::LOCK_FILE_NAME;

/// How the cut was taken, for the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// From a serving core, through its control socket.
    Online,
    /// From a stopped core whose directory this process holds.
    Offline,
}

/// A backup taken.
#[derive(Debug)]
pub struct Taken {
    /// Its manifest.
    pub manifest: Manifest,
    /// Segments hard-linked to the earlier backup's (an incremental backup), not copied.
    pub linked: usize,
}

/// Copies `data_dir` at `cut` (one extent per shard, in shard order) into `to`, which must
/// not exist or be empty. With `since` (an earlier backup of the same directory) a segment
/// unchanged since that backup (the same file with the same used bytes: a log never rewrites
/// what it wrote) is a hard link to its copy there instead, copied only where the two are on
/// different file systems, so each backup is whole on its own and stores only what changed.
/// The bytes copied keep to `pace`.
pub fn take(
    data_dir: &Path,
    cut: &[LogExtent],
    source: Source,
    to: &Path,
    since: Option<&Path>,
    pace: &mut Pace,
) -> Result<Taken, BackupError> {
    let base = since.map(|dir| read_base(dir, cut.len())).transpose()?;
    let staging = Staging::begin(to)?;
    let canonical = |path: &Path| fs::canonicalize(path).map_err(BackupError::io(path));
    if canonical(staging.path())?.starts_with(canonical(data_dir)?) {
        let _ = fs::remove_dir(staging.path());
        return Err(BackupError::Unsupported {
            path: to.to_path_buf(),
            reason: "inside the data directory it would copy",
        });
    }
    let to = staging.path();
    let taken_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let mut copier = Copier {
        base: base.as_ref().map(|(dir, manifest)| Base {
            dir,
            files: manifest
                .files
                .iter()
                .map(|entry| (entry.path.as_str(), entry))
                .collect(),
        }),
        files: Vec::new(),
        linked: 0,
    };
    let mut config = EngineConfig::new(data_dir);
    config.shards = cut.len();
    let mut shard_dirs = Vec::new();
    for (shard, extent) in cut.iter().enumerate() {
        let shard_dir = config.log_config(shard).dir;
        shard_dirs.push(copier.copy_shard(&shard_dir, extent, to, pace)?);
    }
    copy_other_files(data_dir, to, "", &shard_dirs, &mut copier.files, pace)?;
    sync_dir(to)?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        spine_version: env!("CARGO_PKG_VERSION").to_owned(),
        taken_at_unix_ms,
        online: source == Source::Online,
        shards: cut.len(),
        positions: cut
            .iter()
            .enumerate()
            .map(|(shard, extent)| ShardPosition {
                shard,
                term: extent.last.term,
                index: extent.last.index,
            })
            .collect(),
        since: since.map(|dir| dir.display().to_string()),
        files: copier.files,
    };
    manifest.write_to(to)?;
    staging.commit()?;
    Ok(Taken {
        manifest,
        linked: copier.linked,
    })
}

/// The manifest of the earlier backup in `dir`, which must be of `shards` shards.
fn read_base(dir: &Path, shards: usize) -> Result<(&Path, Manifest), BackupError> {
    let manifest = Manifest::read_from(dir)?;
    if manifest.shards != shards {
        return Err(BackupError::BadManifest {
            path: dir.join(MANIFEST_FILE_NAME),
            reason: format!(
                "a backup of {} shards; the data directory has {shards}",
                manifest.shards
            ),
        });
    }
    Ok((dir, manifest))
}

/// An earlier backup's files, by path.
struct Base<'a> {
    dir: &'a Path,
    files: HashMap<&'a str, &'a FileEntry>,
}

/// The files copied so far.
struct Copier<'a> {
    base: Option<Base<'a>>,
    files: Vec<FileEntry>,
    linked: usize,
}

impl Copier<'_> {
    /// Copies the log in `shard_dir` up to `extent` into `to`, with its newest checkpoint
    /// inside the extent; returns the shard directory's name.
    fn copy_shard(
        &mut self,
        shard_dir: &Path,
        extent: &LogExtent,
        to: &Path,
        pace: &mut Pace,
    ) -> Result<String, BackupError> {
        let name = file_name(shard_dir)?;
        let target = to.join(&name);
        fs::create_dir(&target).map_err(BackupError::io(&target))?;
        for segment in &extent.segments {
            let inside = format!("{name}/{}", file_name(&segment.path)?);
            let copy = super::under(to, &inside);
            let linked = self.base.as_ref().and_then(|base| {
                let entry = base.files.get(inside.as_str()).filter(|entry| {
                    entry.bytes == segment.size && entry.hashed_bytes == segment.used_bytes
                })?;
                let earlier = super::under(base.dir, &inside);
                // A segment compacted again since keeps its name: its header (which holds
                // the compaction round) tells the copies apart.
                same_header(&earlier, &segment.path).then_some(())?;
                fs::hard_link(&earlier, &copy)
                    .is_ok()
                    .then(|| entry.sha256.clone())
            });
            let sha256 = match linked {
                Some(sha256) => {
                    self.linked += 1;
                    sha256
                }
                None => copy_prefix(&segment.path, &copy, segment.used_bytes, segment.size, pace)?,
            };
            self.files.push(FileEntry {
                path: inside,
                bytes: segment.size,
                hashed_bytes: segment.used_bytes,
                sha256,
            });
        }
        if let Some(entry) = copy_checkpoint(shard_dir, extent.last, &target, &name, pace)? {
            self.files.push(entry);
        }
        sync_dir(&target)?;
        Ok(name)
    }
}

/// Whether the segment files `a` and `b` begin with the same header (false if either
/// cannot be read).
fn same_header(a: &Path, b: &Path) -> bool {
    let header = |path: &Path| -> Option<[u8; SEGMENT_HEADER_SIZE]> {
        let mut bytes = [0; SEGMENT_HEADER_SIZE];
        fs::File::open(path).ok()?.read_exact(&mut bytes).ok()?;
        Some(bytes)
    };
    header(a).is_some_and(|first| header(b) == Some(first))
}

/// The last name of `path` as UTF-8 (every name a data directory holds is).
fn file_name(path: &Path) -> Result<String, BackupError> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .ok_or(BackupError::Unsupported {
            path: path.to_path_buf(),
            reason: "a file name that is not UTF-8",
        })
}

/// The newest checkpoint of `shard_dir` that covers no record past `last`, copied whole.
fn copy_checkpoint(
    shard_dir: &Path,
    last: Position,
    target: &Path,
    shard_name: &str,
    pace: &mut Pace,
) -> Result<Option<FileEntry>, BackupError> {
    let newest = fs::read_dir(shard_dir)
        .map_err(BackupError::io(shard_dir))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let covered: u64 = name
                .strip_prefix("checkpoint-")?
                .strip_suffix(".ckpt")?
                .parse()
                .ok()?;
            (covered <= last.index).then_some((covered, name))
        })
        .max();
    let Some((_, name)) = newest else {
        return Ok(None);
    };
    let source = shard_dir.join(&name);
    // The checkpointer may remove it meanwhile, having written a newer one: the copy then
    // goes without (opening it scans the log instead).
    let bytes = match fs::metadata(&source) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source_error) => {
            return Err(BackupError::Io {
                path: source,
                source: source_error,
            });
        }
    };
    match copy_prefix(&source, &target.join(&name), bytes, bytes, pace) {
        Ok(sha256) => Ok(Some(FileEntry {
            path: format!("{shard_name}/{name}"),
            bytes,
            hashed_bytes: bytes,
            sha256,
        })),
        Err(BackupError::Io { source: error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            let _ = fs::remove_file(target.join(&name));
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Whether a file of the data directory stays out of a backup.
fn left_out(name: &str) -> bool {
    name == LOCK_FILE_NAME
        || name == control::SOCKET_FILE_NAME
        || name.starts_with(control::PRIVATE_DIR_PREFIX)
        || name == MANIFEST_FILE_NAME
        || name.ends_with(".tmp")
        || name.ends_with(".spare")
}

/// Copies every file under `dir` (the data directory's `relative` folder) whole, but the shard
/// directories at the top and what [`left_out`] names.
fn copy_other_files(
    dir: &Path,
    to: &Path,
    relative: &str,
    shard_dirs: &[String],
    files: &mut Vec<FileEntry>,
    pace: &mut Pace,
) -> Result<(), BackupError> {
    let source_dir = super::under(dir, relative);
    let mut entries: Vec<_> = fs::read_dir(&source_dir)
        .map_err(BackupError::io(&source_dir))?
        .collect::<Result<_, _>>()
        .map_err(BackupError::io(&source_dir))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = file_name(&path)?;
        let inside = super::inside(relative, &name);
        if left_out(&name) || (relative.is_empty() && shard_dirs.contains(&name)) {
            continue;
        }
        let kind = entry.file_type().map_err(BackupError::io(&path))?;
        let target = super::under(to, &inside);
        if kind.is_dir() {
            fs::create_dir(&target).map_err(BackupError::io(&target))?;
            copy_other_files(dir, to, &inside, shard_dirs, files, pace)?;
            sync_dir(&target)?;
        } else if kind.is_file() {
            let bytes = entry.metadata().map_err(BackupError::io(&path))?.len();
            let sha256 = copy_prefix(&path, &target, bytes, bytes, pace)?;
            files.push(FileEntry {
                path: inside,
                bytes,
                hashed_bytes: bytes,
                sha256,
            });
        } else {
            return Err(BackupError::Unsupported {
                path,
                reason: "neither a file nor a directory (a backup copies only those)",
            });
        }
    }
    Ok(())
}
