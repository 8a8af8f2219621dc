//! Writing answers to a client that may not read them: a write that the client takes nothing
//! of for the frame timeout fails (`TimedOut`), and the transport drops the connection (or
//! resets the QUIC stream), so that a client that sends and never reads holds nothing for long.
//! Progress, not the whole write, is timed: a slow reader of a large answer is served.

use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes all of `bytes` and flushes; fails with `TimedOut` if the client takes none of the
/// bytes for `stall`. A write that can go at once arms no timer.
pub(crate) async fn write_all_progressing<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        // A pending write took no bytes (AsyncWrite), so it may be dropped and made again.
        let now = writer.write(&bytes[written..]).now_or_never();
        let wrote = match now {
            Some(wrote) => wrote?,
            None => tokio::time::timeout(stall, writer.write(&bytes[written..]))
                .await
                .map_err(|_| stalled(stall))??,
        };
        if wrote == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        written += wrote;
    }
    match writer.flush().now_or_never() {
        Some(flushed) => flushed,
        None => tokio::time::timeout(stall, writer.flush())
            .await
            .map_err(|_| stalled(stall))?,
    }
}

fn stalled(stall: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client read nothing for {} ms", stall.as_millis()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_reads_is_served_and_one_that_does_not_times_out() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (mut writer, mut reader) = tokio::io::duplex(64);
            let bytes = vec![7u8; 4096];
            let read = tokio::spawn(async move {
                let mut all = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut all)
                    .await
                    .map(|_| all)
            });
            write_all_progressing(&mut writer, &bytes, Duration::from_millis(500))
                .await
                .unwrap();
            drop(writer);
            assert_eq!(read.await.unwrap().unwrap(), bytes);

            let (mut writer, _reader) = tokio::io::duplex(64);
            let error = write_all_progressing(&mut writer, &bytes, Duration::from_millis(50))
                .await
                .unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        });
    }
}
