//! A connection's server side fed arbitrary bytes: never a panic, nothing after a close, and
//! never more requests in flight than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spine_net::protocol::session::{ServerSession, SessionEvent, SessionLimits};

fuzz_target!(|data: &[u8]| {
    let limits = SessionLimits {
        frame_bytes_max: 64 * 1024,
        in_flight_max: 4,
    };
    let mut session = ServerSession::new(limits);
    for chunk in data.chunks(7) {
        session.received(chunk);
        while let Some(event) = session.next_event() {
            assert!(session.in_flight() <= limits.in_flight_max);
            match event {
                SessionEvent::Request(_) => {
                    // Answer every other request at once, leave the rest in flight.
                    if session.in_flight() % 2 == 0 {
                        session.answered();
                    }
                }
                SessionEvent::Respond(_) => {}
                SessionEvent::Close(_) => {
                    assert!(session.next_event().is_none());
                    return;
                }
            }
        }
    }
});
