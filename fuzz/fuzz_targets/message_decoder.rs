//! A frame body decoded as each message type, every operation's request among them: never a
//! panic; a request refused for a bad value still has the id its refusal is answered on; and
//! whatever decodes encodes to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};
use spine_core::rejected_value::decoding;
use spine_net::protocol::message::{self, Goodbye, WireRequest, WireResponse};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: &T) {
    let bytes = message::encode(message);
    let again: T = message::decode("again", &bytes).expect("an encoded message decodes");
    assert_eq!(&again, message);
}

fuzz_target!(|body: &[u8]| {
    let (request, rejected) = decoding(|| message::decode::<WireRequest>("request", body));
    match request {
        Ok(request) => {
            assert!(rejected.is_none(), "a decoded request rejected a value");
            assert_eq!(message::request_id(body), Some(request.id));
            round_trips(&request);
        }
        // The id is the first field: a value after it can be refused only once it was read.
        Err(_) if rejected.is_some() => assert!(message::request_id(body).is_some()),
        Err(_) => {}
    }
    if let Ok(response) = message::decode::<WireResponse>("response", body) {
        round_trips(&response);
    }
    if let Ok(goodbye) = message::decode::<Goodbye>("goodbye", body) {
        round_trips(&goodbye);
    }
});
