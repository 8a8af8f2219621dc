//! Framing (sans-IO): every message travels as one frame,
//! `length u32 (big-endian) | version u8 | kind u8 | body`, where `length` counts the bytes
//! after itself. [`FrameDecoder`] takes bytes as they arrive and yields whole frames, refusing
//! one whose length is over the limit before reading it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version this code speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes before a frame's body: length, version, kind.
pub const FRAME_HEADER_BYTES: usize = 6;
/// Room to start a one-message frame buffer with: most requests and responses fit, a larger
/// one grows it.
pub const FRAME_BYTES_TYPICAL: usize = 512;
/// The smallest value of the length field: version and kind.
const LENGTH_MIN: u32 = 2;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A request, client to server.
    Request,
    /// A response, server to client.
    Response,
    /// The server's last word before closing a connection it cannot go on with.
    Goodbye,
}

impl FrameKind {
    /// The kind's byte.
    pub fn code(self) -> u8 {
        match self {
            FrameKind::Request => 1,
            FrameKind::Response => 2,
            FrameKind::Goodbye => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        [FrameKind::Request, FrameKind::Response, FrameKind::Goodbye]
            .into_iter()
            .find(|kind| kind.code() == code)
    }
}

/// One whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// The body.
    pub body: Bytes,
}

/// Why the bytes on a connection are not frames; the connection cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame's length is over the limit.
    #[error("frame of {length} bytes is larger than the limit of {max}")]
    TooLarge {
        /// The length announced.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// A frame too short to hold its version and kind.
    #[error("frame of {0} bytes is too short to be a frame")]
    TooShort(u32),
    /// A version this server does not speak.
    #[error("protocol version {0} is not supported (this server speaks 1)")]
    Version(u8),
    /// An unknown kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
}

/// Appends a frame of `kind` with `body` to `out`.
pub fn encode(kind: FrameKind, body: &[u8], out: &mut BytesMut) {
    out.reserve(FRAME_HEADER_BYTES + body.len());
    encode_in_place(kind, out, |out| out.put_slice(body));
}

/// Appends a frame of `kind` whose body `write_body` appends to `out`: the body is written in
/// place, with no buffer of its own to allocate, grow and copy.
pub fn encode_in_place(
    kind: FrameKind,
    out: &mut BytesMut,
    write_body: impl FnOnce(&mut BytesMut),
) {
    let start = out.len();
    out.put_u32(0); // the length, known once the body is written
    out.put_u8(PROTOCOL_VERSION);
    out.put_u8(kind.code());
    write_body(out);
    let body = out.len() - start - FRAME_HEADER_BYTES;
    let length = u32::try_from(body + 2).expect("bodies are bounded far below 4 GiB");
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

/// Splits arriving bytes into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    /// Largest length field accepted.
    max: u32,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `frame_bytes_max` bytes after the length field.
    pub fn new(frame_bytes_max: u32) -> Self {
        Self {
            buffer: BytesMut::new(),
            max: frame_bytes_max.max(LENGTH_MIN),
        }
    }

    /// Takes bytes received.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The buffer to read into directly (see [`FrameDecoder::extend`]).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// Bytes received but not yet part of a whole frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. An error is final: the
    /// stream is out of step and the connection must close.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes(self.buffer[..4].try_into().expect("four bytes"));
        if length > self.max {
            return Err(FrameError::TooLarge {
                length,
                max: self.max,
            });
        }
        if length < LENGTH_MIN {
            return Err(FrameError::TooShort(length));
        }
        if self.buffer.len() < 4 + length as usize {
            // Room for the rest, now that the length is known to be acceptable.
            self.buffer.reserve(4 + length as usize - self.buffer.len());
            return Ok(None);
        }
        let version = self.buffer[4];
        if version != PROTOCOL_VERSION {
            return Err(FrameError::Version(version));
        }
        let kind = FrameKind::from_code(self.buffer[5]).ok_or(FrameError::Kind(self.buffer[5]))?;
        self.buffer.advance(FRAME_HEADER_BYTES);
        let body = self
            .buffer
            .split_to(length as usize - LENGTH_MIN as usize)
            .freeze();
        Ok(Some(Frame { kind, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(kind: FrameKind, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(kind, body, &mut out);
        out.to_vec()
    }

    #[test]
    fn a_frame_encoded_in_place_has_its_length_version_and_kind_before_its_body() {
        let mut out = BytesMut::from(&b"before"[..]);
        encode_in_place(FrameKind::Response, &mut out, |body| {
            body.put_slice(&[7; 300])
        });
        let mut expected = b"before".to_vec();
        expected.extend_from_slice(&[0, 0, 1, 46, PROTOCOL_VERSION, 2]); // 302 = body + 2
        expected.extend_from_slice(&[7; 300]);
        assert_eq!(out.as_ref(), expected.as_slice());
        assert_eq!(frame(FrameKind::Response, &[7; 300]), expected[6..]);
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let mut bytes = frame(FrameKind::Request, b"first");
        bytes.extend(frame(FrameKind::Response, b""));
        bytes.extend(frame(FrameKind::Goodbye, &[7; 300]));
        for chunk in [1, 2, 5, 7, 300, bytes.len()] {
            let mut decoder = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            for piece in bytes.chunks(chunk) {
                decoder.extend(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(frames.len(), 3, "chunks of {chunk}");
            assert_eq!(frames[0].body.as_ref(), b"first");
            assert_eq!(frames[1].kind, FrameKind::Response);
            assert_eq!(frames[2].body.len(), 300);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn bad_frames_get_specific_errors_before_their_body_is_read() {
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&[0, 0, 1, 0]);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge {
                length: 256,
                max: 100
            })
        );
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&[0, 0, 0, 1, 1]);
        assert_eq!(decoder.next_frame(), Err(FrameError::TooShort(1)));
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&[0, 0, 0, 2, 9, 1]);
        assert_eq!(decoder.next_frame(), Err(FrameError::Version(9)));
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&[0, 0, 0, 2, 1, 42]);
        assert_eq!(decoder.next_frame(), Err(FrameError::Kind(42)));
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&frame(FrameKind::Request, b"abc")[..7]);
        assert_eq!(decoder.next_frame(), Ok(None), "a truncated frame waits");
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_never_yields_an_oversized_frame(
            bytes in prop::collection::vec(any::<u8>(), 0..2048)
        ) {
            let mut decoder = FrameDecoder::new(512);
            decoder.extend(&bytes);
            while let Ok(Some(frame)) = decoder.next_frame() {
                prop_assert!(frame.body.len() <= 510);
            }
        }
    }
}
