//! The data directory as a whole: one process at a time (`LOCK`), and the shard count its data
//! was written with (`SHARDS`).
//!
//! A patient's home shard is a hash of the NHS number modulo the shard count, so reopening the
//! data with another count would look for every patient in the wrong place: known patients
//! would answer "not found" and new shard directories would appear. The count is therefore
//! written once, when the directory is first used, and every later start must name the same.
//! Moving data between shard counts is a migration of its own, not a start-up option.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Held with an exclusive `flock` while an engine (or a tool writing to it) uses the directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Holds the shard count in decimal, followed by a newline.
pub const SHARDS_FILE_NAME: &str = "SHARDS";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Another process holds the directory.
    #[error("data directory {dir} is in use by another process")]
    InUse {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory's data was written with another shard count.
    #[error(
        "data directory {dir} holds data written with {recorded} shards, not {configured}: start \
         with --shards {recorded} (moving data to another shard count is not supported)"
    )]
    ShardCountMismatch {
        /// The directory.
        dir: PathBuf,
        /// The count recorded in it.
        recorded: usize,
        /// The count asked for.
        configured: usize,
    },
    /// The recorded shard count cannot be read.
    #[error("{path}: not a shard count ({content:?})")]
    BadShardsFile {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// An io error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory, locked for this process until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: File,
}

/// Locks `dir` (creating it if needed) for this process, before anything in it is read or
/// written.
pub fn lock(dir: &Path) -> Result<DataDirLock, DataDirError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = dir.join(LOCK_FILE_NAME);
    let file = File::create(&path).map_err(io_error(&path))?;
    match spine_storage::dir_lock::take(&file, spine_storage::dir_lock::LockMode::Exclusive) {
        Ok(()) => Ok(DataDirLock { _lock: file }),
        Err(fs::TryLockError::WouldBlock) => Err(DataDirError::InUse {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(DataDirError::Io { path, source }),
    }
}

/// The shard count recorded in `dir`: the `SHARDS` file, or, for a directory written before
/// the file existed, the number of `shard-N` directories; `None` for a new directory.
pub fn recorded_shards(dir: &Path) -> Result<Option<usize>, DataDirError> {
    let path = dir.join(SHARDS_FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(content) => content
            .trim_end_matches('\n')
            .parse::<usize>()
            .ok()
            .filter(|&count| count > 0)
            .map(Some)
            .ok_or(DataDirError::BadShardsFile { path, content }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if !dir.exists() {
                return Ok(None);
            }
            let mut shards = 0;
            for entry in fs::read_dir(dir).map_err(io_error(dir))? {
                let name = entry.map_err(io_error(dir))?.file_name();
                let name = name.to_string_lossy();
                shards += usize::from(
                    name.strip_prefix("shard-")
                        .is_some_and(|n| n.parse::<usize>().is_ok()),
                );
            }
            Ok((shards > 0).then_some(shards))
        }
        Err(source) => Err(DataDirError::Io { path, source }),
    }
}

/// Checks `configured` against the count recorded in `dir` (held by `_lock`) and records it
/// if none is: written to a temporary file, synced, renamed, and the directory synced, so a
/// crash leaves either no file or the whole one.
pub fn check_shards(
    dir: &Path,
    _lock: &DataDirLock,
    configured: usize,
) -> Result<(), DataDirError> {
    match recorded_shards(dir)? {
        Some(recorded) if recorded != configured => Err(DataDirError::ShardCountMismatch {
            dir: dir.to_path_buf(),
            recorded,
            configured,
        }),
        Some(_) if dir.join(SHARDS_FILE_NAME).exists() => Ok(()),
        _ => write_shards(dir, configured),
    }
}

fn write_shards(dir: &Path, count: usize) -> Result<(), DataDirError> {
    let path = dir.join(SHARDS_FILE_NAME);
    let temporary = dir.join(format!("{SHARDS_FILE_NAME}.tmp"));
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(format!("{count}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temporary))?;
    fs::rename(&temporary, &path).map_err(io_error(&path))?;
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_first_count_is_recorded_and_another_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock(dir.path()).unwrap();
        assert_eq!(recorded_shards(dir.path()).unwrap(), None);
        check_shards(dir.path(), &lock, 2).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(SHARDS_FILE_NAME)).unwrap(),
            "2\n"
        );
        check_shards(dir.path(), &lock, 2).unwrap();
        for other in [1, 3] {
            let refused = check_shards(dir.path(), &lock, other).unwrap_err();
            assert!(
                matches!(
                    refused,
                    DataDirError::ShardCountMismatch { recorded: 2, configured, .. }
                        if configured == other
                ),
                "{refused}"
            );
            let message = refused.to_string();
            assert!(message.contains("2 shards") && message.contains(&format!("not {other}")));
        }
    }

    #[test]
    fn a_directory_from_before_the_file_counts_its_shard_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("shard-0")).unwrap();
        fs::create_dir(dir.path().join("shard-1")).unwrap();
        fs::create_dir(dir.path().join("shard-x")).unwrap();
        let lock = lock(dir.path()).unwrap();
        assert!(check_shards(dir.path(), &lock, 3).is_err());
        check_shards(dir.path(), &lock, 2).unwrap();
        assert_eq!(recorded_shards(dir.path()).unwrap(), Some(2));
    }

    #[test]
    fn a_damaged_count_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SHARDS_FILE_NAME), "two\n").unwrap();
        assert!(matches!(
            recorded_shards(dir.path()),
            Err(DataDirError::BadShardsFile { .. })
        ));
    }

    #[test]
    fn a_second_lock_is_refused_while_the_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        assert!(matches!(lock(dir.path()), Err(DataDirError::InUse { .. })));
        drop(held);
        lock(dir.path()).unwrap();
    }
}
