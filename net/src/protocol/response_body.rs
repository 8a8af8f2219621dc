//! A response's body, decoded only as far as its reader needs.
//!
//! A client matches a response to its request by id, and many callers only need to know
//! whether the request was done or refused (a load generator counting retrievals, say). The
//! reply itself (a patient, a page of search matches) is most of the bytes and most of the
//! decoding, so it is decoded only when asked for: [`ResponseBody::decode`]. The id and the
//! outcome come from the message's head, which postcard writes first: the request id, then the
//! outcome's variant index as a varint.

use bytes::Bytes;
use serde::Deserialize;
use spine_domain::request::{Refusal, Response};
use uuid::Uuid;

use super::message::{self, MessageError, WireResponse};

/// The variant index postcard gives [`super::message::WireOutcome::Ok`] (its first variant).
const OUTCOME_OK: u32 = 0;

/// The first fields of a [`WireResponse`], as postcard writes them.
#[derive(Deserialize)]
struct Head {
    id: Uuid,
    outcome: u32,
}

/// The body of a response frame, not yet decoded past its head.
#[derive(Clone, Debug)]
pub struct ResponseBody {
    bytes: Bytes,
    id: Uuid,
    /// The outcome's variant index.
    outcome: u32,
}

impl ResponseBody {
    /// Reads the head of `bytes`; the rest is checked when decoded.
    pub fn new(bytes: Bytes) -> Result<Self, MessageError> {
        let (head, _rest) =
            postcard::take_from_bytes::<Head>(&bytes).map_err(|failure| MessageError {
                what: "response",
                reason: failure.to_string(),
            })?;
        Ok(Self {
            bytes,
            id: head.id,
            outcome: head.outcome,
        })
    }

    /// The id of the request answered.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The whole response.
    pub fn decode(&self) -> Result<Response, MessageError> {
        message::decode::<WireResponse>("response", &self.bytes).map(WireResponse::into_response)
    }

    /// Whether the request was done, without decoding the reply; a refusal is decoded whole.
    pub fn outcome(&self) -> Result<Result<(), Refusal>, MessageError> {
        if self.outcome == OUTCOME_OK {
            return Ok(Ok(()));
        }
        self.decode().map(|response| response.map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spine_domain::request::{ConnectionRoute, ErrorCode, Reply};

    fn body_of(response: Response) -> (Uuid, ResponseBody) {
        let id = Uuid::new_v4();
        let bytes = message::encode(&WireResponse::new(id, response));
        (id, ResponseBody::new(Bytes::from(bytes)).expect("a head"))
    }

    #[test]
    fn a_done_response_is_read_from_its_head() {
        let reply = Reply::Route(ConnectionRoute {
            shards: 2,
            local_shard: 1,
        });
        let (id, body) = body_of(Ok(reply.clone()));
        assert_eq!(body.id(), id);
        assert_eq!(body.outcome(), Ok(Ok(())));
        assert_eq!(body.decode(), Ok(Ok(reply)));
    }

    #[test]
    fn a_refusal_keeps_its_code_and_message() {
        let refusal = Refusal::new(ErrorCode::ResourceNotFound, "no patient 9000000009");
        let (id, body) = body_of(Err(refusal.clone()));
        assert_eq!(body.id(), id);
        assert_eq!(body.outcome(), Ok(Err(refusal.clone())));
        assert_eq!(body.decode(), Ok(Err(refusal)));
    }

    #[test]
    fn a_body_too_short_for_its_head_is_refused_and_a_damaged_reply_when_decoded() {
        assert!(ResponseBody::new(Bytes::from_static(&[16, 1, 2])).is_err());
        let (_, body) = body_of(Err(Refusal::new(ErrorCode::AccessDenied, "no")));
        let mut damaged = body.bytes.to_vec();
        damaged.push(0);
        let damaged = ResponseBody::new(Bytes::from(damaged)).expect("the head is intact");
        assert!(damaged.decode().is_err(), "bytes after the message");
    }
}
