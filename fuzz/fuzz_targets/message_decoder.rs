//! A frame body decoded as each message type, every operation's request among them: never a
//! panic; a request is refused for a bad value only once its schema decoded whole (so its id
//! is known), and the serde path agrees with the server's; whatever decodes encodes to bytes
//! that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};
use spine_net::protocol::message::{self, Goodbye, RequestError, WireRequest, WireResponse};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: &T) {
    let bytes = message::encode(message);
    let again: T = message::decode("again", &bytes).expect("an encoded message decodes");
    assert_eq!(&again, message);
}

fuzz_target!(|body: &[u8]| {
    let by_serde = message::decode::<WireRequest>("request", body);
    match message::decode_request(body) {
        Ok(request) => {
            assert_eq!(by_serde.as_ref(), Ok(&request), "both paths decode alike");
            assert_eq!(message::decode_request(&message::encode(&request)), Ok(request.clone()));
            round_trips(&request);
        }
        Err(RequestError::Invalid { field, .. }) => {
            assert!(by_serde.is_err(), "serde accepted what the server refused: {field}");
            assert!(!field.path.is_empty(), "a refusal names where: {field}");
        }
        Err(RequestError::Malformed(_)) => assert!(by_serde.is_err()),
    }
    if let Ok(response) = message::decode::<WireResponse>("response", body) {
        round_trips(&response);
    }
    if let Ok(goodbye) = message::decode::<Goodbye>("goodbye", body) {
        round_trips(&goodbye);
    }
});
