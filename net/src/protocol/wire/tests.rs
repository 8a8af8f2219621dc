//! Every validated value of the request schema, refused on its own request with its code, its
//! kind and its path: each case takes a golden request (`net/tests/golden/messages-v1.txt`),
//! changes one value through the schema's JSON form, encodes it again and decodes it as the
//! server does.

use serde_json::{Value, json};
use spine_domain::request::ErrorCode;

use super::Request;
use crate::protocol::message::{RequestError, decode_request, encode};

const GOLDEN: &str = include_str!("../../../tests/golden/messages-v1.txt");

/// The golden request body named `name` (`request 02 PdsRetrieve`).
fn golden(name: &str) -> Vec<u8> {
    let line = GOLDEN
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('\t'))
        .unwrap_or_else(|| panic!("no golden body {name}"));
    (0..line.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&line[at..at + 2], 16).expect("hex"))
        .collect()
}

/// The body of golden request `name` with the value at JSON `pointer` replaced.
fn patched(name: &str, pointer: &str, value: Value) -> Vec<u8> {
    let body = golden(name);
    let request: Request<'_> = crate::protocol::message::decode("request", &body).expect("golden");
    let mut tree = serde_json::to_value(&request).expect("to JSON");
    let shown = tree.to_string();
    *tree
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{name} has no {pointer}: {shown}")) = value;
    let request: Request<'_> = serde_json::from_value(tree).expect("from JSON");
    postcard::to_allocvec(&request).expect("encodes")
}

#[test]
fn every_golden_request_decodes_and_encodes_to_its_own_bytes() {
    let mut requests = 0;
    for line in GOLDEN.lines().filter(|line| line.starts_with("request ")) {
        let (name, _) = line.split_once('\t').expect("name and hex");
        let body = golden(name);
        let request = decode_request(&body).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(encode(&request), body, "{name}");
        requests += 1;
    }
    assert!(requests >= 29, "one request per operation at least");
}

/// One case a line: golden request | JSON pointer | new value (JSON) | kind | path | code
/// (`Id`: `INVALID_RESOURCE_ID`, `Value`: `INVALID_VALUE`).
const REFUSED_VALUES: &str = r#"
request 02 PdsRetrieve | /organisation | "y90001" | ods_code | organisation | Value
request 02 PdsRetrieve | /operation/PdsRetrieve/nhs_number | 9000000008 | nhs_number | operation.nhs_number | Id
request 02 PdsRetrieve | /operation/PdsRetrieve/nhs_number | 10000000000 | nhs_number | operation.nhs_number | Id
request 00 PdsCreate | /operation/PdsCreate/patient/gender | 4 | gender | operation.patient.gender | Value
request 00 PdsCreate | /operation/PdsCreate/patient/birth_date | {"year": 2023, "month": 2, "day": 29} | date | operation.patient.birth_date | Value
request 00 PdsCreate | /operation/PdsCreate/patient/names/0/name_use | 5 | name_use | operation.patient.names[0].name_use | Value
request 00 PdsCreate | /operation/PdsCreate/patient/names/0/period/end | {"year": 999, "month": 1, "day": 1} | date | operation.patient.names[0].period.end | Value
request 00 PdsCreate | /operation/PdsCreate/patient/addresses/0/address_use | 4 | address_use | operation.patient.addresses[0].address_use | Value
request 00 PdsCreate | /operation/PdsCreate/patient/addresses/0/postcode | "LS" | postcode | operation.patient.addresses[0].postcode | Value
request 00 PdsCreate | /operation/PdsCreate/patient/addresses/0/period/start | {"year": 2024, "month": 13, "day": 1} | date | operation.patient.addresses[0].period.start | Value
request 00 PdsCreate | /operation/PdsCreate/patient/telecom/0/system | 4 | contact_system | operation.patient.telecom[0].system | Value
request 00 PdsCreate | /operation/PdsCreate/patient/telecom/0/contact_use | 4 | contact_use | operation.patient.telecom[0].contact_use | Value
request 00 PdsCreate | /operation/PdsCreate/patient/general_practitioner | "Y1065-2" | ods_code | operation.patient.general_practitioner | Value
request 01 PdsLoad | /operation/PdsLoad/patient/nhs_number | 9000000008 | nhs_number | operation.patient.nhs_number | Id
request 03 PdsUpdate | /operation/PdsUpdate/patient/nhs_number | 9000000008 | nhs_number | operation.patient.nhs_number | Id
request 04 PdsDeathNotification | /operation/PdsDeathNotification/nhs_number | 9000000008 | nhs_number | operation.nhs_number | Id
request 04 PdsDeathNotification | /operation/PdsDeathNotification/death/date | {"year": 2024, "month": 4, "day": 31} | date | operation.death.date | Value
request 04 PdsDeathNotification | /operation/PdsDeathNotification/death/notification | 2 | death_notification | operation.death.notification | Value
request 05 PdsSearch | /operation/PdsSearch/query/gender | 4 | gender | operation.query.gender | Value
request 05 PdsSearch | /operation/PdsSearch/query/birth_date/to | {"year": 2024, "month": 0, "day": 1} | date | operation.query.birth_date.to | Value
request 05 PdsSearch | /operation/PdsSearch/query/death_date | { "from": {"year": 2023, "month": 2, "day": 29}, "to": {"year": 2024, "month": 1, "day": 1} } | date | operation.query.death_date.from | Value
request 05 PdsSearch | /operation/PdsSearch/query/postcode | { "Exact": "LS" } | postcode | operation.query.postcode | Value
request 05 PdsSearch | /operation/PdsSearch/query/general_practitioner | "y1" | ods_code | operation.query.general_practitioner | Value
request 07 AuditTrail | /operation/AuditTrail/nhs_number | 9000000008 | nhs_number | operation.nhs_number | Id
request 08 PrivacyAlerts | /operation/PrivacyAlerts/organisation | "" | ods_code | operation.organisation | Value
request 09 ScrView | /operation/ScrView/nhs_number | 9000000008 | nhs_number | operation.nhs_number | Id
request 10 ScrHistory | /operation/ScrHistory/nhs_number | 9000000008 | nhs_number | operation.nhs_number | Id
request 11 ScrUpdate | /operation/ScrUpdate/nhs_number | 9000000008 | nhs_number | operation.nhs_number | Id
request 12 ScrSetPermission | /operation/ScrSetPermission/permission | 2 | scr_permission | operation.permission | Value
request 14 EpsCreate | /operation/EpsCreate/prescription/patient | 9000000008 | nhs_number | operation.prescription.patient | Id
request 14 EpsCreate | /operation/EpsCreate/prescription/nominated_pharmacy | "fy001" | ods_code | operation.prescription.nominated_pharmacy | Value
request 14 EpsCreate | /operation/EpsCreate/prescription/items/0/code | 39732311000001105 | dmd_code | operation.prescription.items[0].code | Value
request 15 EpsUpdate | /operation/EpsUpdate/id | "8F61D2-Y90001-2374A1" | prescription_id | operation.id | Id
request 15 EpsUpdate | /operation/EpsUpdate/action/Cancel/organisation | "Y 90001" | ods_code | operation.action.organisation | Value
request 34 EpsUpdate | /operation/EpsUpdate/action/Dispense/pharmacy | "fy002" | ods_code | operation.action.pharmacy | Value
request 37 EpsUpdate | /operation/EpsUpdate/action/Claim/pharmacy | "" | ods_code | operation.action.pharmacy | Value
request 17 ErsPublishService | /operation/ErsPublishService/service/provider | "y9h01" | ods_code | operation.service.provider | Value
request 17 ErsPublishService | /operation/ErsPublishService/service/specialty | "cardiology" | specialty | operation.service.specialty | Value
request 17 ErsPublishService | /operation/ErsPublishService/service/clinic_type | "" | clinic_type | operation.service.clinic_type | Value
request 18 ErsPublishSlots | /operation/ErsPublishSlots/slots/0/start | [{"year": 2024, "month": 2, "day": 30}, 600] | date | operation.slots[0].start | Value
request 18 ErsPublishSlots | /operation/ErsPublishSlots/slots/0/start | [{"year": 2024, "month": 2, "day": 28}, 1440] | slot_start | operation.slots[0].start | Value
request 19 ErsSearchSlots | /operation/ErsSearchSlots/query/specialty | "9CARDIO" | specialty | operation.query.specialty | Value
request 19 ErsSearchSlots | /operation/ErsSearchSlots/query/clinic_type | "general" | clinic_type | operation.query.clinic_type | Value
request 19 ErsSearchSlots | /operation/ErsSearchSlots/query/to | {"year": 2023, "month": 2, "day": 29} | date | operation.query.to | Value
request 19 ErsSearchSlots | /operation/ErsSearchSlots/query/provider | "y9h01" | ods_code | operation.query.provider | Value
request 20 ErsCreateReferral | /operation/ErsCreateReferral/referral/patient | 9000000008 | nhs_number | operation.referral.patient | Id
request 20 ErsCreateReferral | /operation/ErsCreateReferral/referral/specialty | "" | specialty | operation.referral.specialty | Value
request 20 ErsCreateReferral | /operation/ErsCreateReferral/referral/priority | 3 | priority | operation.referral.priority | Value
request 21 ErsRetrieveReferral | /operation/ErsRetrieveReferral/ubrn | 1000000000000 | ubrn | operation.ubrn | Id
request 22 ErsBook | /operation/ErsBook/ubrn | 1000000000000 | ubrn | operation.ubrn | Id
request 23 ErsUpdateReferral | /operation/ErsUpdateReferral/ubrn | 18446744073709551615 | ubrn | operation.ubrn | Id
request 24 Gp2gpStart | /operation/Gp2gpStart/patient | 9000000008 | nhs_number | operation.patient | Id
request 25 Gp2gpSendChunk | /operation/Gp2gpSendChunk/transfer | 0 | transfer_id | operation.transfer | Id
request 26 Gp2gpStatus | /operation/Gp2gpStatus/transfer | 140737488355328 | transfer_id | operation.transfer | Id
request 27 Gp2gpFetchChunk | /operation/Gp2gpFetchChunk/transfer | 0 | transfer_id | operation.transfer | Id
request 28 Gp2gpAcknowledge | /operation/Gp2gpAcknowledge/transfer | 0 | transfer_id | operation.transfer | Id
request 29 Gp2gpCancel | /operation/Gp2gpCancel/transfer | 0 | transfer_id | operation.transfer | Id
"#;

#[test]
fn each_refused_value_names_its_kind_and_path_with_its_code() {
    for case in REFUSED_VALUES.lines().filter(|line| !line.is_empty()) {
        let cells: Vec<&str> = case.split(" | ").collect();
        let [name, pointer, value, kind, path, code] = cells[..] else {
            panic!("a case has six cells: {case}");
        };
        let code = match code {
            "Id" => ErrorCode::InvalidResourceId,
            "Value" => ErrorCode::InvalidValue,
            other => panic!("no code {other}"),
        };
        let value: Value =
            serde_json::from_str(value).unwrap_or_else(|error| panic!("{case}: {error}"));
        let body = patched(name, pointer, value);
        let Err(RequestError::Invalid { id, field }) = decode_request(&body) else {
            panic!("{case}: not refused as a value");
        };
        assert_eq!(
            id,
            decode_request(&golden(name)).expect("golden").id,
            "{case}"
        );
        assert_eq!(
            (field.field, field.path.as_str(), field.code),
            (kind, path, code),
            "{case}"
        );
        let message = field.to_string();
        assert!(
            message.starts_with(&format!("{kind}: ")),
            "{case}: {message}"
        );
        assert!(
            message.ends_with(&format!(" (at {path})")),
            "{case}: {message}"
        );
    }
}

#[test]
fn the_first_refused_value_in_travel_order_is_the_one_reported() {
    let body = patched("request 02 PdsRetrieve", "/organisation", json!("bad"));
    let mut request: Request<'_> =
        crate::protocol::message::decode("request", &body).expect("decodes");
    let mut tree = serde_json::to_value(&request).expect("to JSON");
    tree["operation"]["PdsRetrieve"]["nhs_number"] = json!(9_000_000_008u64);
    request = serde_json::from_value(tree).expect("from JSON");
    let Err(RequestError::Invalid { field, .. }) = decode_request(&encode_raw(&request)) else {
        panic!("refused");
    };
    assert_eq!(
        field.path, "organisation",
        "the envelope travels before the operation"
    );
}

fn encode_raw(request: &Request<'_>) -> Vec<u8> {
    postcard::to_allocvec(request).expect("encodes")
}

#[test]
fn bytes_that_are_not_a_request_are_malformed_not_a_refused_value() {
    let mut body = golden("request 02 PdsRetrieve");
    body.push(0);
    assert!(matches!(
        decode_request(&body),
        Err(RequestError::Malformed(_))
    ));
    let body = golden("request 02 PdsRetrieve");
    assert!(matches!(
        decode_request(&body[..body.len() - 1]),
        Err(RequestError::Malformed(_))
    ));
    // An operation index past the last: what follows cannot be read.
    let mut body = golden("request 30 ConnectionRoute");
    *body.last_mut().expect("the operation's index") = 29;
    assert!(matches!(
        decode_request(&body),
        Err(RequestError::Malformed(_))
    ));
}

#[test]
fn every_shape_of_record_in_a_synthetic_population_round_trips() {
    use spine_domain::pds::synthetic::{nhs_numbers, patient_at};
    use spine_domain::request::Operation;

    use crate::protocol::message::WireRequest;

    for (index, number) in nhs_numbers().take(2_000).enumerate() {
        let patient = patient_at(11, index as u64, number);
        for operation in [
            Operation::PdsLoad {
                patient: patient.clone(),
            },
            Operation::PdsUpdate {
                patient: patient.clone(),
                expected_version: 3,
            },
        ] {
            let request = WireRequest::as_demo_gp(operation);
            let body = encode(&request);
            assert_eq!(decode_request(&body), Ok(request), "patient {index}");
        }
    }
}
