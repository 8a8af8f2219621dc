//! `BACKUP_MANIFEST`: what a backup holds, written last, so a directory without one is not a
//! backup (a copy cut short). JSON, one object:
//!
//! | field | meaning |
//! | --- | --- |
//! | `format` | the manifest's format, 1 |
//! | `spine_version` | the version of `spine` that took it |
//! | `taken_at_unix_ms` | when the cut was read |
//! | `online` | whether a serving core was copied (through its control socket) or a stopped one |
//! | `shards` | the shard count the data was written with |
//! | `positions` | per shard, `{shard, term, index}`: the last durable record the copy holds |
//! | `since` | for an incremental backup, the backup it was taken against (as given); `null` otherwise |
//! | `files` | per file, `{path, bytes, hashed_bytes, sha256}`: its path from the backup's top, `/` between names; its size; how many bytes from its start the hash covers (the rest are zeros: a segment's never-written end); the hash's 64 lower-case hex digits |

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BackupError;

/// The manifest's file name, at the backup's top.
pub const MANIFEST_FILE_NAME: &str = "BACKUP_MANIFEST";
/// The manifest format this code writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// The largest manifest read: a file list of a hundred thousand segments, and more.
const MANIFEST_BYTES_MAX: u64 = 64 << 20;

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The version of `spine` that took it.
    pub spine_version: String,
    /// When the cut was read, in milliseconds since 1970.
    pub taken_at_unix_ms: u64,
    /// Whether a serving core was copied.
    pub online: bool,
    /// The shard count the data was written with.
    pub shards: usize,
    /// Each shard's last record in the copy, in shard order.
    pub positions: Vec<ShardPosition>,
    /// For an incremental backup, the backup whose unchanged segments it links to.
    #[serde(default)]
    pub since: Option<String>,
    /// Every file of the backup but the manifest.
    pub files: Vec<FileEntry>,
}

/// A shard's last durable record at the backup's cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardPosition {
    /// The shard.
    pub shard: usize,
    /// The record's term.
    pub term: u64,
    /// The record's log index (0: the shard's log is empty).
    pub index: u64,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// From the backup's top, `/` between names.
    pub path: String,
    /// The file's size.
    pub bytes: u64,
    /// Bytes from the start covered by `sha256`; the rest of the file is zeros.
    pub hashed_bytes: u64,
    /// SHA-256 of the first `hashed_bytes` bytes, 64 lower-case hex digits.
    pub sha256: String,
}

impl Manifest {
    /// Writes the manifest into `dir` durably: a temporary file, synced, renamed, the
    /// directory synced.
    pub fn write_to(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(MANIFEST_FILE_NAME);
        let temporary = dir.join(format!("{MANIFEST_FILE_NAME}.tmp"));
        let mut text = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        text.push('\n');
        let write = || -> io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(BackupError::io(&path))
    }

    /// The manifest of the backup in `dir`.
    pub fn read_from(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(MANIFEST_FILE_NAME);
        let length = fs::metadata(&path).map_err(BackupError::io(&path))?.len();
        if length > MANIFEST_BYTES_MAX {
            return Err(BackupError::BadManifest {
                path,
                reason: format!("{length} bytes; a manifest is at most {MANIFEST_BYTES_MAX}"),
            });
        }
        let text = fs::read_to_string(&path).map_err(BackupError::io(&path))?;
        let manifest: Self =
            serde_json::from_str(&text).map_err(|error| BackupError::BadManifest {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        manifest
            .check_shape()
            .map_err(|reason| BackupError::BadManifest { path, reason })?;
        Ok(manifest)
    }

    /// What makes the manifest impossible, if anything: another format, positions that are
    /// not one per shard in order, a file path leaving the backup, a bad hash.
    fn check_shape(&self) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!(
                "format {}; this spine reads format {MANIFEST_FORMAT}",
                self.format
            ));
        }
        let shards_in_order = self.positions.len() == self.shards
            && self
                .positions
                .iter()
                .enumerate()
                .all(|(shard, position)| position.shard == shard);
        if self.shards == 0 || !shards_in_order {
            return Err(format!(
                "{} positions for {} shards: one per shard, in shard order",
                self.positions.len(),
                self.shards
            ));
        }
        for file in &self.files {
            let inside = !file.path.is_empty()
                && file
                    .path
                    .split('/')
                    .all(|name| !name.is_empty() && name != "." && name != "..");
            if !inside {
                return Err(format!(
                    "file {:?}: not a path inside the backup",
                    file.path
                ));
            }
            if file.hashed_bytes > file.bytes {
                return Err(format!(
                    "file {}: {} bytes hashed of {}",
                    file.path, file.hashed_bytes, file.bytes
                ));
            }
            let hex = file.sha256.len() == 64
                && file
                    .sha256
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
            if !hex {
                return Err(format!("file {}: sha256 is not 64 hex digits", file.path));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            spine_version: "0.1.0".into(),
            taken_at_unix_ms: 1,
            online: true,
            shards: 1,
            positions: vec![ShardPosition {
                shard: 0,
                term: 1,
                index: 9,
            }],
            since: None,
            files: vec![FileEntry {
                path: "shard-0/00000000000000000001.seg".into(),
                bytes: 4096,
                hashed_bytes: 512,
                sha256: "0".repeat(64),
            }],
        }
    }

    #[test]
    fn a_manifest_round_trips_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        manifest().write_to(dir.path()).unwrap();
        assert_eq!(Manifest::read_from(dir.path()).unwrap(), manifest());
        let refused = |change: fn(&mut Manifest)| {
            let mut bad = manifest();
            change(&mut bad);
            bad.write_to(dir.path()).unwrap();
            Manifest::read_from(dir.path()).unwrap_err().to_string()
        };
        assert!(refused(|m| m.format = 2).contains("format 2"));
        assert!(refused(|m| m.shards = 2).contains("1 positions for 2 shards"));
        assert!(refused(|m| m.files[0].path = "../escape".into()).contains("not a path inside"));
        assert!(refused(|m| m.files[0].path = "/etc/passwd".into()).contains("not a path inside"));
        assert!(refused(|m| m.files[0].hashed_bytes = 5000).contains("5000 bytes hashed"));
        assert!(refused(|m| m.files[0].sha256 = "X".repeat(64)).contains("64 hex digits"));
    }
}
