//! Golden bytes for `spine/1`: every message variant and every enum index that
//! `net/PROTOCOL.md` lists, pinned on every commit.
//!
//! - Each enum the protocol document defines is read from the document itself, and checked
//!   against the code: a unit-only enum by decoding each listed index and comparing the name
//!   (and that the index after the last is refused); an enum with fields by encoding one value
//!   of every variant and comparing its index and name. Every listed index must be covered.
//! - One request per operation (with every justification, and the enums inside operations),
//!   one response per reply (the golden data directory's answers, `core/tests/golden/`, plus a
//!   route) and a goodbye are encoded and compared with `tests/golden/messages-v1.txt`,
//!   written once by the code as it was on 2026-12-03. Each golden body also decodes to the
//!   value it came from. A format change must therefore come with a new protocol version (and
//!   a new golden file beside this one), never by editing this one.
//!
//! `SPINE_WRITE_GOLDEN=1 cargo test -p spine-net --test golden_messages` writes the golden
//! file when it is missing (only then).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on any unexpected error.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde::de::DeserializeOwned;
use spine_core::access::Justification;
use spine_core::audit::event::{AccessAlert, AuditAction, AuditOutcome};
use spine_core::eps::{EpsAction, EpsActionKind, NewLineItem, NewPrescription, PrescriptionStatus};
use spine_core::ers::referral::{PriorState, ReferralEvent};
use spine_core::ers::{
    Booking, NewReferral, Priority, ReferralAction, ReferralState, Service, ServiceId, SlotId,
    SlotQuery, SlotStart,
};
use spine_core::gp2gp::{CancelledBy, Sha256Hash, TransferState};
use spine_core::pds::patient::{
    AddressUse, ContactSystem, ContactUse, DeathNotificationStatus, Gender, NameUse,
};
use spine_core::pds::search::PostcodePattern;
use spine_core::pds::synthetic::{Population, exact_trace};
use spine_core::request::{ConnectionRoute, ErrorCode, Operation, Reply, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput, ScrPermission};
use spine_net::protocol::message::{
    Goodbye, WireOutcome, WireRequest, WireResponse, decode, encode,
};
use uuid::Uuid;

const PROTOCOL: &str = include_str!("../PROTOCOL.md");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/messages-v1.txt");
const FIXTURE_ANSWERS: &str = include_str!("../../core/tests/golden/answers-v1.txt");

/// Every `Name = ...` definition in the document's code blocks: its listed `index Variant`
/// pairs, in order.
fn documented_enums() -> BTreeMap<String, Vec<(u32, String)>> {
    let mut enums: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    let mut in_code = false;
    let mut current: Option<String> = None;
    for line in PROTOCOL.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            current = None;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.split("//").next().unwrap_or("");
        let starts_definition = line.chars().next().is_some_and(char::is_alphabetic);
        let mut rest = line;
        if starts_definition {
            current = None;
            let definition = line
                .split_once(" = ")
                .or_else(|| line.trim_end().strip_suffix(" =").map(|name| (name, "")));
            if let Some((name, body)) = definition
                && name.chars().all(char::is_alphanumeric)
            {
                current = Some(name.to_string());
                rest = body;
            }
        }
        let Some(name) = &current else { continue };
        let entry = enums.entry(name.clone()).or_default();
        // Variants start the body, a line, or follow a `|`.
        for piece in rest.split('|') {
            let mut words = piece.split_whitespace();
            let (Some(index), Some(variant)) = (words.next(), words.next()) else {
                continue;
            };
            let variant: String = variant
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            if let Ok(index) = index.parse::<u32>()
                && variant.starts_with(|c: char| c.is_ascii_uppercase())
            {
                entry.push((index, variant));
            }
        }
    }
    enums.retain(|_, variants| !variants.is_empty());
    enums
}

/// The rows `| index | CODE | ... |` of the error code table.
fn documented_error_codes() -> Vec<(u32, String)> {
    let (_, table) = PROTOCOL.split_once("### Error codes").unwrap();
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let index = cells.get(1)?.parse().ok()?;
            Some((index, cells.get(2)?.to_string()))
        })
        .collect()
}

/// The variant name a value's `Debug` starts with.
fn variant_name(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect()
}

/// The varint an encoding starts with (an enum's variant index).
fn leading_varint(bytes: &[u8]) -> u32 {
    let mut value = 0u32;
    for (shift, byte) in bytes.iter().enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("no varint in {bytes:?}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}

/// Checks a unit-only enum against the document: each listed index decodes to the listed
/// name, and the next index is refused.
fn check_unit_enum<T: DeserializeOwned + std::fmt::Debug>(
    documented: &BTreeMap<String, Vec<(u32, String)>>,
    name: &'static str,
) {
    let listed = documented
        .get(name)
        .unwrap_or_else(|| panic!("PROTOCOL.md defines no enum {name}"));
    for (position, (index, variant)) in listed.iter().enumerate() {
        assert_eq!(*index as usize, position, "{name}: indexes run from 0");
        let decoded: T = decode(name, &[*index as u8])
            .unwrap_or_else(|error| panic!("{name} index {index}: {error}"));
        assert_eq!(&variant_name(&decoded), variant, "{name} index {index}");
    }
    let past = listed.len() as u8;
    assert!(
        decode::<T>(name, &[past]).is_err(),
        "{name} has a variant {past} that PROTOCOL.md does not list"
    );
}

/// Checks values of an enum with fields against the document: each value's index and name
/// are as listed, and together they cover every listed index.
fn check_enum_values<T: Serialize + std::fmt::Debug>(
    documented: &BTreeMap<String, Vec<(u32, String)>>,
    name: &str,
    values: &[T],
) {
    let listed = documented
        .get(name)
        .unwrap_or_else(|| panic!("PROTOCOL.md defines no enum {name}"));
    let mut covered = std::collections::BTreeSet::new();
    for value in values {
        let index = leading_varint(&encode(value));
        let documented_name = listed
            .iter()
            .find(|(listed_index, _)| *listed_index == index)
            .map(|(_, variant)| variant.as_str());
        assert_eq!(
            documented_name,
            Some(variant_name(value).as_str()),
            "{name}: {value:?} is encoded as index {index}"
        );
        covered.insert(index);
    }
    let all: std::collections::BTreeSet<u32> = listed.iter().map(|(index, _)| *index).collect();
    assert_eq!(
        covered, all,
        "{name}: every listed variant has a value here"
    );
}

fn booking() -> Booking {
    Booking {
        booking_id: Uuid::from_u128(0xB00C),
        slot: SlotId(687_194_767_361),
        service: ServiceId(41_000),
    }
}

fn code(text: &str) -> spine_core::pds::values::OdsCode {
    text.parse().unwrap()
}

/// The golden data directory's answers, by name.
fn fixture_answers() -> BTreeMap<String, Response> {
    FIXTURE_ANSWERS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, hex) = line.split_once('\t').unwrap();
            let response: Response = postcard_decode(&unhex(hex));
            (name.to_string(), response)
        })
        .collect()
}

fn postcard_decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
    decode("fixture answer", bytes).unwrap()
}

/// One operation of every variant, with the values inside them varied.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn operations(answers: &BTreeMap<String, Response>) -> Vec<Operation> {
    let patient = Population::new(7).next().unwrap();
    let nhs_number = patient.nhs_number;
    let prescription = match &answers["write:prescribe 1"] {
        Ok(Reply::Prescription(prescription)) => prescription.id,
        other => panic!("{other:?}"),
    };
    let ubrn = match &answers["write:refer 0"] {
        Ok(Reply::Referral(referral)) => referral.ubrn(),
        other => panic!("{other:?}"),
    };
    let transfer = match &answers["write:transfer 3 start"] {
        Ok(Reply::Transfer(status)) => status.transfer.id(),
        other => panic!("{other:?}"),
    };
    let pharmacy = code("FY001");
    let service = ServiceId(41_000);
    let entry = |text: &str| ScrEntryInput {
        code: Some(91_936_005),
        text: text.into(),
    };
    let mut query = exact_trace(&patient);
    query.postcode = Some(PostcodePattern::Prefix("LS1".into()));
    let mut fuzzy = exact_trace(&patient);
    fuzzy.fuzzy = true;
    fuzzy.postcode = Some(PostcodePattern::Exact("LS1 4AP".parse().unwrap()));
    vec![
        Operation::PdsCreate {
            patient: patient.clone(),
        },
        Operation::PdsLoad {
            patient: patient.clone(),
        },
        Operation::PdsRetrieve { nhs_number },
        Operation::PdsUpdate {
            patient: patient.clone(),
            expected_version: 3,
        },
        Operation::PdsDeathNotification {
            nhs_number,
            expected_version: 2,
            death: spine_core::pds::patient::Death {
                date: "2026-11-30".parse().unwrap(),
                time_s: None,
                notification: DeathNotificationStatus::Informal,
            },
        },
        Operation::PdsSearch { query },
        Operation::PdsSearch { query: fuzzy },
        Operation::AuditTrail {
            nhs_number,
            limit: 1000,
        },
        Operation::PrivacyAlerts {
            organisation: code("Y9H01"),
            limit: 50,
        },
        Operation::ScrView {
            nhs_number,
            permission_to_view: true,
        },
        Operation::ScrHistory {
            nhs_number,
            permission_to_view: false,
            limit: 100,
        },
        Operation::ScrUpdate {
            nhs_number,
            expected_version: 0,
            content: ScrContent {
                allergies: vec![entry("Penicillin")],
                adverse_reactions: vec![entry("Rash")],
                acute_medications: vec![entry("Amoxicillin")],
                repeat_medications: vec![ScrEntryInput {
                    code: None,
                    text: "Salbutamol inhaler".into(),
                }],
            },
        },
        Operation::ScrSetPermission {
            nhs_number,
            permission: ScrPermission::Ask,
        },
        Operation::ScrSetPermission {
            nhs_number,
            permission: ScrPermission::No,
        },
        Operation::EpsCreate {
            prescription: NewPrescription {
                patient: nhs_number,
                nominated_pharmacy: Some(pharmacy.clone()),
                items: vec![NewLineItem {
                    code: "317972000".parse().unwrap(),
                    description: "Amoxicillin 250mg capsules".into(),
                    quantity: 21,
                    unit: "capsule".into(),
                    dosage: "One capsule three times a day".into(),
                }],
            },
        },
        Operation::EpsUpdate {
            id: prescription,
            action: EpsAction::Cancel {
                organisation: code("Y90001"),
            },
        },
        Operation::EpsReleaseNominated { limit: 25 },
        Operation::ErsPublishService {
            service: Service {
                id: service,
                name: "Golden cardiology clinic".into(),
                provider: code("Y9H01"),
                specialty: "CARDIOLOGY".parse().unwrap(),
                clinic_type: "HEART_FAILURE".parse().unwrap(),
            },
        },
        Operation::ErsPublishSlots {
            service,
            slots: vec![spine_core::ers::NewSlot {
                start: SlotStart::new("2027-01-04".parse().unwrap(), 510).unwrap(),
                duration_minutes: 480,
            }],
        },
        Operation::ErsSearchSlots {
            query: SlotQuery {
                specialty: "CARDIOLOGY".parse().unwrap(),
                clinic_type: Some("GENERAL".parse().unwrap()),
                from: "2027-01-01".parse().unwrap(),
                to: "2027-03-31".parse().unwrap(),
                provider: Some(code("Y9H01")),
                limit: 100,
            },
        },
        Operation::ErsCreateReferral {
            referral: NewReferral {
                patient: nhs_number,
                specialty: "CARDIOLOGY".parse().unwrap(),
                priority: Priority::TwoWeekWait,
                shortlist: vec![service, ServiceId(41_001)],
            },
        },
        Operation::ErsRetrieveReferral { ubrn },
        Operation::ErsBook {
            ubrn,
            slot: SlotId(687_194_767_361),
            service,
        },
        Operation::ErsUpdateReferral {
            ubrn,
            action: ReferralAction::DeferToProvider { service },
        },
        Operation::Gp2gpStart {
            patient: nhs_number,
            document_size: 104_857_600,
            document_sha256: Sha256Hash::of(b"a GP record"),
        },
        Operation::Gp2gpSendChunk {
            transfer,
            index: 399,
            bytes: vec![0, 1, 2, 0xff],
        },
        Operation::Gp2gpStatus { transfer },
        Operation::Gp2gpFetchChunk { transfer, index: 0 },
        Operation::Gp2gpAcknowledge {
            transfer,
            document_sha256: Sha256Hash::of(b"a GP record"),
        },
        Operation::Gp2gpCancel { transfer },
        Operation::ConnectionRoute,
    ]
}

/// Makes a new operation variant fail to compile here until it has a golden case above.
fn every_operation_has_a_case(operation: &Operation) {
    match operation {
        Operation::PdsCreate { .. }
        | Operation::PdsLoad { .. }
        | Operation::PdsRetrieve { .. }
        | Operation::PdsUpdate { .. }
        | Operation::PdsDeathNotification { .. }
        | Operation::PdsSearch { .. }
        | Operation::AuditTrail { .. }
        | Operation::PrivacyAlerts { .. }
        | Operation::ScrView { .. }
        | Operation::ScrHistory { .. }
        | Operation::ScrUpdate { .. }
        | Operation::ScrSetPermission { .. }
        | Operation::EpsCreate { .. }
        | Operation::EpsUpdate { .. }
        | Operation::EpsReleaseNominated { .. }
        | Operation::ErsPublishService { .. }
        | Operation::ErsPublishSlots { .. }
        | Operation::ErsSearchSlots { .. }
        | Operation::ErsCreateReferral { .. }
        | Operation::ErsRetrieveReferral { .. }
        | Operation::ErsBook { .. }
        | Operation::ErsUpdateReferral { .. }
        | Operation::Gp2gpStart { .. }
        | Operation::Gp2gpSendChunk { .. }
        | Operation::Gp2gpStatus { .. }
        | Operation::Gp2gpFetchChunk { .. }
        | Operation::Gp2gpAcknowledge { .. }
        | Operation::Gp2gpCancel { .. }
        | Operation::ConnectionRoute => {}
    }
}

fn justifications() -> Vec<Justification> {
    vec![
        Justification::None,
        Justification::SelfClaimed {
            reason: "new patient, records not yet moved".into(),
        },
        Justification::Emergency {
            reason: "unconscious in A&E".into(),
        },
    ]
}

fn eps_actions() -> Vec<EpsAction> {
    let pharmacy = code("FY002");
    vec![
        EpsAction::Cancel {
            organisation: code("Y90001"),
        },
        EpsAction::Release {
            pharmacy: pharmacy.clone(),
        },
        EpsAction::Return {
            pharmacy: pharmacy.clone(),
        },
        EpsAction::Dispense {
            pharmacy: pharmacy.clone(),
            lines: vec![(0, 7), (1, 1_000_000)],
        },
        EpsAction::NotDispensed {
            pharmacy: pharmacy.clone(),
        },
        EpsAction::Withdraw {
            pharmacy: pharmacy.clone(),
        },
        EpsAction::Claim { pharmacy },
    ]
}

fn referral_actions() -> Vec<ReferralAction> {
    vec![
        ReferralAction::CancelBooking,
        ReferralAction::DeferToProvider {
            service: ServiceId(41_000),
        },
        ReferralAction::Cancel,
    ]
}

/// The golden cases: name and body.
fn cases() -> Vec<(String, Vec<u8>)> {
    let answers = fixture_answers();
    let mut cases = Vec::new();
    let user = spine_core::access::directory_file::demo_ids::GP;
    let mut operations = operations(&answers);
    for action in eps_actions() {
        operations.push(Operation::EpsUpdate {
            id: "04F4C2-A99968-7F717P".parse().unwrap(),
            action,
        });
    }
    for action in referral_actions() {
        operations.push(Operation::ErsUpdateReferral {
            ubrn: "100000000007"
                .parse()
                .unwrap_or_else(|_| match &answers["write:refer 0"] {
                    Ok(Reply::Referral(referral)) => referral.ubrn(),
                    other => panic!("{other:?}"),
                }),
            action,
        });
    }
    for (number, operation) in operations.into_iter().enumerate() {
        every_operation_has_a_case(&operation);
        let mut request = WireRequest::as_demo_gp(operation);
        request.id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f00 | number as u128);
        request.deadline_ms = 2_500;
        let name = format!("request {number:02} {}", variant_name(&request.operation));
        cases.push((name, encode(&request)));
    }
    for (number, justification) in justifications().into_iter().enumerate() {
        let mut request = WireRequest::as_demo_gp(Operation::PdsRetrieve {
            nhs_number: "9000000009".parse().unwrap(),
        });
        request.id = Uuid::from_u128(0x0a0b_0000 | number as u128);
        request.user = user;
        request.justification = justification;
        let name = format!(
            "request justification {}",
            variant_name(&request.justification)
        );
        cases.push((name, encode(&request)));
    }
    for (name, response) in &answers {
        let Some(name) = name.strip_prefix("query:") else {
            continue;
        };
        let wire = WireResponse::new(Uuid::from_u128(0x5e5e), response.clone());
        cases.push((format!("response {name}"), encode(&wire)));
    }
    let route = WireResponse::new(
        Uuid::from_u128(0x5e5f),
        Ok(Reply::Route(ConnectionRoute {
            shards: 16,
            local_shard: 3,
        })),
    );
    cases.push(("response route".into(), encode(&route)));
    for code in ErrorCode::ALL {
        let goodbye = Goodbye {
            code,
            message: format!("goodbye: {}", code.as_str()),
        };
        cases.push((format!("goodbye {}", code.as_str()), encode(&goodbye)));
    }
    cases
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn every_enum_index_in_protocol_md_is_the_codes() {
    let documented = documented_enums();
    let checked_here = [
        "Justification",
        "Operation",
        "PostcodePattern",
        "EpsAction",
        "ReferralAction",
        "AuditOutcome",
        "TransferState",
        "PriorState",
        "ReferralState",
        "ReferralEvent",
        "Reply",
        "WireOutcome",
    ];
    let unit_enums = [
        "NameUse",
        "Gender",
        "DeathNotificationStatus",
        "AddressUse",
        "ContactSystem",
        "ContactUse",
        "ScrPermission",
        "Priority",
        "AuditAction",
        "AccessAlert",
        "PrescriptionStatus",
        "EpsActionKind",
        "CancelledBy",
    ];
    let mut every: Vec<&str> = checked_here.iter().chain(&unit_enums).copied().collect();
    every.sort_unstable();
    assert_eq!(
        documented.keys().map(String::as_str).collect::<Vec<_>>(),
        every,
        "every enum PROTOCOL.md defines is checked here"
    );
    for name in unit_enums {
        match name {
            "NameUse" => check_unit_enum::<NameUse>(&documented, name),
            "Gender" => check_unit_enum::<Gender>(&documented, name),
            "DeathNotificationStatus" => {
                check_unit_enum::<DeathNotificationStatus>(&documented, name);
            }
            "AddressUse" => check_unit_enum::<AddressUse>(&documented, name),
            "ContactSystem" => check_unit_enum::<ContactSystem>(&documented, name),
            "ContactUse" => check_unit_enum::<ContactUse>(&documented, name),
            "ScrPermission" => check_unit_enum::<ScrPermission>(&documented, name),
            "Priority" => check_unit_enum::<Priority>(&documented, name),
            "AuditAction" => check_unit_enum::<AuditAction>(&documented, name),
            "AccessAlert" => check_unit_enum::<AccessAlert>(&documented, name),
            "PrescriptionStatus" => check_unit_enum::<PrescriptionStatus>(&documented, name),
            "EpsActionKind" => check_unit_enum::<EpsActionKind>(&documented, name),
            _ => check_unit_enum::<CancelledBy>(&documented, name),
        }
    }
    let answers = fixture_answers();
    check_enum_values(&documented, "Justification", &justifications());
    check_enum_values(&documented, "Operation", &operations(&answers));
    check_enum_values(
        &documented,
        "PostcodePattern",
        &[
            PostcodePattern::Exact("LS1 4AP".parse().unwrap()),
            PostcodePattern::Prefix("LS1".into()),
        ],
    );
    check_enum_values(&documented, "EpsAction", &eps_actions());
    check_enum_values(&documented, "ReferralAction", &referral_actions());
    check_enum_values(
        &documented,
        "AuditOutcome",
        &[
            AuditOutcome::Allowed,
            AuditOutcome::Refused {
                code: "ACCESS_DENIED".into(),
            },
        ],
    );
    check_enum_values(
        &documented,
        "TransferState",
        &[
            TransferState::Sending,
            TransferState::Complete,
            TransferState::Delivered,
            TransferState::Failed,
            TransferState::Cancelled(CancelledBy::Expiry),
        ],
    );
    let service = ServiceId(41_000);
    check_enum_values(
        &documented,
        "PriorState",
        &[
            PriorState::Unbooked,
            PriorState::DeferredToProvider { service },
            PriorState::Booked,
        ],
    );
    check_enum_values(
        &documented,
        "ReferralState",
        &[
            ReferralState::Unbooked,
            ReferralState::BookingPending {
                booking: booking(),
                prior: PriorState::Booked,
            },
            ReferralState::Booked,
            ReferralState::DeferredToProvider { service },
            ReferralState::Cancelled,
        ],
    );
    check_enum_values(
        &documented,
        "ReferralEvent",
        &[
            ReferralEvent::Created,
            ReferralEvent::BookingBegun(booking()),
            ReferralEvent::BookingConfirmed(booking()),
            ReferralEvent::BookingAborted(booking()),
            ReferralEvent::BookingCancelled(booking()),
            ReferralEvent::DeferredToProvider(service),
            ReferralEvent::Cancelled {
                released: Some(booking()),
            },
        ],
    );
    // Replies: the golden directory's answers hold every one but the route.
    let mut replies: Vec<Reply> = answers
        .values()
        .filter_map(|response| response.as_ref().ok().cloned())
        .collect();
    replies.push(Reply::Route(ConnectionRoute {
        shards: 2,
        local_shard: 1,
    }));
    let mut seen = std::collections::BTreeSet::new();
    replies.retain(|reply| seen.insert(leading_varint(&encode(reply))));
    check_enum_values(&documented, "Reply", &replies);
    let outcomes: Vec<WireOutcome> = ["query:retrieve 0", "query:stale update of 0"]
        .into_iter()
        .map(|name| WireResponse::new(Uuid::nil(), answers[name].clone()).outcome)
        .collect();
    check_enum_values(&documented, "WireOutcome", &outcomes);
    // Error codes: the table's rows, in order, are the code's.
    let table = documented_error_codes();
    assert_eq!(table.len(), ErrorCode::ALL.len(), "one row per error code");
    for (index, name) in table {
        let decoded: ErrorCode = decode("ErrorCode", &[index as u8]).unwrap();
        assert_eq!(decoded.as_str(), name, "error code {index}");
    }
    assert!(decode::<ErrorCode>("ErrorCode", &[ErrorCode::ALL.len() as u8]).is_err());
}

#[test]
fn every_message_variant_encodes_to_its_golden_bytes() {
    let cases = cases();
    let text = match std::fs::read_to_string(GOLDEN) {
        Ok(text) => text,
        Err(_) if std::env::var_os("SPINE_WRITE_GOLDEN").is_some() => {
            let mut text = String::from(
                "# spine/1 golden bodies (tests/golden_messages.rs): name<TAB>hex. Written once;\n\
                 # never edit (a new protocol version gets a new file).\n",
            );
            for (name, body) in &cases {
                let _ = writeln!(text, "{name}\t{}", hex(body));
            }
            std::fs::write(GOLDEN, &text).unwrap();
            text
        }
        Err(error) => panic!("{GOLDEN}: {error}"),
    };
    let golden: BTreeMap<&str, &str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split_once('\t').unwrap())
        .collect();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    for (name, body) in &cases {
        let Some(expected) = golden.get(name.as_str()) else {
            panic!("no golden bytes for {name}: add a new golden file for a new version");
        };
        assert_eq!(&hex(body), expected, "{name}");
        // The golden bytes read back as what they were made from.
        let bytes = unhex(expected);
        let again = if name.starts_with("request") {
            encode(&decode::<WireRequest>("request", &bytes).unwrap())
        } else if name.starts_with("response") {
            encode(&decode::<WireResponse>("response", &bytes).unwrap())
        } else {
            encode(&decode::<Goodbye>("goodbye", &bytes).unwrap())
        };
        assert_eq!(again, bytes, "{name} reads back as itself");
    }
    assert_eq!(golden.len(), cases.len(), "every golden body has its case");
}
