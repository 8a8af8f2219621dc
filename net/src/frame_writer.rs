//! Writing queued frames to a TLS stream: every frame waiting is gathered into one write, so a
//! burst of answers costs one TLS record and one system call instead of one each.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes gathered into one write, at most (a little over: a frame is never split).
const GATHER_BYTES_MAX: usize = 64 * 1024;

/// Writes the frames `queue` yields until every sender is gone, then shuts the stream down.
pub(crate) async fn write_frames(
    writer: &mut (impl AsyncWrite + Unpin),
    queue: &mut mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    let mut gathered = BytesMut::with_capacity(GATHER_BYTES_MAX);
    while let Some(first) = queue.recv().await {
        gathered.extend_from_slice(&first);
        while gathered.len() < GATHER_BYTES_MAX {
            match queue.try_recv() {
                Ok(more) => gathered.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        writer.write_all(&gathered).await?;
        writer.flush().await?;
        gathered.clear();
    }
    writer.shutdown().await
}
