//! The messages of `spine/1` and their encoding (sans-IO): a request frame's body is a
//! [`WireRequest`], a response frame's a [`WireResponse`], a goodbye frame's a [`Goodbye`], all
//! in postcard (see `net/PROTOCOL.md` for the byte layout of every field). A request travels in
//! the schema of [`super::wire`]: [`decode_request`] decodes it whole, then checks its values.
//!
//! The connecting system is never named in a request: it is the system whose certificate the
//! connection presented.

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use spine_domain::access::{Caller, Justification};
use spine_domain::pds::values::OdsCode;
use spine_domain::request::{ErrorCode, Operation, Refusal, Reply, Request, Response};
use uuid::Uuid;

use super::frame::{self, FrameKind};
use super::wire;

/// A request as a client makes it and the server executes it, in the domain's types. It
/// travels as a [`wire::Request`] (its `Serialize` writes that; its `Deserialize` reads that and
/// checks it, losing which value was refused: the server uses [`decode_request`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "wire::Request<'static>")]
pub struct WireRequest {
    /// Chosen by the client, unique per intended effect: a retry reuses it and gets the first
    /// outcome. Responses on a connection are matched to requests by it.
    pub id: Uuid,
    /// The end user.
    pub user: Uuid,
    /// The role profile the user acts in.
    pub role_profile: String,
    /// The organisation the user acts for (must be the role profile's).
    pub organisation: OdsCode,
    /// Why access outside a legitimate relationship is justified, if it is.
    pub justification: Justification,
    /// Milliseconds the client will wait; 0 for the server's default. The server answers
    /// `DEADLINE_EXCEEDED` rather than later.
    pub deadline_ms: u32,
    /// What to do.
    pub operation: Operation,
}

impl Serialize for WireRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::Request::from(self).serialize(serializer)
    }
}

impl WireRequest {
    /// The engine's request, made by the system `asid` the connection authenticated.
    pub fn into_request(self, asid: u64) -> Request {
        Request {
            id: self.id,
            caller: Caller {
                user: self.user,
                role_profile: self.role_profile,
                organisation: Some(self.organisation),
                asid,
            },
            justification: self.justification,
            operation: self.operation,
        }
    }
}

impl WireRequest {
    /// A request of `operation` by a demo user (see `spine_domain::access::directory_file`) in
    /// their role profile, with a fresh id, no justification and the default deadline; `None`
    /// for a user the demo directory does not hold.
    pub fn as_demo_user(user: Uuid, operation: Operation) -> Option<Self> {
        // Built once: requests are made in hot loops.
        static DEMO: std::sync::OnceLock<spine_domain::access::Directory> =
            std::sync::OnceLock::new();
        let directory = DEMO.get_or_init(spine_domain::access::directory_file::demo);
        let profile = directory.user(user)?.role_profiles.first()?.clone();
        Some(Self {
            id: Uuid::new_v4(),
            user,
            role_profile: profile.id,
            organisation: profile.organisation,
            justification: Justification::None,
            deadline_ms: 0,
            operation,
        })
    }

    /// A request of `operation` by the demo GP (every PDS activity, at Y90001).
    pub fn as_demo_gp(operation: Operation) -> Self {
        Self::as_demo_user(
            spine_domain::access::directory_file::demo_ids::GP,
            operation,
        )
        .expect("the demo directory holds the GP")
    }
}

/// How a request ended, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireOutcome {
    /// Done: the reply.
    Ok(Reply),
    /// Refused: the code and the reason.
    Refused {
        /// The specific error code.
        code: ErrorCode,
        /// What exactly was wrong.
        message: String,
    },
}

/// A response as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireResponse {
    /// The request's id.
    pub id: Uuid,
    /// How it ended.
    pub outcome: WireOutcome,
}

impl WireResponse {
    /// The response to request `id`.
    pub fn new(id: Uuid, response: Response) -> Self {
        let outcome = match response {
            Ok(reply) => WireOutcome::Ok(reply),
            Err(Refusal { code, message }) => WireOutcome::Refused { code, message },
        };
        Self { id, outcome }
    }

    /// The engine's view of the outcome.
    pub fn into_response(self) -> Response {
        match self.outcome {
            WireOutcome::Ok(reply) => Ok(reply),
            WireOutcome::Refused { code, message } => Err(Refusal { code, message }),
        }
    }
}

/// Why the server closes a connection: sent once, then the connection ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goodbye {
    /// The specific error code.
    pub code: ErrorCode,
    /// What exactly was wrong.
    pub message: String,
}

/// Why a body is not the message it should be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct MessageError {
    /// Which message.
    pub what: &'static str,
    /// What postcard found.
    pub reason: String,
}

/// The body of a message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_allocvec(message).expect("postcard writes to a Vec without failing")
}

/// Appends the frame of `kind` carrying `message` to `out`, the body encoded in place (what
/// [`frame::encode`] of [`encode`] gives, without the body's own buffer).
pub fn encode_frame<T: Serialize>(kind: FrameKind, message: &T, out: &mut BytesMut) {
    frame::encode_in_place(kind, out, |body| {
        postcard::serialize_with_flavor::<T, _, ()>(message, AppendTo(body))
            .expect("postcard writes to a BytesMut without failing");
    });
}

/// The frame of a goodbye: `code` and `message`, the server's last word on a connection (or,
/// over QUIC, on a stream).
pub fn goodbye_frame(code: ErrorCode, message: impl Into<String>) -> BytesMut {
    let goodbye = Goodbye {
        code,
        message: message.into(),
    };
    let mut out = BytesMut::new();
    encode_frame(FrameKind::Goodbye, &goodbye, &mut out);
    out
}

/// A postcard output appending to a `BytesMut`, with `extend_from_slice` throughout: through
/// `BufMut`'s `put_u8` and `put_slice`, framing in place was slower than copying a body (227 ns
/// against 154 ns per retrieval response in `codec_costs`; 103 ns as it is).
struct AppendTo<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.extend_from_slice(&[data]);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Why a request body is not a request the server can execute.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a request of this schema at all: the connection (or QUIC stream) is closed.
    #[error(transparent)]
    Malformed(#[from] MessageError),
    /// A well-formed request with a value its domain type refuses: answered on its own id.
    #[error("request {id}: {field}")]
    Invalid {
        /// The request's id.
        id: Uuid,
        /// The first value refused, and where.
        field: wire::InvalidField,
    },
}

/// A request from a body: decoded whole in the wire schema, then converted into the domain's
/// types, each value checked.
pub fn decode_request(body: &[u8]) -> Result<WireRequest, RequestError> {
    let raw: wire::Request<'_> = decode("request", body)?;
    let id = raw.id;
    raw.into_domain()
        .map_err(|field| RequestError::Invalid { id, field })
}

/// A message from a body: all of it, nothing after.
pub fn decode<'a, T: Deserialize<'a>>(
    what: &'static str,
    body: &'a [u8],
) -> Result<T, MessageError> {
    let error = |reason: String| MessageError { what, reason };
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|failure| error(failure.to_string()))?;
    if !rest.is_empty() {
        return Err(error(format!("{} bytes after the message", rest.len())));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spine_domain::access::directory_file::demo_ids;

    fn retrieve() -> WireRequest {
        WireRequest {
            id: Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            user: demo_ids::GP,
            role_profile: "gp-riverside".into(),
            organisation: "Y90001".parse().unwrap(),
            justification: Justification::None,
            deadline_ms: 0,
            operation: Operation::PdsRetrieve {
                nhs_number: "9000000009".parse().unwrap(),
            },
        }
    }

    /// `message`'s frame encoded in place is the frame of its body, after whatever the buffer
    /// already held.
    fn assert_framed_in_place<T: Serialize>(kind: FrameKind, message: &T) {
        let mut expected = BytesMut::from(&b"earlier frames"[..]);
        frame::encode(kind, &encode(message), &mut expected);
        let mut out = BytesMut::from(&b"earlier frames"[..]);
        encode_frame(kind, message, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn requests_and_responses_framed_in_place_are_framed_as_their_bodies() {
        assert_framed_in_place(FrameKind::Request, &retrieve());
        let patient = spine_domain::pds::synthetic::patient_at(7, 3, "9000000009".parse().unwrap());
        let response = WireResponse::new(Uuid::from_u128(7), Ok(Reply::Patient(patient)));
        assert_framed_in_place(FrameKind::Response, &response);
    }

    /// The bytes `net/PROTOCOL.md` gives as its example: the layout is a promise to other
    /// languages, so a change to it must be deliberate (and a new protocol version).
    #[test]
    fn a_retrieve_request_has_the_documented_bytes() {
        let bytes = encode(&retrieve());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "100102030405060708090a0b0c0d0e0f10\
             105350494e450000000000000000000001\
             0c67702d7269766572736964650659393030303100\
             00\
             02\
             89b4c4c321"
        );
        assert_eq!(
            decode::<WireRequest>("request", &bytes).unwrap(),
            retrieve()
        );
    }

    /// The error codes' indices are in `net/PROTOCOL.md`'s table: clients in other languages
    /// rely on them.
    #[test]
    fn chunk_bytes_are_a_length_and_the_bytes_as_documented() {
        // `Vec<u8>` in PROTOCOL.md: a varint length, then one byte each. The chunk's bytes are
        // encoded as a byte string, which must come out the same.
        let transfer = spine_domain::gp2gp::TransferId::new(5).unwrap();
        let upload = Operation::Gp2gpSendChunk {
            transfer,
            index: 1,
            bytes: vec![7, 8, 9],
        };
        assert_eq!(encode(&upload), [23, 5, 1, 3, 7, 8, 9]);
        let download = Reply::Chunk {
            index: 2,
            bytes: vec![0xFF; 200],
        };
        let mut expected = vec![12, 2, 0xC8, 0x01];
        expected.extend([0xFF; 200]);
        assert_eq!(encode(&download), expected);
        assert_eq!(decode::<Reply>("reply", &expected).unwrap(), download);
    }

    #[test]
    fn error_codes_have_their_documented_indices_and_names() {
        use ErrorCode::*;
        let table = [
            (AccessDenied, "ACCESS_DENIED"),
            (ResourceNotFound, "RESOURCE_NOT_FOUND"),
            (ResourceVersionMismatch, "RESOURCE_VERSION_MISMATCH"),
            (ForbiddenUpdate, "FORBIDDEN_UPDATE"),
            (InvalidValue, "INVALID_VALUE"),
            (InvalidSearchData, "INVALID_SEARCH_DATA"),
            (TooManyMatches, "TOO_MANY_MATCHES"),
            (SingleMatch, "SINGLE_MATCH"),
            (MultipleMatches, "MULTIPLE_MATCHES"),
            (RequestIdReused, "REQUEST_ID_REUSED"),
            (ServiceUnavailable, "SERVICE_UNAVAILABLE"),
            (MalformedRequest, "MALFORMED_REQUEST"),
            (FrameTooLarge, "FRAME_TOO_LARGE"),
            (TooManyStreams, "TOO_MANY_STREAMS"),
            (RateLimited, "RATE_LIMITED"),
            (DeadlineExceeded, "DEADLINE_EXCEEDED"),
            (NoPatientConsent, "NO_PATIENT_CONSENT"),
            (PrescriptionNotFound, "PRESCRIPTION_NOT_FOUND"),
            (
                PrescriptionInvalidStateTransition,
                "PRESCRIPTION_INVALID_STATE_TRANSITION",
            ),
            (
                PrescriptionWithAnotherDispenser,
                "PRESCRIPTION_WITH_ANOTHER_DISPENSER",
            ),
            (ItemNotFound, "ITEM_NOT_FOUND"),
            (ReferenceNotFound, "REFERENCE_NOT_FOUND"),
            (InvalidRequestState, "INVALID_REQUEST_STATE"),
            (SlotNotAvailable, "SLOT_NOT_AVAILABLE"),
            (InappropriateSlot, "INAPPROPRIATE_SLOT"),
            (SlotsCurrentlyAvailable, "SLOTS_CURRENTLY_AVAILABLE"),
            (ServiceNotOnShortlist, "SERVICE_NOT_ON_SHORTLIST"),
            (ChunkConflict, "CHUNK_CONFLICT"),
            (DocumentIncomplete, "DOCUMENT_INCOMPLETE"),
            (DocumentHashMismatch, "DOCUMENT_HASH_MISMATCH"),
            (WritesStopped, "WRITES_STOPPED"),
            (InvalidResourceId, "INVALID_RESOURCE_ID"),
        ];
        assert_eq!(
            table.len(),
            ErrorCode::ALL.len(),
            "every code is pinned here"
        );
        let document = include_str!("../../PROTOCOL.md");
        for (index, (code, name)) in table.into_iter().enumerate() {
            assert_eq!(encode(&code), vec![index as u8], "{name}");
            assert_eq!(code.as_str(), name);
            assert!(
                document.contains(&format!("| {index} | {name} |")),
                "PROTOCOL.md lists {name} as {index}"
            );
        }
    }

    #[test]
    fn trailing_or_missing_bytes_are_refused() {
        let mut bytes = encode(&retrieve());
        bytes.push(0);
        let error = decode::<WireRequest>("request", &bytes).unwrap_err();
        assert!(error.to_string().contains("1 bytes after"), "{error}");
        let error = decode::<WireRequest>("request", &bytes[..10]).unwrap_err();
        assert!(
            error.to_string().starts_with("malformed request"),
            "{error}"
        );
    }
}
