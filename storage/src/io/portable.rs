//! The portable backend: `pwrite` then `fdatasync`, available everywhere.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::{BackendKind, IoBackend};

/// `pwrite` + `fdatasync`.
pub(crate) struct PortableBackend;

impl IoBackend for PortableBackend {
    fn write_durable(&mut self, file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
        file.write_all_at(buf, offset)?;
        file.sync_data()
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Portable
    }
}
