//! `net/PROTOCOL.md` is written for clients in other languages: what its text says must agree
//! with the bytes it shows.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use uuid::Uuid;

const PROTOCOL: &str = include_str!("../PROTOCOL.md");

/// The UUID written in backticks right after `before` in the example's text.
fn uuid_after(text: &str, before: &str) -> Uuid {
    let (_, rest) = text.split_once(before).unwrap();
    let rest = rest.trim_start().strip_prefix('`').unwrap();
    let (uuid, _) = rest.split_once('`').unwrap();
    uuid.parse().unwrap()
}

/// The 16 bytes of the example body's line that ends with `field`.
fn uuid_bytes(example: &str, field: &str) -> Uuid {
    let line = example
        .lines()
        .find(|line| line.split_whitespace().last() == Some(field))
        .unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("10"), "a Uuid's length prefix: {line}");
    // 16 bytes in RFC 4122 order: read as one big-endian number, as `Uuid::from_u128` takes it.
    let hex = words.next().unwrap();
    assert_eq!(hex.len(), 32, "16 bytes: {line}");
    Uuid::from_u128(u128::from_str_radix(hex, 16).unwrap())
}

#[test]
fn the_worked_example_names_the_uuids_its_bytes_carry() {
    let (_, example) = PROTOCOL.split_once("### Example").unwrap();
    let (text, rest) = example.split_once("```").unwrap();
    let (body, _) = rest.split_once("```").unwrap();
    assert_eq!(uuid_after(text, "with id"), uuid_bytes(body, "id"));
    assert_eq!(uuid_after(text, "by user"), uuid_bytes(body, "user"));
    assert_eq!(
        uuid_after(text, "by user"),
        spine_core::access::directory_file::demo_ids::GP,
        "the example's user is the demo GP"
    );
}
