//! A restricted patient's practice, address and telecom never leave the core. Random requests
//! over every service's operations on a restricted patient and their records, by every user of
//! the demo directory with every kind of justification, are answered; no answer (nor refusal)
//! names the patient's address or telecom, and none names their practice except to a user of
//! that practice. Audit events are left out of the practice count: the privacy officer who
//! reads them is the one role meant to see which organisations accessed a record.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use common::*;
use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::engine::EngineHandle;
use spine_core::eps::{EpsAction, NewPrescription, PrescriptionId};
use spine_core::ers::slot::SlotStart;
use spine_core::ers::ubrn::Ubrn;
use spine_core::ers::{NewReferral, NewSlot, Priority, ReferralAction, Service, ServiceId};
use spine_core::gp2gp::{Sha256Hash, TransferId};
use spine_core::pds::values::OdsCode;
use spine_core::request::{Operation, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

const USERS: [Uuid; 8] = [
    demo_ids::GP,
    demo_ids::RECEPTIONIST,
    demo_ids::HOSPITAL_DOCTOR,
    demo_ids::PRIVACY_OFFICER,
    demo_ids::PHARMACIST,
    demo_ids::SECOND_PHARMACIST,
    demo_ids::APPOINTMENTS_MANAGER,
    demo_ids::SECOND_GP,
];
const REQUESTS: usize = 1_500;
/// The restricted patient's practice: Riverside, the demo GP's.
const PRACTICE: &str = "Y90001";

fn as_user(user: Uuid, justification: Justification, operation: Operation) -> Request {
    Request {
        justification,
        ..request(user, operation)
    }
}

fn organisation_of(handle: &EngineHandle, user: Uuid) -> OdsCode {
    handle.directory().user(user).unwrap().role_profiles[0]
        .organisation
        .clone()
}

/// What the restricted patient's records are known by.
struct Records {
    patient: Patient,
    prescription: PrescriptionId,
    ubrn: Ubrn,
    service: ServiceId,
    slot: spine_core::ers::slot::SlotId,
    transfer: TransferId,
}

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn set_up(handle: &EngineHandle) -> Records {
    // Registered at Hillview (the second demo GP's practice), then at Riverside, then
    // restricted: Hillview, their previous practice, may send their record on.
    let mut patient = population(91, 1).remove(0);
    patient.general_practitioner = Some("Y90002".parse().unwrap());
    patient.version = 1;
    load(handle, std::slice::from_ref(&patient));
    let mut patient = move_practice(handle, demo_ids::SECOND_GP, &patient, PRACTICE);
    patient.restricted = true;
    let restricted = patient_reply(submit(
        handle,
        request(
            demo_ids::GP,
            Operation::PdsUpdate {
                patient: patient.clone(),
                expected_version: patient.version,
            },
        ),
    ));
    assert!(restricted.restricted && restricted.addresses.is_empty());
    // The full record, as the core holds it: what no reply may disclose.
    patient.version = restricted.version;
    let by_practice = |operation| submit(handle, request(demo_ids::GP, operation));
    let nhs_number = patient.nhs_number;
    let content = ScrContent {
        allergies: vec![ScrEntryInput {
            code: None,
            text: "Penicillin: rash".into(),
        }],
        ..ScrContent::default()
    };
    by_practice(Operation::ScrUpdate {
        nhs_number,
        expected_version: 0,
        content,
    })
    .unwrap();
    let Ok(Reply::Prescription(prescription)) = by_practice(new_prescription(nhs_number)) else {
        panic!("the practice prescribes");
    };
    let service = Service {
        id: ServiceId(7),
        name: "City General cardiology clinic".into(),
        provider: "Y9H01".parse().unwrap(),
        specialty: "CARDIOLOGY".parse().unwrap(),
        clinic_type: "GENERAL".parse().unwrap(),
    };
    let manager = |operation| submit(handle, request(demo_ids::APPOINTMENTS_MANAGER, operation));
    manager(Operation::ErsPublishService {
        service: service.clone(),
    })
    .unwrap();
    let slots = (0..3)
        .map(|hour| NewSlot {
            start: SlotStart::new("2031-03-03".parse().unwrap(), 9 * 60 + 30 * hour).unwrap(),
            duration_minutes: 20,
        })
        .collect();
    let Ok(Reply::Slots(slots)) = manager(Operation::ErsPublishSlots {
        service: service.id,
        slots,
    }) else {
        panic!("slots are published");
    };
    let Ok(Reply::Referral(referral)) = by_practice(new_referral(nhs_number, service.id)) else {
        panic!("the practice refers");
    };
    // Hillview, the second demo GP's practice, sends a record it held on to Riverside.
    let Ok(Reply::Transfer(transfer)) =
        submit(handle, request(demo_ids::SECOND_GP, start(nhs_number)))
    else {
        panic!("a transfer starts");
    };
    Records {
        patient,
        prescription: prescription.id,
        ubrn: referral.ubrn(),
        service: service.id,
        slot: slots[0].id(),
        transfer: transfer.transfer.id(),
    }
}

fn new_prescription(patient: NhsNumber) -> Operation {
    Operation::EpsCreate {
        prescription: NewPrescription {
            patient,
            nominated_pharmacy: None,
            items: vec![amoxicillin()],
        },
    }
}

fn new_referral(patient: NhsNumber, service: ServiceId) -> Operation {
    Operation::ErsCreateReferral {
        referral: NewReferral {
            patient,
            specialty: "CARDIOLOGY".parse().unwrap(),
            priority: Priority::Routine,
            shortlist: vec![service],
        },
    }
}

fn start(patient: NhsNumber) -> Operation {
    let document = b"a GP record";
    Operation::Gp2gpStart {
        patient,
        document_size: document.len() as u64,
        document_sha256: Sha256Hash::of(document),
    }
}

/// One of every kind of operation on the restricted patient or their records, chosen by `pick`.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn operation(records: &Records, caller: &OdsCode, pick: u64) -> Operation {
    let nhs_number = records.patient.nhs_number;
    let id = records.prescription;
    let pharmacy = caller.clone();
    match pick % 20 {
        0 => Operation::PdsRetrieve { nhs_number },
        1 => Operation::PdsUpdate {
            patient: records.patient.disclosable(),
            expected_version: 1,
        },
        2 => Operation::AuditTrail {
            nhs_number,
            limit: 100,
        },
        3 => Operation::ScrView {
            nhs_number,
            permission_to_view: true,
        },
        4 => Operation::ScrHistory {
            nhs_number,
            permission_to_view: true,
            limit: 10,
        },
        5 => new_prescription(nhs_number),
        6 => Operation::EpsUpdate {
            id,
            action: EpsAction::Release { pharmacy },
        },
        7 => Operation::EpsUpdate {
            id,
            action: EpsAction::Return { pharmacy },
        },
        8 => Operation::EpsReleaseNominated { limit: 5 },
        9 => Operation::ErsRetrieveReferral { ubrn: records.ubrn },
        10 => Operation::ErsBook {
            ubrn: records.ubrn,
            slot: records.slot,
            service: records.service,
        },
        11 => Operation::ErsUpdateReferral {
            ubrn: records.ubrn,
            action: ReferralAction::CancelBooking,
        },
        12 => new_referral(nhs_number, records.service),
        13 => start(nhs_number),
        14 => Operation::Gp2gpStatus {
            transfer: records.transfer,
        },
        15 => Operation::Gp2gpFetchChunk {
            transfer: records.transfer,
            index: 0,
        },
        16 => Operation::PrivacyAlerts {
            organisation: caller.clone(),
            limit: 10,
        },
        17 => Operation::ScrSetPermission {
            nhs_number,
            permission: spine_core::scr::record::ScrPermission::Ask,
        },
        18 => Operation::EpsUpdate {
            id,
            action: EpsAction::Cancel {
                organisation: caller.clone(),
            },
        },
        _ => Operation::PdsDeathNotification {
            nhs_number,
            expected_version: 1,
            death: spine_core::pds::patient::Death {
                date: "2030-01-01".parse().unwrap(),
                time_s: None,
                notification: spine_core::pds::patient::DeathNotificationStatus::Informal,
            },
        },
    }
}

/// The restricted values `response` names, given to a caller of `caller`.
fn disclosed(records: &Records, caller: &OdsCode, response: &Response) -> Vec<String> {
    let text = match response {
        Ok(reply) => format!("{reply:?}"),
        // A refusal may quote the prescription id the caller sent (it embeds the prescriber).
        Err(refusal) => refusal
            .message
            .replace(&records.prescription.to_string(), "<prescription id>"),
    };
    let patient = &records.patient;
    let mut secret: Vec<String> = patient
        .addresses
        .iter()
        .flat_map(|address| {
            let postcode = address.postcode.iter().map(|code| code.as_str().to_owned());
            address.lines.iter().cloned().chain(postcode)
        })
        .chain(patient.telecom.iter().map(|contact| contact.value.clone()))
        .collect();
    // A prescription names its prescriber, in its id as well (the NHS short form embeds the
    // prescriber's ODS code): a dispenser must know who prescribed.
    let names_prescriber = matches!(
        response,
        Ok(Reply::AuditEvents(_) | Reply::Prescription(_) | Reply::Prescriptions(_))
    );
    if caller.as_str() != PRACTICE && !names_prescriber {
        secret.push(PRACTICE.to_owned());
    }
    secret
        .into_iter()
        .filter(|value| !value.is_empty() && text.contains(value.as_str()))
        .collect()
}

#[test]
fn no_reply_to_anyone_discloses_a_restricted_patients_practice_address_or_telecom() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(dir.path());
    let handle = engine.handle();
    let records = set_up(&handle);
    let mut random = random(2026);
    let (mut answered, mut leaks) = (0, Vec::new());
    for _ in 0..REQUESTS {
        let user = USERS[random.below(USERS.len() as u64) as usize];
        let justification = match random.below(3) {
            0 => Justification::None,
            1 => Justification::SelfClaimed {
                reason: "the patient is with me".into(),
            },
            _ => Justification::Emergency {
                reason: "unconscious in A&E".into(),
            },
        };
        let caller = organisation_of(&handle, user);
        let operation = operation(&records, &caller, random.below(1 << 20));
        let label = format!("{operation:?}")
            .chars()
            .take(40)
            .collect::<String>();
        let response = submit(&handle, as_user(user, justification, operation));
        answered += usize::from(response.is_ok());
        for value in disclosed(&records, &caller, &response) {
            leaks.push(format!("{label}… by {caller} disclosed {value:?}"));
        }
    }
    assert!(
        answered > REQUESTS / 10,
        "{answered} requests were answered"
    );
    assert!(leaks.is_empty(), "{} disclosures: {leaks:#?}", leaks.len());
    drop(handle);
    engine.shutdown().unwrap();
}

fn start_engine(dir: &std::path::Path) -> spine_core::engine::Engine {
    common::start(dir)
}
