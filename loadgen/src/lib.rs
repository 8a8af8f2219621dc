//! The load generator that reproduces national peak traffic. See `DESIGN.md` section 7; the
//! subject of issue 5, not written yet.
#![warn(missing_docs, unreachable_pub)]
