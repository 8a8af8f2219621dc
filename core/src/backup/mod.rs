//! Backups of a data directory, taken from a serving core or a stopped one, and restored.
//!
//! A backup is a data directory of its own, plus a manifest ([`manifest`]) written last: every
//! shard's segments up to one cut, the newest index checkpoint inside it, and the directory's
//! other files (the shard count, the access directory, the certificates). It opens as it is
//! (read-only, for `spine verify`); `spine restore` copies it to a new data directory after
//! checking every file against the manifest.
//!
//! **The cut.** Each shard's log ends at its own position; together they must be a state a
//! crash could have left, or a cross-shard step (an e-RS booking's slot, say) could stand in
//! the copy without the record that caused it. A shard sends another shard a step only once
//! the record behind it is durable, so positions read while every shard's log writer is held
//! at once (`EngineHandle::backup_cut`: each held between two batches, then all read, then all
//! let go) are such a state: every record in the copy was caused by records in the copy. The
//! writers are held for as long as reading the positions takes (microseconds, after the flush
//! in flight); the copying happens after, from files that are only ever appended to past the
//! cut.
//!
//! - `manifest.rs`: the manifest, field by field.
//! - `take.rs`: copying a data directory at a cut.
//! - `check.rs`: a backup's files against its manifest.
//! - `restore.rs`: a backup into a new data directory.
//! - `control.rs`: the serving core's control socket, through which a backup asks for a cut.

pub mod check;
pub mod control;
pub mod manifest;
pub mod restore;
pub mod take;

use std::fs::{File, OpenOptions};
use std::io::{self, Read};

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use manifest::{FileEntry, MANIFEST_FILE_NAME, Manifest, ShardPosition};
pub use spine_storage::io::paced::Pace;

/// Why a backup could not be taken, checked or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// An io error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The target of a backup or a restore holds files already.
    #[error("{path} is not empty: a backup or a restore goes into a new directory")]
    TargetNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The manifest cannot be read or describes something impossible.
    #[error("{path}: not a backup manifest: {reason}")]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A backup's files disagree with its manifest.
    #[error("{path} does not match its manifest: {problems} problems, the first: {first}")]
    Damaged {
        /// The backup.
        path: PathBuf,
        /// How many problems were found.
        problems: usize,
        /// The first.
        first: String,
    },
    /// The data directory holds something a backup cannot copy.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A log's extent could not be read (a sealed segment's last record no longer reads).
    #[error("shard {shard}: reading where its log ends: {source}")]
    Extent {
        /// The shard.
        shard: usize,
        /// The failure.
        source: spine_storage::ReadError,
    },
    /// The serving core's control socket failed or answered something unexpected.
    #[error("control socket {path}: {reason}")]
    Control {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl BackupError {
    /// A mapper from an io error on `path`.
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The size of each read and write of a copy: one writeback chunk, so each is on disk before
/// the next is written and the log's flushes never queue behind a copy's dirty pages.
const CHUNK_BYTES: usize = spine_storage::io::paced::WRITEBACK_CHUNK;

/// SHA-256 as the manifest writes it: 64 lower-case hex digits.
fn hex_digest(hasher: Sha256) -> String {
    let digest: [u8; 32] = hasher.finalize().into();
    spine_domain::gp2gp::Sha256Hash::from_bytes(digest).to_string()
}

/// Copies the first `hashed_bytes` bytes of `source` to a new file `target` at `pace`, each
/// chunk written back before the next, then zeros to `bytes` (a hole), synced; returns the hash
/// of the bytes copied.
fn copy_prefix(
    source: &Path,
    target: &Path,
    hashed_bytes: u64,
    bytes: u64,
    pace: &mut Pace,
) -> Result<String, BackupError> {
    let mut from = File::open(source)
        .map_err(BackupError::io(source))?
        .take(hashed_bytes);
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(BackupError::io(target))?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut copied = 0;
    loop {
        let read = from.read(&mut chunk).map_err(BackupError::io(source))?;
        if read == 0 {
            break;
        }
        hasher.update(&chunk[..read]);
        spine_storage::io::paced::write_paced(&mut to, copied, [&chunk[..read]])
            .map_err(BackupError::io(target))?;
        copied += read as u64;
        pace.advance(read);
    }
    if copied != hashed_bytes {
        return Err(BackupError::Io {
            path: source.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{copied} bytes where {hashed_bytes} were expected"),
            ),
        });
    }
    to.set_len(bytes).map_err(BackupError::io(target))?;
    to.sync_all().map_err(BackupError::io(target))?;
    Ok(hex_digest(hasher))
}

/// A directory being filled under a name of its own beside its final one (`NAME.partial`),
/// renamed into place only once whole: a backup or a restore cut short (killed, power lost)
/// never leaves a directory that looks complete, and running it again starts afresh (the
/// `.partial` directory left behind is removed).
struct Staging {
    partial: PathBuf,
    target: PathBuf,
}

impl Staging {
    /// Begins filling `target`, which must not exist, or be empty.
    fn begin(target: &Path) -> Result<Self, BackupError> {
        match std::fs::read_dir(target) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BackupError::TargetNotEmpty {
                        path: target.to_path_buf(),
                    });
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BackupError::Io {
                    path: target.to_path_buf(),
                    source,
                });
            }
        }
        let name =
            target
                .file_name()
                .and_then(|name| name.to_str())
                .ok_or(BackupError::Unsupported {
                    path: target.to_path_buf(),
                    reason: "not a directory name a backup or a restore can go to",
                })?;
        let partial = target.with_file_name(format!("{name}.partial"));
        match std::fs::remove_dir_all(&partial) {
            Ok(()) => {
                tracing::warn!(path = %partial.display(), "removed what an earlier run cut short left")
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BackupError::Io {
                    path: partial,
                    source,
                });
            }
        }
        std::fs::create_dir_all(&partial).map_err(BackupError::io(&partial))?;
        Ok(Self {
            partial,
            target: target.to_path_buf(),
        })
    }

    /// Where the files go meanwhile.
    fn path(&self) -> &Path {
        &self.partial
    }

    /// Renames the whole directory into place, durably.
    fn commit(self) -> Result<(), BackupError> {
        sync_dir(&self.partial)?;
        match std::fs::remove_dir(&self.target) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BackupError::Io {
                    path: self.target,
                    source,
                });
            }
        }
        std::fs::rename(&self.partial, &self.target).map_err(BackupError::io(&self.target))?;
        let parent = match self.target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        sync_dir(&parent)
    }
}

/// Syncs directory `dir`, so the names created in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(BackupError::io(dir))
}

/// `relative` (a manifest path, or `""` for the top itself) under `top`.
fn under(top: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .filter(|name| !name.is_empty())
        .fold(top.to_path_buf(), |path, name| path.join(name))
}

/// The manifest path of `name` in the folder `relative` (`""`, the top).
fn inside(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_owned()
    } else {
        format!("{relative}/{name}")
    }
}
