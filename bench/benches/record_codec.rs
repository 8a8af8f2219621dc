//! Encoding and verifying one record of 256 payload bytes: the CPU cost per record of the write
//! path (`encode`) and of reads and recovery's scan (`decode`, which checks the CRC32C).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spine_storage::Position;
use spine_storage::format::record_size;
use spine_storage::log::record::{self, RecordHeader};

const PAYLOAD_SIZE: usize = 256;

/// The log's default `payload_bytes_max` (1 MiB), which `decode` checks lengths against.
const PAYLOAD_BYTES_MAX: u32 = 1 << 20;

fn header() -> RecordHeader {
    RecordHeader {
        payload_len: PAYLOAD_SIZE as u32,
        position: Position {
            term: 1,
            index: 1_000_000,
        },
        key: 9_434_765_919,
        kind: 1,
        flags: 0,
        batch_offset: 17,
    }
}

fn record_codec(c: &mut Criterion) {
    let header = header();
    let payload: Vec<u8> = (0..PAYLOAD_SIZE).map(|i| i as u8).collect();
    let mut encoded = Vec::with_capacity(record_size(PAYLOAD_SIZE));
    record::encode(&mut encoded, &header, &payload);
    // Pair check: what is timed decodes back to what was encoded.
    assert_eq!(record::decode(&encoded, PAYLOAD_BYTES_MAX), Ok(header));
    assert_eq!(record::payload(&encoded, &header), payload.as_slice());

    let mut group = c.benchmark_group("record_codec");
    group.throughput(Throughput::Bytes(record_size(PAYLOAD_SIZE) as u64));
    let mut buf = Vec::with_capacity(record_size(PAYLOAD_SIZE));
    group.bench_function("encode_256", |b| {
        b.iter(|| {
            buf.clear();
            record::encode(&mut buf, black_box(&header), black_box(&payload));
            black_box(buf.len())
        })
    });
    group.bench_function("decode_256", |b| {
        b.iter(|| record::decode(black_box(&encoded), PAYLOAD_BYTES_MAX))
    });
    group.finish();
}

criterion_group!(benches, record_codec);
criterion_main!(benches);
