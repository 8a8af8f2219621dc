//! The storage engine's record and segment-header decoders on arbitrary bytes: never a panic,
//! and a record that verifies has a payload inside the bytes and under the maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spine_storage::log::record;

const PAYLOAD_MAX: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = record::decode(data, PAYLOAD_MAX) {
        assert!(header.payload_len <= PAYLOAD_MAX);
        let payload = record::payload(data, &header);
        assert_eq!(payload.len(), header.payload_len as usize);
    }
    let _ = record::decode_segment_header(data);
});
