//! One connection's server side, for the bytes it receives (sans-IO): frames become requests
//! to execute, answers the session gives itself (a limit reached), or a goodbye that closes the
//! connection (bytes that are not this protocol). The transports feed it and act on what it
//! says; tests drive it directly.

use super::frame::{FrameDecoder, FrameError, FrameKind};
use super::message::{self, Goodbye, RequestError, WireRequest, WireResponse};
use spine_domain::request::{ErrorCode, Refusal};

/// What a session allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest frame, in bytes after the length field.
    pub frame_bytes_max: u32,
    /// Requests in flight on the connection at once; one more is answered `TOO_MANY_STREAMS`.
    pub in_flight_max: usize,
}

impl Default for SessionLimits {
    /// The server's defaults (`net/PROTOCOL.md` section 4): 1 MiB frames, 1,024 requests in
    /// flight. A client sizes its QUIC windows and streams by them.
    fn default() -> Self {
        Self {
            frame_bytes_max: 1 << 20,
            in_flight_max: 1_024,
        }
    }
}

/// What the transport must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Execute this request and send its response (then call [`ServerSession::answered`]).
    Request(WireRequest),
    /// Send this response; nothing is executed.
    Respond(WireResponse),
    /// Send this goodbye and close the connection.
    Close(Goodbye),
}

/// The server side of one connection.
#[derive(Debug)]
pub struct ServerSession {
    decoder: FrameDecoder,
    limits: SessionLimits,
    in_flight: usize,
    closed: bool,
}

impl ServerSession {
    /// A new connection's session.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            decoder: FrameDecoder::new(limits.frame_bytes_max),
            limits,
            in_flight: 0,
            closed: false,
        }
    }

    /// Takes bytes received from the client.
    pub fn received(&mut self, bytes: &[u8]) {
        self.decoder.extend(bytes);
    }

    /// The decoder's buffer, to read into directly.
    pub fn receive_buffer(&mut self) -> &mut bytes::BytesMut {
        self.decoder.buffer_mut()
    }

    /// Bytes received that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// Requests being executed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A request's response was sent.
    pub fn answered(&mut self) {
        assert!(self.in_flight > 0, "an answer for a request not in flight");
        self.in_flight -= 1;
    }

    /// The next thing to do, `None` until more bytes arrive. After a `Close`, always `None`.
    pub fn next_event(&mut self) -> Option<SessionEvent> {
        if self.closed {
            return None;
        }
        let frame = match self.decoder.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(error) => return Some(self.close(frame_error_code(&error), error.to_string())),
        };
        if frame.kind != FrameKind::Request {
            let message = format!("a client sends request frames, not {:?}", frame.kind);
            return Some(self.close(ErrorCode::MalformedRequest, message));
        }
        let request = match message::decode_request(&frame.body) {
            Ok(request) => request,
            // A well-formed request carrying a value its type refuses (a bad check digit, an
            // impossible date): answered on its own request, and the connection carries on.
            Err(RequestError::Invalid { id, field }) => {
                let refusal = Refusal::new(field.code, &field);
                return Some(SessionEvent::Respond(WireResponse::new(id, Err(refusal))));
            }
            // Not a request at all: the stream is not trusted.
            Err(RequestError::Malformed(error)) => {
                return Some(self.close(ErrorCode::MalformedRequest, error.to_string()));
            }
        };
        if self.in_flight >= self.limits.in_flight_max {
            let refusal = Refusal::new(
                ErrorCode::TooManyStreams,
                format!(
                    "{} requests are already in flight on this connection (the limit); wait \
                     for answers or open another connection",
                    self.in_flight
                ),
            );
            return Some(SessionEvent::Respond(WireResponse::new(
                request.id,
                Err(refusal),
            )));
        }
        self.in_flight += 1;
        Some(SessionEvent::Request(request))
    }

    fn close(&mut self, code: ErrorCode, message: String) -> SessionEvent {
        self.closed = true;
        SessionEvent::Close(Goodbye { code, message })
    }
}

fn frame_error_code(error: &FrameError) -> ErrorCode {
    match error {
        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        FrameError::TooShort(_) | FrameError::Version(_) | FrameError::Kind(_) => {
            ErrorCode::MalformedRequest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame;
    use bytes::BytesMut;
    use spine_domain::request::Operation;
    use uuid::Uuid;

    const LIMITS: SessionLimits = SessionLimits {
        frame_bytes_max: 4096,
        in_flight_max: 2,
    };

    fn request_frame(id: u128) -> BytesMut {
        let request = WireRequest {
            id: Uuid::from_u128(id),
            ..WireRequest::as_demo_gp(Operation::PdsRetrieve {
                nhs_number: "9000000009".parse().unwrap(),
            })
        };
        let mut out = BytesMut::new();
        frame::encode(FrameKind::Request, &message::encode(&request), &mut out);
        out
    }

    #[test]
    fn a_refused_value_is_answered_on_its_request_and_the_session_carries_on() {
        let mut session = ServerSession::new(LIMITS);
        let body = message::encode(&WireRequest {
            id: Uuid::from_u128(7),
            ..WireRequest::as_demo_gp(Operation::PdsRetrieve {
                nhs_number: "9000000009".parse().unwrap(),
            })
        });
        // 900 000 0009 with a wrong check digit: same length, one byte apart.
        let good = postcard::to_allocvec(&9_000_000_009u64).unwrap();
        let bad = postcard::to_allocvec(&9_000_000_008u64).unwrap();
        let at = body.windows(good.len()).position(|w| w == good).unwrap();
        let mut patched = body.clone();
        patched[at..at + good.len()].copy_from_slice(&bad);
        let mut frame = BytesMut::new();
        frame::encode(FrameKind::Request, &patched, &mut frame);
        session.received(&frame);
        session.received(&request_frame(8));
        match session.next_event() {
            Some(SessionEvent::Respond(response)) => {
                assert_eq!(response.id.as_u128(), 7);
                let refusal = response.into_response().unwrap_err();
                assert_eq!(refusal.code, ErrorCode::InvalidResourceId);
                assert!(refusal.message.starts_with("nhs_number: "), "{refusal:?}");
                assert!(
                    refusal.message.ends_with(" (at operation.nhs_number)"),
                    "{refusal:?}"
                );
            }
            other => panic!("expected an answer, got {other:?}"),
        }
        assert!(
            matches!(session.next_event(), Some(SessionEvent::Request(r)) if r.id.as_u128() == 8)
        );
        assert_eq!(session.in_flight(), 1, "the refused request took no slot");
    }

    #[test]
    fn requests_flow_until_the_in_flight_limit_then_are_refused_until_answered() {
        let mut session = ServerSession::new(LIMITS);
        for id in 1..=3 {
            session.received(&request_frame(id));
        }
        assert!(
            matches!(session.next_event(), Some(SessionEvent::Request(r)) if r.id.as_u128() == 1)
        );
        assert!(
            matches!(session.next_event(), Some(SessionEvent::Request(r)) if r.id.as_u128() == 2)
        );
        let Some(SessionEvent::Respond(refused)) = session.next_event() else {
            panic!("the third is over the limit");
        };
        assert_eq!(refused.id.as_u128(), 3);
        assert!(matches!(
            refused.into_response(),
            Err(Refusal {
                code: ErrorCode::TooManyStreams,
                ..
            })
        ));
        session.answered();
        session.received(&request_frame(4));
        assert!(
            matches!(session.next_event(), Some(SessionEvent::Request(r)) if r.id.as_u128() == 4)
        );
        assert_eq!(session.next_event(), None);
    }

    #[test]
    fn garbage_and_oversized_frames_close_the_connection_with_a_reason() {
        let mut session = ServerSession::new(LIMITS);
        session.received(&[0, 0, 0x20, 0]);
        let Some(SessionEvent::Close(goodbye)) = session.next_event() else {
            panic!("an oversized frame closes");
        };
        assert_eq!(goodbye.code, ErrorCode::FrameTooLarge);
        assert_eq!(session.next_event(), None, "nothing after a close");

        let mut session = ServerSession::new(LIMITS);
        let mut out = BytesMut::new();
        frame::encode(FrameKind::Request, b"\xff\xff\xff", &mut out);
        session.received(&out);
        let Some(SessionEvent::Close(goodbye)) = session.next_event() else {
            panic!("an unreadable request closes");
        };
        assert_eq!(goodbye.code, ErrorCode::MalformedRequest);
        assert!(
            goodbye.message.contains("malformed request"),
            "{}",
            goodbye.message
        );

        let mut session = ServerSession::new(LIMITS);
        let mut out = BytesMut::new();
        frame::encode(FrameKind::Response, b"", &mut out);
        session.received(&out);
        assert!(matches!(session.next_event(), Some(SessionEvent::Close(_))));
    }
}
