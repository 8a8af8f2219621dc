//! End to end: the real `spine serve` process on a free port, driven over TLS by the client and
//! by raw connections: PDS operations, restricted records, refused certificates, bad frames,
//! graceful shutdown, a SIGKILL under write load followed by a restart, the clinical services
//! over both transports, and a GP2GP transfer cut by SIGKILLs that completes byte-identical.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::pds::search::{DateRange, SearchQuery};
use spine_core::pds::synthetic::Population;
use spine_core::request::{ErrorCode, Operation, Reply, Response};
use spine_core::{NhsNumber, Patient};
use spine_net::client::{Client, ClientError, ClientIdentity, Transport, tls_client_config};
use spine_net::pki::{DEMO_CLIENT, KeyUsagePurpose, Pki};
use spine_net::protocol::frame::{FrameDecoder, FrameKind};
use spine_net::protocol::message::{self, Goodbye, WireRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use common::{Spine, connect, identity, load, patient, request, runtime};

type RawTls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A raw TLS connection with `config`.
async fn raw_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> RawTls {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .unwrap()
}

/// Opens a raw TLS connection with the demo certificate, sends `bytes`, returns the goodbye.
async fn raw_goodbye(addr: SocketAddr, identity: &ClientIdentity, bytes: &[u8]) -> Goodbye {
    let mut tls = raw_connect(addr, Arc::new(tls_client_config(identity).unwrap())).await;
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    loop {
        if let Some(frame) = decoder.next_frame().unwrap() {
            assert_eq!(frame.kind, FrameKind::Goodbye);
            return message::decode("goodbye", &frame.body).unwrap();
        }
        let read = tls.read_buf(decoder.buffer_mut()).await.unwrap();
        assert!(read > 0, "the server closed without a goodbye");
    }
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn the_server_serves_pds_over_tls_refuses_what_it_must_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        let mut people: Vec<Patient> = Population::new(9).take(3).collect();
        for person in &mut people {
            person.general_practitioner = Some("Y90001".parse().unwrap());
        }
        people[1].restricted = true;
        for person in &people {
            let loaded = load(&client, person).await;
            assert_eq!(loaded.nhs_number, person.nhs_number);
        }
        // Pipelined: many requests in flight on one connection, answered by id.
        let reads: Vec<_> = (0..64)
            .map(|i| {
                let client = client.clone();
                let nhs_number = people[i % 3].nhs_number;
                tokio::spawn(async move {
                    client
                        .call(request(Operation::PdsRetrieve { nhs_number }))
                        .await
                })
            })
            .collect();
        for (i, read) in reads.into_iter().enumerate() {
            let read = patient(read.await.unwrap().unwrap());
            assert_eq!(read.nhs_number, people[i % 3].nhs_number);
            if i % 3 == 1 {
                assert!(read.addresses.is_empty() && read.telecom.is_empty());
                assert!(
                    read.general_practitioner.is_none(),
                    "restricted: no location"
                );
            }
        }
        let mut new = Population::new(10).next().unwrap();
        new.general_practitioner = Some("Y90001".parse().unwrap());
        let created = patient(
            client
                .call(request(Operation::PdsCreate { patient: new }))
                .await
                .unwrap(),
        );
        let stale = client
            .call(request(Operation::PdsUpdate {
                patient: created.clone(),
                expected_version: 7,
            }))
            .await
            .unwrap();
        assert_eq!(stale.unwrap_err().code, ErrorCode::ResourceVersionMismatch);
        // An A&E doctor updates under emergency access; the GP records the death.
        let mut emergency = request(Operation::PdsUpdate {
            patient: created.clone(),
            expected_version: 1,
        });
        emergency.user = demo_ids::HOSPITAL_DOCTOR;
        emergency.role_profile = "ae-city-general".into();
        emergency.organisation = "Y9H01".parse().unwrap();
        emergency.justification = Justification::Emergency {
            reason: "unconscious in A&E".into(),
        };
        let updated = patient(client.call(emergency).await.unwrap());
        assert_eq!(updated.version, 2);
        let death = spine_core::pds::patient::Death {
            date: "2026-11-20".parse().unwrap(),
            time_s: None,
            notification: spine_core::pds::patient::DeathNotificationStatus::Informal,
        };
        let dead = patient(
            client
                .call(request(Operation::PdsDeathNotification {
                    nhs_number: created.nhs_number,
                    expected_version: 2,
                    death,
                }))
                .await
                .unwrap(),
        );
        assert_eq!(dead.deceased, Some(death));
        // The privacy officer sees who touched the record, and the alert.
        let officer = |operation| {
            let mut request = request(operation);
            request.user = demo_ids::PRIVACY_OFFICER;
            request.role_profile = "privacy-city-general".into();
            request.organisation = "Y9H01".parse().unwrap();
            request
        };
        let trail = client
            .call(officer(Operation::AuditTrail {
                nhs_number: created.nhs_number,
                limit: 50,
            }))
            .await
            .unwrap();
        let Ok(Reply::AuditEvents(trail)) = trail else {
            panic!("no trail: {trail:?}");
        };
        assert!(trail.len() >= 4, "create, stale update, emergency update, death: {trail:?}");
        let alerts = client
            .call(officer(Operation::PrivacyAlerts {
                organisation: "Y9H01".parse().unwrap(),
                limit: 10,
            }))
            .await
            .unwrap();
        let Ok(Reply::AuditEvents(alerts)) = alerts else {
            panic!("no alerts: {alerts:?}");
        };
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].reason.as_deref(), Some("unconscious in A&E"));
        let mut query = SearchQuery::new();
        query.family = Some(people[0].names[0].family.as_str().into());
        query.birth_date = people[0].birth_date.map(DateRange::on);
        let found = client
            .call(request(Operation::PdsSearch { query }))
            .await
            .unwrap();
        let Ok(Reply::Matches(found)) = found else {
            panic!("search failed: {found:?}");
        };
        assert!(
            found
                .iter()
                .any(|found| found.patient.nhs_number == people[0].nhs_number)
        );
        // The organisation a request names must be the role profile's.
        let mut elsewhere = request(Operation::PdsRetrieve {
            nhs_number: people[0].nhs_number,
        });
        elsewhere.organisation = "Y90002".parse().unwrap();
        let refused = client.call(elsewhere).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::AccessDenied);

        // A certificate the CA signed but no system holds: refused with a reason.
        let pki = Pki::at(dir.path());
        pki.issue_client("stranger").unwrap();
        let stranger = identity(dir.path(), "stranger");
        let refused = refused_connection(Transport::Tls, spine.addr, &stranger, people[0].nhs_number).await;
        let ClientError::Goodbye(goodbye) = refused else {
            panic!("expected a goodbye, got {refused}");
        };
        assert_eq!(goodbye.code, ErrorCode::AccessDenied);
        assert!(
            goodbye.message.contains("not registered"),
            "{}",
            goodbye.message
        );

        // A certificate from another CA: refused at the handshake.
        let other = tempfile::tempdir().unwrap();
        Pki::open_or_create(other.path(), &["localhost".into()]).unwrap();
        let foreign = identity(other.path(), DEMO_CLIENT);
        let foreign = ClientIdentity {
            ca: demo.ca.clone(),
            cert: foreign.cert,
        };
        let refused = refused_connection(Transport::Tls, spine.addr, &foreign, people[0].nhs_number).await;
        assert!(
            matches!(refused, ClientError::Connect(_) | ClientError::Lost(_)),
            "{refused}"
        );

        // Garbage, an oversized frame and a truncated request close only their connection.
        let goodbye = raw_goodbye(spine.addr, &demo, b"\x00\x00\x00\x05\x01\x01\xff\xff\xff").await;
        assert_eq!(goodbye.code, ErrorCode::MalformedRequest);
        let goodbye = raw_goodbye(spine.addr, &demo, b"\x7f\x00\x00\x00").await;
        assert_eq!(goodbye.code, ErrorCode::FrameTooLarge);
        let goodbye = raw_goodbye(spine.addr, &demo, b"\x00\x00\x00\x02\x09\x01").await;
        assert_eq!(goodbye.code, ErrorCode::MalformedRequest);
        assert!(goodbye.message.contains("version 9"), "{}", goodbye.message);
        let again = client
            .call(request(Operation::PdsRetrieve {
                nhs_number: people[0].nhs_number,
            }))
            .await
            .unwrap();
        assert_eq!(patient(again).nhs_number, people[0].nhs_number);

        // The metrics count what was done, by operation, transport and refusal.
        let metrics = scrape(spine.metrics).await;
        let retrieves = metric(&metrics, "spine_requests_total{transport=\"tls\",operation=\"pds_retrieve\"}");
        assert!(retrieves >= 64.0, "{retrieves} retrieves counted");
        let stale = metric(
            &metrics,
            "spine_refusals_total{transport=\"tls\",operation=\"pds_update\",code=\"RESOURCE_VERSION_MISMATCH\"}",
        );
        assert_eq!(stale, 1.0);
        assert!(metric(&metrics, "spine_log_batches_total{shard=\"0\"}") > 0.0);
        // Nothing sealed yet in a fresh directory: nothing compacted.
        assert_eq!(metric(&metrics, "spine_log_compactions_total{shard=\"1\"}"), 0.0);
        assert!(metrics.contains("spine_request_duration_seconds_bucket{transport=\"tls\",operation=\"pds_retrieve\",le=\"+Inf\"}"));

        // Graceful stop with requests in flight: every one answered, then exit 0.
        let in_flight: Vec<_> = retrieves_at_once(&client, people[0].nhs_number, 32);
        spine.signal("TERM");
        for call in in_flight {
            match call.await.unwrap() {
                Ok(response) => assert_eq!(patient(response).nhs_number, people[0].nhs_number),
                // Sent after the server stopped reading: the connection closes, unanswered.
                Err(ClientError::Lost(_)) => {}
                Err(other) => panic!("{other}"),
            }
        }
    });
    let status = spine.child.wait().unwrap();
    assert!(status.success(), "spine exited with {status}");

    // Offline tools on the stopped server's data directory.
    let tool = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_spine"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "spine {args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let verified = tool(&["verify"]);
    assert_eq!(verified.matches("audit chain of").count(), 2, "{verified}");
    let stats = tool(&["stats"]);
    assert!(stats.starts_with("shard  patients"), "{stats}");
    let issued = tool(&["cert", "issue", "--system", "pharmacy-1"]);
    assert!(
        issued.contains("system pharmacy-1: ASID 200000000002"),
        "{issued}"
    );
    let directory = std::fs::read_to_string(dir.path().join("access.json")).unwrap();
    assert!(directory.contains("pharmacy-1"));
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn acknowledged_writes_survive_a_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    let people: Vec<Patient> = Population::new(12)
        .take(8)
        .map(|mut person| {
            person.general_practitioner = Some("Y90001".parse().unwrap());
            person.restricted = false;
            person
        })
        .collect();
    let acknowledged: Vec<(NhsNumber, u32)> = runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        for person in &people {
            load(&client, person).await;
        }
        let writers: Vec<_> = people
            .iter()
            .cloned()
            .map(|person| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut acked = 0;
                    let mut current = person;
                    for round in 0..10_000u32 {
                        current.telecom[0].value = format!("round {round}");
                        let update = request(Operation::PdsUpdate {
                            patient: current.clone(),
                            expected_version: current.version,
                        });
                        match client.call(update).await {
                            Ok(Ok(Reply::Patient(updated))) => {
                                acked = updated.version;
                                current = updated;
                            }
                            // The kill ends the run.
                            _ => break,
                        }
                    }
                    (current.nhs_number, acked)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400)).await;
        spine.signal("KILL");
        let mut acknowledged = Vec::new();
        for writer in writers {
            acknowledged.push(writer.await.unwrap());
        }
        acknowledged
    });
    drop(spine);
    assert!(
        acknowledged.iter().any(|(_, version)| *version > 1),
        "no update was acknowledged before the kill"
    );
    let spine = Spine::start(dir.path());
    runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        for (nhs_number, version) in acknowledged {
            let read = patient(
                client
                    .call(request(Operation::PdsRetrieve { nhs_number }))
                    .await
                    .unwrap(),
            );
            assert!(
                read.version >= version,
                "{nhs_number}: acknowledged version {version} lost, found {}",
                read.version
            );
        }
    });
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn the_server_serves_over_quic_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    runtime().block_on(async {
        let config = Arc::new(tls_client_config(&demo).unwrap());
        let client = Client::connect(
            Transport::Quic,
            spine.quic,
            "localhost",
            Arc::clone(&config),
        )
        .await
        .unwrap();
        let mut person = Population::new(13).next().unwrap();
        person.restricted = true;
        load(&client, &person).await;
        // Many streams at once on one connection.
        let reads: Vec<_> = retrieves_at_once(&client, person.nhs_number, 64);
        for read in reads {
            let read = patient(read.await.unwrap().unwrap());
            assert!(
                read.addresses.is_empty(),
                "restricted: no address over QUIC either"
            );
        }
        // A certificate no system holds: the connection is closed with a goodbye.
        Pki::at(dir.path()).issue_client("stranger").unwrap();
        let stranger = identity(dir.path(), "stranger");
        let refused =
            refused_connection(Transport::Quic, spine.quic, &stranger, person.nhs_number).await;
        let ClientError::Goodbye(goodbye) = refused else {
            panic!("expected a goodbye, got {refused}");
        };
        assert_eq!(goodbye.code, ErrorCode::AccessDenied);
        // A stream of garbage gets a goodbye on that stream; its connection serves on.
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(Arc::clone(&config)).unwrap();
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let raw = endpoint
            .connect(spine.quic, "localhost")
            .unwrap()
            .await
            .unwrap();
        let exchange = |bytes: Vec<u8>| {
            let raw = raw.clone();
            async move {
                let (mut send, mut receive) = raw.open_bi().await.unwrap();
                send.write_all(&bytes).await.unwrap();
                send.finish().unwrap();
                let answer = receive.read_to_end(1 << 20).await.unwrap();
                let mut decoder = FrameDecoder::new(1 << 20);
                decoder.extend(&answer);
                decoder.next_frame().unwrap().expect("a whole frame")
            }
        };
        let answer = exchange(b"\x00\x00\x00\x05\x01\x01\xff\xff\xff".to_vec()).await;
        assert_eq!(answer.kind, FrameKind::Goodbye);
        let goodbye: Goodbye = message::decode("goodbye", &answer.body).unwrap();
        assert_eq!(goodbye.code, ErrorCode::MalformedRequest);
        let two = [
            request_frame(&request(Operation::PdsRetrieve {
                nhs_number: person.nhs_number,
            })),
            request_frame(&request(Operation::PdsRetrieve {
                nhs_number: person.nhs_number,
            })),
        ]
        .concat();
        let answer = exchange(two).await;
        let goodbye: Goodbye = message::decode("goodbye", &answer.body).unwrap();
        assert!(
            goodbye.message.contains("exactly one"),
            "{}",
            goodbye.message
        );
        let answer = exchange(request_frame(&request(Operation::PdsRetrieve {
            nhs_number: person.nhs_number,
        })))
        .await;
        assert_eq!(
            answer.kind,
            FrameKind::Response,
            "the same connection serves on"
        );

        // The connection that was refused nothing keeps serving.
        let again = client
            .call(request(Operation::PdsRetrieve {
                nhs_number: person.nhs_number,
            }))
            .await
            .unwrap();
        assert_eq!(patient(again).nhs_number, person.nhs_number);

        // A graceful stop answers the streams in flight before closing.
        let in_flight: Vec<_> = retrieves_at_once(&client, person.nhs_number, 32);
        tokio::time::sleep(Duration::from_millis(5)).await;
        spine.signal("TERM");
        let mut answered = 0;
        for call in in_flight {
            match call.await.unwrap() {
                Ok(response) => {
                    assert_eq!(patient(response).nhs_number, person.nhs_number);
                    answered += 1;
                }
                // Opened after the server stopped taking streams.
                Err(ClientError::Lost(_)) => {}
                Err(other) => panic!("{other}"),
            }
        }
        assert!(answered > 0, "no stream in flight was answered");
    });
    let status = spine.child.wait().unwrap();
    assert!(status.success(), "spine exited with {status}");
}

/// The body of `GET /metrics`.
async fn scrape(addr: SocketAddr) -> String {
    spine_net::metrics::scrape(addr).await.unwrap()
}

/// The value of the sample named exactly `name` (with its labels).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name}"))
}

fn request_frame(request: &WireRequest) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    spine_net::protocol::frame::encode(FrameKind::Request, &message::encode(request), &mut out);
    out.to_vec()
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn limits_give_specific_errors_and_one_bad_client_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start_with(
        dir.path(),
        &[
            "--in-flight-per-connection",
            "4",
            "--connections-per-system-max",
            "3",
            "--rate-per-system",
            "400",
            "--frame-bytes-max",
            "4096",
        ],
    );
    let demo = identity(dir.path(), DEMO_CLIENT);
    let config = Arc::new(tls_client_config(&demo).unwrap());
    runtime().block_on(async {
        let client = Client::connect(Transport::Tls, spine.addr, "localhost", Arc::clone(&config))
            .await
            .unwrap();
        let person = Population::new(14).next().unwrap();
        load(&client, &person).await;
        let retrieve = || {
            request(Operation::PdsRetrieve {
                nhs_number: person.nhs_number,
            })
        };

        // A slow writer: half a frame, then nothing. It holds a connection, nothing else.
        let mut slow = raw_connect(spine.addr, Arc::clone(&config)).await;
        let frame = request_frame(&retrieve());
        slow.write_all(&frame[..frame.len() / 2]).await.unwrap();
        slow.flush().await.unwrap();
        patient(client.call(retrieve()).await.unwrap());

        // Twenty requests in one write on a connection allowed four in flight: the rest are
        // answered TOO_MANY_STREAMS at once, and every one is answered.
        let mut pipelined = raw_connect(spine.addr, Arc::clone(&config)).await;
        let burst: Vec<u8> = (0..20).flat_map(|_| request_frame(&retrieve())).collect();
        pipelined.write_all(&burst).await.unwrap();
        pipelined.flush().await.unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let (mut answered, mut refused) = (0, 0);
        while answered + refused < 20 {
            while let Some(frame) = decoder.next_frame().unwrap() {
                let response: spine_net::protocol::message::WireResponse =
                    message::decode("response", &frame.body).unwrap();
                match response.into_response() {
                    Ok(_) => answered += 1,
                    Err(refusal) => {
                        assert_eq!(refusal.code, ErrorCode::TooManyStreams, "{refusal}");
                        refused += 1;
                    }
                }
            }
            if answered + refused < 20 {
                let read = pipelined.read_buf(decoder.buffer_mut()).await.unwrap();
                assert!(read > 0);
            }
        }
        assert!(
            answered >= 4 && refused >= 1,
            "{answered} answered, {refused} refused"
        );

        // Three connections of the system are open (client, slow, pipelined): a fourth is told.
        let goodbye = raw_goodbye(spine.addr, &demo, b"").await;
        assert_eq!(goodbye.code, ErrorCode::ServiceUnavailable);
        assert!(
            goodbye.message.contains("connections open"),
            "{}",
            goodbye.message
        );
        drop(slow);
        drop(pipelined);

        // Over the system's rate (four callers, within the in-flight limit): RATE_LIMITED.
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                let nhs_number = person.nhs_number;
                tokio::spawn(async move {
                    for _ in 0..2_000 {
                        let response = client
                            .call(request(Operation::PdsRetrieve { nhs_number }))
                            .await
                            .unwrap();
                        if let Err(refusal) = response {
                            return Some(refusal);
                        }
                    }
                    None
                })
            })
            .collect();
        let mut limited = 0;
        for caller in callers {
            if let Some(refusal) = caller.await.unwrap() {
                assert_eq!(refusal.code, ErrorCode::RateLimited, "{refusal}");
                assert!(
                    refusal.message.contains("400 requests a second"),
                    "{refusal}"
                );
                limited += 1;
            }
        }
        assert!(limited > 0, "8,000 requests passed a rate of 400 a second");
        // The server goes on: the bucket refills.
        tokio::time::sleep(Duration::from_millis(600)).await;
        patient(client.call(retrieve()).await.unwrap());

        // Session resumption: a second connection with the same configuration resumes.
        let first = raw_connect(spine.addr, Arc::clone(&config)).await;
        drop(first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = raw_connect(spine.addr, Arc::clone(&config)).await;
        assert_eq!(
            second.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
    });
}

/// `count` retrieves of `nhs_number` sent at once on `client`, each in a task of its own.
fn retrieves_at_once(
    client: &Client,
    nhs_number: NhsNumber,
    count: usize,
) -> Vec<tokio::task::JoinHandle<Result<Response, ClientError>>> {
    (0..count)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call(request(Operation::PdsRetrieve { nhs_number }))
                    .await
            })
        })
        .collect()
}

/// What a client with `identity` meets connecting over `transport` and asking for a retrieve:
/// the handshake's error, or the call's.
async fn refused_connection(
    transport: Transport,
    addr: SocketAddr,
    identity: &ClientIdentity,
    nhs_number: NhsNumber,
) -> ClientError {
    let config = Arc::new(tls_client_config(identity).unwrap());
    match Client::connect(transport, addr, "localhost", config).await {
        Ok(client) => client
            .call(request(Operation::PdsRetrieve { nhs_number }))
            .await
            .expect_err("the connection is refused"),
        Err(error) => error,
    }
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn clinical_services_are_served_over_both_transports() {
    use spine_core::scr::record::{ScrContent, ScrEntryInput};
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    runtime().block_on(async {
        let config = Arc::new(tls_client_config(&demo).unwrap());
        let tls = Client::connect(Transport::Tls, spine.addr, "localhost", Arc::clone(&config))
            .await
            .unwrap();
        let quic = Client::connect(Transport::Quic, spine.quic, "localhost", config)
            .await
            .unwrap();
        let mut person = Population::new(21).next().unwrap();
        person.general_practitioner = Some("Y90001".parse().unwrap());
        load(&tls, &person).await;
        let nhs_number = person.nhs_number;

        // Summary Care Record: written by the practice over TLS, read over QUIC.
        let content = ScrContent {
            allergies: vec![ScrEntryInput {
                code: Some(91_936_005),
                text: "Penicillin: anaphylaxis".into(),
            }],
            ..ScrContent::default()
        };
        let written = tls
            .call(request(Operation::ScrUpdate {
                nhs_number,
                expected_version: 0,
                content,
            }))
            .await
            .unwrap();
        let Ok(Reply::Scr(written)) = written else {
            panic!("SCR written: {written:?}");
        };
        let view = |user, permission_to_view, justification| {
            let mut view = WireRequest::as_demo_user(
                user,
                Operation::ScrView {
                    nhs_number,
                    permission_to_view,
                },
            )
            .unwrap();
            view.justification = justification;
            view
        };
        let read = quic
            .call(view(demo_ids::GP, true, Justification::None))
            .await
            .unwrap();
        assert_eq!(read, Ok(Reply::Scr(written.clone())));
        let refused = quic
            .call(view(demo_ids::HOSPITAL_DOCTOR, false, Justification::None))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::AccessDenied);
        let emergency = Justification::Emergency {
            reason: "collapsed in A&E".into(),
        };
        let read = tls
            .call(view(demo_ids::HOSPITAL_DOCTOR, false, emergency))
            .await
            .unwrap();
        assert_eq!(read, Ok(Reply::Scr(written)));

        // Prescriptions: issued over TLS, pulled by the nominated pharmacy over QUIC,
        // dispensed over TLS; another pharmacy is refused with the specification's code.
        use spine_core::eps::{EpsAction, NewLineItem, NewPrescription, PrescriptionStatus};
        let issued = tls
            .call(request(Operation::EpsCreate {
                prescription: NewPrescription {
                    patient: nhs_number,
                    nominated_pharmacy: Some("FY001".parse().unwrap()),
                    items: vec![NewLineItem {
                        code: "317972000".parse().unwrap(),
                        description: "Amoxicillin 250mg capsules".into(),
                        quantity: 21,
                        unit: "capsule".into(),
                        dosage: "One capsule three times a day".into(),
                    }],
                },
            }))
            .await
            .unwrap();
        let Ok(Reply::Prescription(issued)) = issued else {
            panic!("issued: {issued:?}");
        };
        let pharmacist = |operation| WireRequest::as_demo_user(demo_ids::PHARMACIST, operation);
        let pulled = quic
            .call(pharmacist(Operation::EpsReleaseNominated { limit: 25 }).unwrap())
            .await
            .unwrap();
        let Ok(Reply::Prescriptions(pulled)) = pulled else {
            panic!("released: {pulled:?}");
        };
        assert_eq!(pulled.len(), 1);
        assert_eq!(pulled[0].id, issued.id);
        let dispense = |pharmacy: &str| Operation::EpsUpdate {
            id: issued.id,
            action: EpsAction::Dispense {
                pharmacy: pharmacy.parse().unwrap(),
                lines: vec![(0, 21)],
            },
        };
        let other = WireRequest::as_demo_user(demo_ids::SECOND_PHARMACIST, dispense("FY002"));
        let refused = tls.call(other.unwrap()).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::PrescriptionWithAnotherDispenser);
        let dispensed = tls
            .call(pharmacist(dispense("FY001")).unwrap())
            .await
            .unwrap();
        let Ok(Reply::Prescription(dispensed)) = dispensed else {
            panic!("dispensed: {dispensed:?}");
        };
        assert_eq!(dispensed.status, PrescriptionStatus::Dispensed);

        // e-Referrals: the hospital publishes a service and a slot over TLS; the GP refers,
        // finds the slot and books it over QUIC; a second booking of it is refused.
        use spine_core::ers::{
            NewReferral, NewSlot, Priority, ReferralState, Service, ServiceId, SlotQuery, SlotStart,
        };
        let manager = |operation| {
            WireRequest::as_demo_user(demo_ids::APPOINTMENTS_MANAGER, operation).unwrap()
        };
        let service = Service {
            id: ServiceId(11_000),
            name: "Forthright Cardiology Business Service".into(),
            provider: "Y9H01".parse().unwrap(),
            specialty: "CARDIOLOGY".parse().unwrap(),
            clinic_type: "HEART_FAILURE".parse().unwrap(),
        };
        let published = tls
            .call(manager(Operation::ErsPublishService {
                service: service.clone(),
            }))
            .await
            .unwrap();
        assert_eq!(published, Ok(Reply::Service(service.clone())));
        let date = "2031-07-11".parse().unwrap();
        let slots = tls
            .call(manager(Operation::ErsPublishSlots {
                service: service.id,
                slots: vec![NewSlot {
                    start: SlotStart::new(date, 12 * 60).unwrap(),
                    duration_minutes: 30,
                }],
            }))
            .await
            .unwrap();
        let Ok(Reply::Slots(slots)) = slots else {
            panic!("slots: {slots:?}");
        };
        let referral = quic
            .call(request(Operation::ErsCreateReferral {
                referral: NewReferral {
                    patient: nhs_number,
                    specialty: "CARDIOLOGY".parse().unwrap(),
                    priority: Priority::Routine,
                    shortlist: vec![service.id],
                },
            }))
            .await
            .unwrap();
        let Ok(Reply::Referral(referral)) = referral else {
            panic!("referral: {referral:?}");
        };
        let query = SlotQuery {
            specialty: "CARDIOLOGY".parse().unwrap(),
            clinic_type: None,
            from: date,
            to: date,
            provider: Some("Y9H01".parse().unwrap()),
            limit: 10,
        };
        let found = quic
            .call(request(Operation::ErsSearchSlots { query }))
            .await
            .unwrap();
        let Ok(Reply::FreeSlots(found)) = found else {
            panic!("search: {found:?}");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].slot.id(), slots[0].id());
        let book = || {
            request(Operation::ErsBook {
                ubrn: referral.ubrn(),
                slot: slots[0].id(),
                service: service.id,
            })
        };
        let booked = quic.call(book()).await.unwrap();
        let Ok(Reply::Referral(booked)) = booked else {
            panic!("booked: {booked:?}");
        };
        assert_eq!(booked.state(), &ReferralState::Booked);
        let second = tls.call(book()).await.unwrap().unwrap_err();
        assert_eq!(second.code, ErrorCode::SlotNotAvailable, "{second}");
    });
}

/// A deterministic pseudo-random document of `size` bytes (incompressible, so every chunk
/// differs).
fn gp_record(size: usize) -> Vec<u8> {
    let mut random = spine_core::pds::synthetic::SplitMix64::new(41);
    let mut document: Vec<u8> = (0..size.div_ceil(8))
        .flat_map(|_| random.next_u64().to_le_bytes())
        .collect();
    document.truncate(size);
    document
}

fn transfer_status(response: Response) -> spine_core::request::TransferStatus {
    match response {
        Ok(Reply::Transfer(status)) => status,
        other => panic!("expected a transfer, got {other:?}"),
    }
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_gp2gp_transfer_cut_by_sigkills_completes_after_restarts_byte_identical() {
    use spine_core::gp2gp::{CHUNK_BYTES, Sha256Hash, TransferState, chunk_count};
    // Not a whole number of chunks, so the short last chunk is exercised.
    let document = Arc::new(gp_record(24 * CHUNK_BYTES as usize + 12_345));
    let chunks = chunk_count(document.len() as u64);
    let digest = Sha256Hash::of(&document);
    let dir = tempfile::tempdir().unwrap();
    let demo = identity(dir.path(), DEMO_CLIENT);
    let mut person = Population::new(31).next().unwrap();
    person.general_practitioner = Some("Y90001".parse().unwrap());
    let chunk_of = {
        let document = Arc::clone(&document);
        move |index: u32| {
            let start = index as usize * CHUNK_BYTES as usize;
            document[start..document.len().min(start + CHUNK_BYTES as usize)].to_vec()
        }
    };

    // Start, then upload with eight chunks in flight until a SIGKILL cuts the uploads off.
    let spine = Spine::start(dir.path());
    let (transfer, acknowledged) = runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        // The patient moves from Riverside (the demo GP's) to Hillview; Riverside, their
        // previous practice, sends the record.
        let mut moved = load(&client, &person).await;
        moved.general_practitioner = Some("Y90002".parse().unwrap());
        let update = Operation::PdsUpdate {
            expected_version: moved.version,
            patient: moved,
        };
        patient(client.call(request(update)).await.unwrap());
        let started = transfer_status(
            client
                .call(request(Operation::Gp2gpStart {
                    patient: person.nhs_number,
                    document_size: document.len() as u64,
                    document_sha256: digest,
                }))
                .await
                .unwrap(),
        );
        let transfer = started.transfer.id();
        assert_eq!(started.missing.len() as u32, chunks);
        let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
        let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut senders = Vec::new();
        for _ in 0..8 {
            let (client, acknowledged, next) =
                (client.clone(), Arc::clone(&acknowledged), Arc::clone(&next));
            let chunk_of = chunk_of.clone();
            senders.push(tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index >= chunks {
                        return;
                    }
                    let send = request(Operation::Gp2gpSendChunk {
                        transfer,
                        index,
                        bytes: chunk_of(index),
                    });
                    match client.call(send).await {
                        Ok(Ok(_)) => acknowledged.lock().unwrap().push(index),
                        // The kill ends the run.
                        _ => return,
                    }
                }
            }));
        }
        while acknowledged.lock().unwrap().len() < chunks as usize / 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        spine.signal("KILL");
        for sender in senders {
            sender.await.unwrap();
        }
        let acknowledged = acknowledged.lock().unwrap().clone();
        (transfer, acknowledged)
    });
    drop(spine);
    assert!(
        (acknowledged.len() as u32) < chunks,
        "the kill came after every upload"
    );

    // After the restart: no acknowledged chunk is missing; resume with what is.
    let spine = Spine::start(dir.path());
    runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        let status = transfer_status(
            client
                .call(request(Operation::Gp2gpStatus { transfer }))
                .await
                .unwrap(),
        );
        for index in &acknowledged {
            assert!(
                !status.missing.contains(index),
                "acknowledged chunk {index} was lost"
            );
        }
        // A resend of a held chunk is recognised; other bytes for it are refused.
        let resent = request(Operation::Gp2gpSendChunk {
            transfer,
            index: acknowledged[0],
            bytes: chunk_of(acknowledged[0]),
        });
        transfer_status(client.call(resent).await.unwrap());
        let mut other = chunk_of(acknowledged[0]);
        other[0] ^= 1;
        let conflict = request(Operation::Gp2gpSendChunk {
            transfer,
            index: acknowledged[0],
            bytes: other,
        });
        let refused = client.call(conflict).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::ChunkConflict, "{refused}");
        let mut last = status;
        for index in last.missing.clone() {
            let send = request(Operation::Gp2gpSendChunk {
                transfer,
                index,
                bytes: chunk_of(index),
            });
            last = transfer_status(client.call(send).await.unwrap());
        }
        assert_eq!(last.transfer.state(), TransferState::Complete);
        assert!(last.missing.is_empty());
    });
    // Killed again between completion and delivery: the completion is durable.
    spine.signal("KILL");
    drop(spine);

    // The new practice downloads over QUIC, reassembles, acknowledges once.
    let spine = Spine::start(dir.path());
    runtime().block_on(async {
        let config = Arc::new(tls_client_config(&demo).unwrap());
        let quic = Client::connect(Transport::Quic, spine.quic, "localhost", config)
            .await
            .unwrap();
        let hillview = |operation| WireRequest::as_demo_user(demo_ids::SECOND_GP, operation);
        let mut received = Vec::with_capacity(document.len());
        for index in 0..chunks {
            let fetch = hillview(Operation::Gp2gpFetchChunk { transfer, index }).unwrap();
            match quic.call(fetch).await.unwrap() {
                Ok(Reply::Chunk { index: got, bytes }) => {
                    assert_eq!(got, index);
                    received.extend_from_slice(&bytes);
                }
                other => panic!("chunk {index}: {other:?}"),
            }
        }
        assert!(received == *document, "the record arrived changed");
        let acknowledge = || {
            hillview(Operation::Gp2gpAcknowledge {
                transfer,
                document_sha256: Sha256Hash::of(&received),
            })
            .unwrap()
        };
        let delivered = transfer_status(quic.call(acknowledge()).await.unwrap());
        assert_eq!(delivered.transfer.state(), TransferState::Delivered);
        let again = transfer_status(quic.call(acknowledge()).await.unwrap());
        assert_eq!(again.transfer, delivered.transfer, "delivered exactly once");
        let late = hillview(Operation::Gp2gpFetchChunk { transfer, index: 0 }).unwrap();
        let refused = quic.call(late).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidRequestState, "{refused}");
        // The sending practice may not download.
        let riverside = request(Operation::Gp2gpFetchChunk { transfer, index: 0 });
        let refused = quic.call(riverside).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::AccessDenied, "{refused}");

        // Audited: the start, the completion, each download and the delivery.
        let trail = WireRequest::as_demo_user(
            demo_ids::PRIVACY_OFFICER,
            Operation::AuditTrail {
                nhs_number: person.nhs_number,
                limit: 1_000,
            },
        )
        .unwrap();
        let Ok(Reply::AuditEvents(events)) = quic.call(trail).await.unwrap() else {
            panic!("no trail");
        };
        use spine_core::audit::event::{AuditAction, AuditOutcome};
        let count = |action: AuditAction| {
            events
                .iter()
                .filter(|event| event.action == action && event.outcome == AuditOutcome::Allowed)
                .count()
        };
        assert_eq!(count(AuditAction::Gp2gpStart), 1);
        assert_eq!(count(AuditAction::Gp2gpComplete), 1);
        assert_eq!(count(AuditAction::Gp2gpFetch), chunks as usize);
        assert_eq!(count(AuditAction::Gp2gpDeliver), 1);
    });
}

/// Every frame the server sends on `tls` until it closes the connection.
async fn frames_to_eof(tls: &mut RawTls) -> Vec<spine_net::protocol::frame::Frame> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut frames = Vec::new();
    loop {
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
        match tls.read_buf(decoder.buffer_mut()).await {
            Ok(0) => return frames,
            Ok(_) => {}
            Err(error) => panic!("reading to the end: {error}"),
        }
    }
}

#[test]
fn a_goodbye_is_the_last_frame_after_the_answers_to_the_requests_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    let config = Arc::new(tls_client_config(&demo).unwrap());
    runtime().block_on(async {
        for round in 0..3 {
            // Writes (each waits for its log flush), then a malformed frame, in one write.
            let loads: Vec<u8> = Population::new(20 + round)
                .take(20)
                .flat_map(|mut person| {
                    person.general_practitioner = Some("Y90001".parse().unwrap());
                    request_frame(&request(Operation::PdsLoad { patient: person }))
                })
                .collect();
            let mut tls = raw_connect(spine.addr, Arc::clone(&config)).await;
            tls.write_all(&[loads, b"\x00\x00\x00\x05\x01\x01\xff\xff\xff".to_vec()].concat())
                .await
                .unwrap();
            tls.flush().await.unwrap();
            let frames = frames_to_eof(&mut tls).await;
            let kinds: Vec<FrameKind> = frames.iter().map(|frame| frame.kind).collect();
            assert_eq!(kinds.len(), 21, "20 answers and a goodbye: {kinds:?}");
            assert_eq!(
                kinds[20],
                FrameKind::Goodbye,
                "the goodbye is last: {kinds:?}"
            );
            assert!(
                kinds[..20].iter().all(|kind| *kind == FrameKind::Response),
                "{kinds:?}"
            );
            let goodbye: Goodbye = message::decode("goodbye", &frames[20].body).unwrap();
            assert_eq!(goodbye.code, ErrorCode::MalformedRequest);
        }
    });
}

/// Runs `spine serve` with `flags` to its exit (it must not get as far as serving): its status
/// and what it wrote to stderr.
fn serve_to_exit(flags: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spine"))
        .arg("serve")
        .args(["--shards", "2", "--metrics-addr", "127.0.0.1:0"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                !stdout.contains("ready"),
                "the second server served: {stdout}"
            );
            return (
                output.status,
                String::from_utf8_lossy(&output.stderr).into_owned(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    panic!(
        "the second server kept running: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn a_second_server_on_the_addresses_of_a_running_one_fails_to_start_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start(dir.path());
    let other = tempfile::tempdir().unwrap();
    let other_data = other.path().join("data");
    let other_data = other_data.to_str().unwrap();
    let (tls, quic) = (spine.addr.to_string(), spine.quic.to_string());
    for (flags, taken) in [
        (["--tls-addr", &tls, "--quic-addr", &quic], &tls),
        (["--tls-addr", "127.0.0.1:0", "--quic-addr", &quic], &quic),
        (["--tls-addr", &tls, "--quic-addr", "127.0.0.1:0"], &tls),
    ] {
        let (status, stderr) = serve_to_exit(&[&flags[..], &["--data-dir", other_data]].concat());
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(taken.as_str()), "names {taken}: {stderr}");
        assert!(stderr.contains("in use"), "{stderr}");
        assert!(
            !other.path().join("data").exists(),
            "the data directory was touched: {stderr}"
        );
    }
    // The first server is undisturbed on both transports.
    let demo = identity(dir.path(), DEMO_CLIENT);
    runtime().block_on(async {
        let config = Arc::new(tls_client_config(&demo).unwrap());
        for (transport, addr) in [(Transport::Tls, spine.addr), (Transport::Quic, spine.quic)] {
            let client = Client::connect(transport, addr, "localhost", Arc::clone(&config))
                .await
                .unwrap();
            let route = client
                .call(request(Operation::ConnectionRoute))
                .await
                .unwrap();
            assert!(matches!(route, Ok(Reply::Route(_))), "{route:?}");
        }
    });
}

/// The first frame the server sends on `tls` after `bytes`, as a goodbye (panics otherwise).
async fn first_goodbye(tls: &mut RawTls, bytes: &[u8]) -> Goodbye {
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let frames = tokio::time::timeout(Duration::from_secs(10), frames_to_eof(tls))
        .await
        .expect("the server closes the connection");
    let first = frames.first().expect("a frame before the close");
    assert_eq!(first.kind, FrameKind::Goodbye, "{frames:?}");
    assert_eq!(frames.len(), 1, "the goodbye alone: {frames:?}");
    message::decode("goodbye", &first.body).unwrap()
}

#[test]
fn a_tls_client_that_negotiates_no_alpn_is_refused_with_a_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    runtime().block_on(async {
        let mut config = tls_client_config(&demo).unwrap();
        config.alpn_protocols.clear();
        let config = Arc::new(config);
        let mut tls = raw_connect(spine.addr, Arc::clone(&config)).await;
        let route = request_frame(&request(Operation::ConnectionRoute));
        let goodbye = first_goodbye(&mut tls, &route).await;
        assert_eq!(goodbye.code, ErrorCode::MalformedRequest);
        assert!(goodbye.message.contains("ALPN"), "{}", goodbye.message);
        // QUIC refuses it in the handshake itself.
        let refused = Client::connect(Transport::Quic, spine.quic, "localhost", config)
            .await
            .err()
            .expect("QUIC without ALPN is refused");
        assert!(matches!(refused, ClientError::Connect(_)), "{refused}");
        // A certificate of another CA fails the TLS handshake.
        let other = tempfile::tempdir().unwrap();
        Pki::open_or_create(other.path(), &["localhost".into()]).unwrap();
        let foreign = ClientIdentity {
            ca: demo.ca.clone(),
            cert: identity(other.path(), DEMO_CLIENT).cert,
        };
        let refused =
            refused_connection(Transport::Tls, spine.addr, &foreign, "9000000009".parse().unwrap())
                .await;
        assert!(!matches!(refused, ClientError::Goodbye(_)), "{refused}");

        // Each refusal is counted by its reason, and the goodbye by its code.
        let metrics = scrape(spine.metrics).await;
        let refusals = |transport: &str, reason: &str| {
            metric(
                &metrics,
                &format!("spine_handshakes_refused_total{{transport=\"{transport}\",reason=\"{reason}\"}}"),
            )
        };
        assert_eq!(refusals("tls", "no_alpn"), 1.0);
        assert_eq!(refusals("tls", "tls"), 1.0, "the foreign certificate");
        assert_eq!(refusals("quic", "tls"), 1.0, "QUIC without ALPN");
        assert_eq!(refusals("quic", "no_alpn"), 0.0);
        assert_eq!(
            metric(&metrics, "spine_goodbyes_total{transport=\"tls\",code=\"MALFORMED_REQUEST\"}"),
            1.0
        );
    });
}

#[test]
fn a_client_certificate_without_digital_signature_is_refused_on_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let pki = spine_net::pki::prepare_deployment(dir.path()).unwrap();
    // Signed by the deployment's CA and registered to a system: only its key usage is wrong.
    let (_, fingerprint) = pki
        .issue_client_with_key_usages("no-signing", &[KeyUsagePurpose::KeyEncipherment])
        .unwrap();
    let mut directory = spine_core::access::directory_file::load(dir.path()).unwrap();
    let mut system = directory.systems[0].clone();
    system.asid += 1000;
    system.name = "no-signing".into();
    system.certificates = vec![fingerprint];
    directory.systems.push(system);
    spine_core::access::directory_file::save(dir.path(), &directory).unwrap();
    let spine = Spine::start(dir.path());
    let unfit = identity(dir.path(), "no-signing");
    runtime().block_on(async {
        for (transport, addr) in [(Transport::Tls, spine.addr), (Transport::Quic, spine.quic)] {
            let refused =
                refused_connection(transport, addr, &unfit, "9000000009".parse().unwrap()).await;
            let ClientError::Goodbye(goodbye) = refused else {
                panic!("{transport:?}: expected a goodbye, got {refused}");
            };
            assert_eq!(goodbye.code, ErrorCode::AccessDenied, "{transport:?}");
            assert!(
                goodbye.message.contains("digitalSignature"),
                "{transport:?}: {}",
                goodbye.message
            );
        }
        // The demo certificate, with it, is served.
        let demo = identity(dir.path(), DEMO_CLIENT);
        let client = connect(spine.addr, &demo).await.unwrap();
        let route = client
            .call(request(Operation::ConnectionRoute))
            .await
            .unwrap();
        assert!(matches!(route, Ok(Reply::Route(_))), "{route:?}");
        // A certificate of the CA that no system holds.
        Pki::at(dir.path()).issue_client("stranger").unwrap();
        let stranger = identity(dir.path(), "stranger");
        for (transport, addr) in [(Transport::Tls, spine.addr), (Transport::Quic, spine.quic)] {
            refused_connection(transport, addr, &stranger, "9000000009".parse().unwrap()).await;
        }

        let metrics = scrape(spine.metrics).await;
        for transport in ["tls", "quic"] {
            for reason in ["key_usage", "unregistered"] {
                let name = format!(
                    "spine_handshakes_refused_total{{transport=\"{transport}\",reason=\"{reason}\"}}"
                );
                assert_eq!(metric(&metrics, &name), 1.0, "{name}");
            }
            let name =
                format!("spine_goodbyes_total{{transport=\"{transport}\",code=\"ACCESS_DENIED\"}}");
            assert_eq!(metric(&metrics, &name), 2.0, "{name}");
        }
    });
}

/// The goodbye a QUIC connection was closed with.
fn quic_close_goodbye(error: &quinn::ConnectionError) -> Goodbye {
    let quinn::ConnectionError::ApplicationClosed(close) = error else {
        panic!("expected an application close, got {error}");
    };
    assert_eq!(close.error_code, quinn::VarInt::from_u32(1), "{error}");
    message::decode("goodbye", &close.reason).unwrap()
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn idle_connections_and_partial_frames_are_closed_with_a_goodbye_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start_with(
        dir.path(),
        &["--idle-timeout-ms", "2000", "--frame-timeout-ms", "1000"],
    );
    let demo = identity(dir.path(), DEMO_CLIENT);
    let config = Arc::new(tls_client_config(&demo).unwrap());
    let within = |started: std::time::Instant, low: u64, high: u64| {
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(low) && elapsed < Duration::from_millis(high),
            "closed after {elapsed:?}, not within {low}..{high} ms"
        );
    };
    runtime().block_on(async {
        // TLS: three bytes of a frame header, then nothing.
        let mut partial = raw_connect(spine.addr, Arc::clone(&config)).await;
        let started = std::time::Instant::now();
        let goodbye = first_goodbye(&mut partial, b"\x00\x00\x00").await;
        within(started, 900, 1900);
        assert_eq!(goodbye.code, ErrorCode::DeadlineExceeded);
        assert!(goodbye.message.contains("frame"), "{}", goodbye.message);

        // TLS: a request answered, then nothing: idle.
        let mut idle = raw_connect(spine.addr, Arc::clone(&config)).await;
        idle.write_all(&request_frame(&request(Operation::ConnectionRoute)))
            .await
            .unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        while decoder.next_frame().unwrap().is_none() {
            assert!(idle.read_buf(decoder.buffer_mut()).await.unwrap() > 0);
        }
        let started = std::time::Instant::now();
        let goodbye = first_goodbye(&mut idle, b"").await;
        within(started, 1900, 3500);
        assert_eq!(goodbye.code, ErrorCode::DeadlineExceeded);
        assert!(goodbye.message.contains("idle"), "{}", goodbye.message);

        // QUIC: a stream with three bytes of a frame header, never finished.
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(Arc::clone(&config)).unwrap();
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // Keep-alives: the connection is idle in the protocol's sense all the same.
        transport.keep_alive_interval(Some(Duration::from_millis(200)));
        client_config.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        endpoint.set_default_client_config(client_config);
        let quic = endpoint
            .connect(spine.quic, "localhost")
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut receive) = quic.open_bi().await.unwrap();
        send.write_all(b"\x00\x00\x00").await.unwrap();
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), receive.read_to_end(1 << 20))
            .await
            .expect("the stream is answered")
            .unwrap();
        within(started, 900, 1900);
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.extend(&answer);
        let frame = decoder.next_frame().unwrap().expect("a whole frame");
        assert_eq!(frame.kind, FrameKind::Goodbye);
        let goodbye: Goodbye = message::decode("goodbye", &frame.body).unwrap();
        assert_eq!(goodbye.code, ErrorCode::DeadlineExceeded);
        // QUIC: then no stream open: idle, though keep-alives flow.
        let started = std::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(5), quic.closed())
            .await
            .expect("the idle connection is closed");
        within(started, 1900, 3500);
        let goodbye = quic_close_goodbye(&closed);
        assert_eq!(goodbye.code, ErrorCode::DeadlineExceeded);
        assert!(goodbye.message.contains("idle"), "{}", goodbye.message);

        let metrics = scrape(spine.metrics).await;
        for transport in ["tls", "quic"] {
            for timeout in ["idle", "partial_frame"] {
                let name = format!(
                    "spine_connection_timeouts_total{{transport=\"{transport}\",timeout=\"{timeout}\"}}"
                );
                assert_eq!(metric(&metrics, &name), 1.0, "{name}");
            }
            let name =
                format!("spine_goodbyes_total{{transport=\"{transport}\",code=\"DEADLINE_EXCEEDED\"}}");
            assert_eq!(metric(&metrics, &name), 2.0, "{name}");
        }
    });
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_client_that_sends_and_never_reads_is_dropped_after_the_frame_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start_with(
        dir.path(),
        &["--frame-timeout-ms", "1000", "--idle-timeout-ms", "60000"],
    );
    let demo = identity(dir.path(), DEMO_CLIENT);
    let config = Arc::new(tls_client_config(&demo).unwrap());
    runtime().block_on(async {
        // TLS: requests sent without end, answers never read until the server has given up.
        let tls = raw_connect(spine.addr, Arc::clone(&config)).await;
        let (mut reader, mut writer) = tokio::io::split(tls);
        let route = request_frame(&request(Operation::ConnectionRoute));
        let many: Vec<u8> = (0..2_000).flat_map(|_| route.clone()).collect();
        let sender = tokio::spawn(async move {
            while writer.write_all(&many).await.is_ok() {}
        });
        // Nothing read until the server counts the stall (its answers fill the buffers first).
        let stalled = "spine_connection_timeouts_total{transport=\"tls\",timeout=\"write_stalled\"}";
        let mut counted = false;
        for _ in 0..300 {
            if metric(&scrape(spine.metrics).await, stalled) == 1.0 {
                counted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(counted, "no stall counted in 30 s");
        let mut sink = vec![0u8; 1 << 16];
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match reader.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the connection of a client that did not read stayed open");
        sender.abort();

        // QUIC: a stream whose answer does not fit the client's window, never read.
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(Arc::clone(&config)).unwrap();
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.stream_receive_window(quinn::VarInt::from_u32(16));
        client_config.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        endpoint.set_default_client_config(client_config);
        let quic = endpoint
            .connect(spine.quic, "localhost")
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut receive) = quic.open_bi().await.unwrap();
        let missing = request(Operation::PdsRetrieve {
            nhs_number: "9000000009".parse().unwrap(),
        });
        send.write_all(&request_frame(&missing)).await.unwrap();
        send.finish().unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let read = tokio::time::timeout(Duration::from_secs(5), receive.read_to_end(1 << 20))
            .await
            .expect("the stream ends");
        assert!(
            matches!(read, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))),
            "the stream of a client that did not read is reset: {read:?}"
        );

        let metrics = scrape(spine.metrics).await;
        for transport in ["tls", "quic"] {
            let name = format!(
                "spine_connection_timeouts_total{{transport=\"{transport}\",timeout=\"write_stalled\"}}"
            );
            assert_eq!(metric(&metrics, &name), 1.0, "{name}");
        }
    });
}

/// The frame of `request` with the last occurrence of `good` in its body replaced by `bad`: a
/// request as a client holding an invalid value would send it (postcard's fields delimit
/// themselves, so `bad` may differ in length).
fn frame_with_bad_value(request: &WireRequest, good: &[u8], bad: &[u8]) -> Vec<u8> {
    let body = message::encode(request);
    let at = (0..=body.len() - good.len())
        .rev()
        .find(|&at| body[at..at + good.len()] == *good)
        .unwrap_or_else(|| panic!("{good:?} is not in the request"));
    let patched = [&body[..at], bad, &body[at + good.len()..]].concat();
    let mut out = bytes::BytesMut::new();
    spine_net::protocol::frame::encode(FrameKind::Request, &patched, &mut out);
    out.to_vec()
}

/// A bad value's case: what is wrong, the request, its good bytes, the bad ones, the code and
/// the field the answer must name.
type BadValue = (
    &'static str,
    WireRequest,
    Vec<u8>,
    Vec<u8>,
    ErrorCode,
    &'static str,
);

fn postcard_of<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap()
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_bad_value_is_answered_on_its_own_request_and_the_connection_carries_on() {
    use spine_core::eps::{EpsAction, NewLineItem, NewPrescription, PrescriptionId};
    use spine_core::ers::slot::SlotQuery;
    use spine_net::protocol::message::{WireOutcome, WireResponse};

    let dir = tempfile::tempdir().unwrap();
    let spine = Spine::start(dir.path());
    let demo = identity(dir.path(), DEMO_CLIENT);
    let config = Arc::new(tls_client_config(&demo).unwrap());
    runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        let mut person = Population::new(77).next().unwrap();
        person.general_practitioner = Some("Y90001".parse().unwrap());
        let loaded = load(&client, &person).await;
        let nhs = u64::from(loaded.nhs_number);
        let wrong_check_digit = if nhs % 10 == 9 { nhs - 1 } else { nhs + 1 };
        let postcode = loaded.addresses[0]
            .postcode
            .as_ref()
            .unwrap()
            .as_str()
            .to_owned();
        let retrieve = || {
            request(Operation::PdsRetrieve {
                nhs_number: loaded.nhs_number,
            })
        };
        let slot_query = request(Operation::ErsSearchSlots {
            query: SlotQuery {
                specialty: "CARDIOLOGY".parse().unwrap(),
                clinic_type: None,
                from: "2027-02-01".parse().unwrap(),
                to: "2027-02-28".parse().unwrap(),
                provider: None,
                limit: 10,
            },
        });
        let practice = "Y90001".parse().unwrap();
        let prescription_id = PrescriptionId::new(0xABCDEF, &practice, 1)
            .unwrap()
            .to_string();
        let mut bad_id = prescription_id.clone().into_bytes();
        let last = bad_id.len() - 1;
        bad_id[last] = if bad_id[last] == b'A' { b'B' } else { b'A' };
        let mut bad_postcode = postcode.clone().into_bytes();
        bad_postcode[0] = b'9';
        let cases: Vec<BadValue> = vec![
            (
                "an NHS number's check digit",
                retrieve(),
                postcard_of(&nhs),
                postcard_of(&wrong_check_digit),
                ErrorCode::InvalidResourceId,
                "nhs_number",
            ),
            (
                "an NHS number out of range",
                retrieve(),
                postcard_of(&nhs),
                postcard_of(&12_345u64),
                ErrorCode::InvalidResourceId,
                "nhs_number",
            ),
            (
                "an impossible date",
                slot_query.clone(),
                postcard_of(&(2027u16, 2u8, 28u8)),
                postcard_of(&(2027u16, 2u8, 30u8)),
                ErrorCode::InvalidValue,
                "date",
            ),
            (
                "a specialty code",
                WireRequest {
                    id: Uuid::new_v4(),
                    ..slot_query
                },
                postcard_of(&"CARDIOLOGY"),
                postcard_of(&"cardiology"),
                ErrorCode::InvalidValue,
                "specialty",
            ),
            (
                "a postcode",
                request(Operation::PdsUpdate {
                    patient: loaded.clone(),
                    expected_version: loaded.version,
                }),
                postcard_of(&postcode),
                postcard_of(&String::from_utf8(bad_postcode).unwrap()),
                ErrorCode::InvalidValue,
                "postcode",
            ),
            (
                "an ODS code",
                request(Operation::PrivacyAlerts {
                    organisation: "Y90001".parse().unwrap(),
                    limit: 10,
                }),
                postcard_of(&"Y90001"),
                postcard_of(&"Y9000!"),
                ErrorCode::InvalidValue,
                "ods_code",
            ),
            (
                "a dm+d code's check digit",
                request(Operation::EpsCreate {
                    prescription: NewPrescription {
                        patient: loaded.nhs_number,
                        nominated_pharmacy: None,
                        items: vec![NewLineItem {
                            code: "317972000".parse().unwrap(),
                            description: "Amoxicillin 250mg capsules".into(),
                            quantity: 21,
                            unit: "capsule".into(),
                            dosage: "One capsule three times a day".into(),
                        }],
                    },
                }),
                postcard_of(&317_972_000u64),
                postcard_of(&317_972_001u64),
                ErrorCode::InvalidValue,
                "dmd_code",
            ),
            (
                "a prescription id's check character",
                request(Operation::EpsUpdate {
                    id: prescription_id.parse().unwrap(),
                    action: EpsAction::Cancel {
                        organisation: "Y90001".parse().unwrap(),
                    },
                }),
                postcard_of(&prescription_id),
                postcard_of(&String::from_utf8(bad_id).unwrap()),
                ErrorCode::InvalidResourceId,
                "prescription_id",
            ),
        ];
        // 20 good requests, every bad one, 20 good ones: one pipeline on one connection.
        let before: Vec<WireRequest> = (0..20).map(|_| retrieve()).collect();
        let after: Vec<WireRequest> = (0..20).map(|_| retrieve()).collect();
        let mut pipeline: Vec<u8> = before.iter().flat_map(request_frame).collect();
        for (_, request, good, bad, _, _) in &cases {
            pipeline.extend(frame_with_bad_value(request, good, bad));
        }
        pipeline.extend(after.iter().flat_map(request_frame));
        let mut tls = raw_connect(spine.addr, Arc::clone(&config)).await;
        tls.write_all(&pipeline).await.unwrap();
        tls.flush().await.unwrap();

        let expected = before.len() + cases.len() + after.len();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut answers = std::collections::HashMap::new();
        while answers.len() < expected {
            while let Some(frame) = decoder.next_frame().unwrap() {
                assert_eq!(frame.kind, FrameKind::Response, "no goodbye: {frame:?}");
                let response: WireResponse = message::decode("response", &frame.body).unwrap();
                answers.insert(response.id, response.outcome);
            }
            if answers.len() < expected {
                let read = tokio::time::timeout(
                    Duration::from_secs(10),
                    tls.read_buf(decoder.buffer_mut()),
                )
                .await
                .unwrap_or_else(|_| {
                    let missing: Vec<&str> = cases
                        .iter()
                        .filter(|case| !answers.contains_key(&case.1.id))
                        .map(|case| case.0)
                        .collect();
                    panic!(
                        "{} of {expected} answered; unanswered: {missing:?}",
                        answers.len()
                    )
                })
                .unwrap();
                assert!(read > 0, "the server closed the connection");
            }
        }
        for request in before.iter().chain(&after) {
            assert!(
                matches!(answers[&request.id], WireOutcome::Ok(Reply::Patient(_))),
                "{:?}",
                answers[&request.id]
            );
        }
        for (what, request, _, _, code, field) in &cases {
            match &answers[&request.id] {
                WireOutcome::Refused {
                    code: answered,
                    message,
                } => {
                    assert_eq!(answered, code, "{what}: {message}");
                    assert!(
                        message.starts_with(&format!("{field}: ")),
                        "{what}: {message}"
                    );
                }
                other => panic!("{what}: answered {other:?}"),
            }
        }
    });
}
