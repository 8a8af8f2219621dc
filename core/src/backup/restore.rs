//! A backup into a new data directory: the backup is checked whole against its manifest
//! first, so a damaged one restores nothing; then every file is copied (each file's zeros as
//! a hole) into `DIR.partial`, synced, every directory synced, and the whole renamed to `DIR`:
//! a restore cut short leaves no data directory a core would serve. The data directory then opens as the core did
//! at the backup's cut, less the turns that were not yet durable there.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::manifest::Manifest;
use super::{BackupError, Pace, Staging, check, copy_prefix, sync_dir, under};

/// Restores the backup in `from` into `data_dir` (which must not exist, or be empty), the
/// bytes copied keeping to `pace`; returns its manifest.
pub fn restore(from: &Path, data_dir: &Path, pace: &mut Pace) -> Result<Manifest, BackupError> {
    let manifest = Manifest::read_from(from)?;
    let problems = check::check(from, &manifest)?;
    if let Some(first) = problems.first() {
        return Err(BackupError::Damaged {
            path: from.to_path_buf(),
            problems: problems.len(),
            first: first.clone(),
        });
    }
    let staging = Staging::begin(data_dir)?;
    let data_dir = staging.path();
    let mut folders = BTreeSet::from([data_dir.to_path_buf()]);
    for entry in &manifest.files {
        let target = under(data_dir, &entry.path);
        let folder = target
            .parent()
            .map_or_else(|| data_dir.to_path_buf(), Path::to_path_buf);
        fs::create_dir_all(&folder).map_err(BackupError::io(&folder))?;
        folders.extend(
            folder
                .ancestors()
                .take_while(|ancestor| ancestor.starts_with(data_dir))
                .map(Path::to_path_buf),
        );
        let sha256 = copy_prefix(
            &under(from, &entry.path),
            &target,
            entry.hashed_bytes,
            entry.bytes,
            pace,
        )?;
        if sha256 != entry.sha256 {
            // Checked a moment ago: the backup changed under the restore.
            return Err(BackupError::Damaged {
                path: from.to_path_buf(),
                problems: 1,
                first: format!("{}: changed while it was restored", entry.path),
            });
        }
    }
    // Deepest first, so each directory's entry in its parent is synced after its own.
    let mut folders: Vec<PathBuf> = folders.into_iter().collect();
    folders.sort_by_key(|folder| std::cmp::Reverse(folder.components().count()));
    for folder in &folders {
        sync_dir(folder)?;
    }
    staging.commit()?;
    Ok(manifest)
}
