//! Frames and messages from arbitrary bytes, fed in arbitrary pieces: never a panic, never a
//! frame over the limit, and every request that decodes encodes, in no more bytes (varints
//! shortest), to a body that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spine_net::protocol::frame::FrameDecoder;
use spine_net::protocol::message::{self, Goodbye, WireRequest, WireResponse};

const LIMIT: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let mut decoder = FrameDecoder::new(LIMIT);
    let piece = usize::from(split).max(1);
    for chunk in bytes.chunks(piece) {
        decoder.extend(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.body.len() + 2 <= LIMIT as usize);
                    if let Ok(request) = message::decode::<WireRequest>("request", &frame.body) {
                        // A varint may arrive padded (PROTOCOL.md); it is written shortest.
                        let encoded = message::encode(&request);
                        assert!(encoded.len() <= frame.body.len());
                        let again: WireRequest =
                            message::decode("again", &encoded).expect("an encoded request decodes");
                        assert_eq!(again, request);
                    }
                    let _ = message::decode::<WireResponse>("response", &frame.body);
                    let _ = message::decode::<Goodbye>("goodbye", &frame.body);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
