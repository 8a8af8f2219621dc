//! CPU costs of encoding and decoding that every request pays somewhere:
//! - a patient record encoded (every write, every retrieval's response);
//! - a client reading a retrieval's response whole (the patient) against reading only its head
//!   (the request id and whether it was done), which is all a caller counting outcomes needs;
//! - a retrieval's response framed for the wire: its body encoded into a buffer of its own and
//!   then copied into the frame, against encoded in place in the connection's output buffer;
//! - an NHS number's check digit (validated in every patient record decoded) computed from the
//!   nine digits as text against on the integer;
//! - a request decoded from its body into the domain's types, as the server does, and encoded
//!   by a client: a retrieval (the national mix's commonest) and a create (a whole record).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use spine_core::NhsNumber;
use spine_core::pds::nhs_number::{check_value, check_value_of_stem};
use spine_core::pds::synthetic::{nhs_numbers, patient_at};
use spine_core::request::Operation;
use spine_core::request::Reply;
use spine_net::protocol::frame::{self, FrameKind};
use spine_net::protocol::message::{self, WireRequest, WireResponse};
use spine_net::protocol::response_body::ResponseBody;
use uuid::Uuid;

fn a_patient_number() -> NhsNumber {
    nhs_numbers().nth(1234).expect("the population has numbers")
}

fn response_decode(c: &mut Criterion) {
    let patient = patient_at(7, 1234, a_patient_number());
    let bytes = Bytes::from(message::encode(&WireResponse::new(
        Uuid::new_v4(),
        Ok(Reply::Patient(patient.clone())),
    )));
    // Pair check: both readings agree on what was sent.
    let body = ResponseBody::new(bytes.clone()).expect("a head");
    assert_eq!(body.decode(), Ok(Ok(Reply::Patient(patient))));
    assert_eq!(body.outcome(), Ok(Ok(())));

    let mut group = c.benchmark_group("retrieval_response");
    group.bench_function("whole", |b| {
        b.iter(|| {
            message::decode::<WireResponse>("response", black_box(&bytes))
                .map(WireResponse::into_response)
        })
    });
    group.bench_function("head_only", |b| {
        b.iter(|| ResponseBody::new(black_box(bytes.clone())).and_then(|body| body.outcome()))
    });
    group.finish();
}

fn patient_encode(c: &mut Criterion) {
    let patient = patient_at(7, 1234, a_patient_number());
    let bytes = spine_core::shard::records::patient::encode(&patient);
    assert_eq!(
        spine_core::shard::records::patient::decode(&bytes),
        Ok(patient.clone())
    );
    c.bench_function("patient_record/encode", |b| {
        b.iter(|| spine_core::shard::records::patient::encode(black_box(&patient)))
    });
}

fn response_frame(c: &mut Criterion) {
    let patient = patient_at(7, 1234, a_patient_number());
    let response = WireResponse::new(Uuid::new_v4(), Ok(Reply::Patient(patient)));
    // The connection's output buffer, reused from answer to answer as the server does.
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut group = c.benchmark_group("retrieval_response_frame");
    group.bench_function("body_then_frame", |b| {
        b.iter(|| {
            out.clear();
            frame::encode(
                FrameKind::Response,
                &message::encode(black_box(&response)),
                &mut out,
            );
        })
    });
    group.bench_function("in_place", |b| {
        b.iter(|| {
            out.clear();
            message::encode_frame(FrameKind::Response, black_box(&response), &mut out);
        })
    });
    group.finish();
}

fn check_digit(c: &mut Criterion) {
    let stem = a_patient_number().value() / 10;
    assert_eq!(
        check_value(&format!("{stem:09}")),
        Some(check_value_of_stem(stem))
    );
    let mut group = c.benchmark_group("nhs_number_check_digit");
    group.bench_function("as_text", |b| {
        b.iter(|| check_value(&format!("{:09}", black_box(stem))))
    });
    group.bench_function("on_the_integer", |b| {
        b.iter(|| check_value_of_stem(black_box(stem)))
    });
    group.finish();
}

fn request_codec(c: &mut Criterion) {
    let number = a_patient_number();
    let requests = [
        (
            "retrieve",
            WireRequest::as_demo_gp(Operation::PdsRetrieve { nhs_number: number }),
        ),
        (
            "create",
            WireRequest::as_demo_gp(Operation::PdsCreate {
                patient: patient_at(7, 1234, number),
            }),
        ),
    ];
    let mut group = c.benchmark_group("request");
    for (name, request) in requests {
        let body = message::encode(&request);
        // Pair check: what a client encodes, the server decodes to the same request.
        assert_eq!(
            message::decode::<WireRequest>("request", &body),
            Ok(request.clone())
        );
        group.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| message::decode::<WireRequest>("request", black_box(&body)))
        });
        group.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| message::encode(black_box(&request)))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    response_decode,
    patient_encode,
    response_frame,
    check_digit,
    request_codec
);
criterion_main!(benches);
