//! Spine core's network layer: the `spine/1` protocol over QUIC and TLS, the client and the
//! `spine` binary. See `DESIGN.md` section 6; the subject of issue 4, not written yet.
#![warn(missing_docs, unreachable_pub)]
