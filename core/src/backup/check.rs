//! A backup's files against its manifest (as `pg_verifybackup` checks one): every file listed
//! is there, of its size, its hashed bytes hash as listed and the rest are zeros; no file is
//! there that the manifest does not list. Reads only.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::manifest::{FileEntry, MANIFEST_FILE_NAME, Manifest};
use super::{BackupError, CHUNK_BYTES, hex_digest, inside, under};

/// Every disagreement between the backup in `dir` and `manifest`, one line each.
pub fn check(dir: &Path, manifest: &Manifest) -> Result<Vec<String>, BackupError> {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for entry in &manifest.files {
        listed.insert(entry.path.clone());
        if let Err(problem) = check_file(dir, entry) {
            problems.push(format!("{}: {problem}", entry.path));
        }
    }
    let mut present = Vec::new();
    list_files(dir, "", &mut present)?;
    for path in present {
        if path != MANIFEST_FILE_NAME && !listed.contains(&path) {
            problems.push(format!("{path}: not in the manifest"));
        }
    }
    Ok(problems)
}

/// What is wrong with the file `entry` names, if anything.
fn check_file(dir: &Path, entry: &FileEntry) -> Result<(), String> {
    let path = under(dir, &entry.path);
    let mut file = File::open(&path).map_err(|error| error.to_string())?;
    let bytes = file.metadata().map_err(|error| error.to_string())?.len();
    if bytes != entry.bytes {
        return Err(format!("{bytes} bytes, the manifest says {}", entry.bytes));
    }
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut offset = 0u64;
    let mut nonzero_at = None;
    loop {
        let read = file.read(&mut chunk).map_err(|error| error.to_string())?;
        if read == 0 {
            break;
        }
        let hashed = (entry.hashed_bytes.saturating_sub(offset) as usize).min(read);
        hasher.update(&chunk[..hashed]);
        if nonzero_at.is_none()
            && let Some(at) = chunk[hashed..read].iter().position(|&byte| byte != 0)
        {
            nonzero_at = Some(offset + (hashed + at) as u64);
        }
        offset += read as u64;
    }
    if offset != bytes {
        return Err(format!("read {offset} bytes of {bytes}"));
    }
    if hex_digest(hasher) != entry.sha256 {
        return Err(format!(
            "the first {} bytes do not hash as the manifest says",
            entry.hashed_bytes
        ));
    }
    if let Some(at) = nonzero_at {
        return Err(format!(
            "byte {at} is not zero (past the {} bytes the manifest covers)",
            entry.hashed_bytes
        ));
    }
    Ok(())
}

/// Every file under `dir`'s folder `relative`, as manifest paths.
fn list_files(dir: &Path, relative: &str, found: &mut Vec<String>) -> Result<(), BackupError> {
    let folder = under(dir, relative);
    for entry in fs::read_dir(&folder).map_err(BackupError::io(&folder))? {
        let entry = entry.map_err(BackupError::io(&folder))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let inside = inside(relative, &name);
        if entry
            .file_type()
            .map_err(BackupError::io(&entry.path()))?
            .is_dir()
        {
            list_files(dir, &inside, found)?;
        } else {
            found.push(inside);
        }
    }
    Ok(())
}
