//! The Electronic Prescription Service through the engine: issue (ids allocated to live with
//! the patient), retries, nominated release across shards, the state machine's refusals with
//! their specific codes, pharmacies racing for the same prescriptions (each released to exactly
//! one), the audit trail, and a restart.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use spine_core::NhsNumber;
use spine_core::access::directory_file::demo_ids;
use spine_core::audit::event::AuditAction;
use spine_core::engine::EngineHandle;
use spine_core::eps::{EpsAction, NewLineItem, NewPrescription, Prescription, PrescriptionStatus};
use spine_core::pds::values::OdsCode;
use spine_core::request::{ErrorCode, Operation, Reply, Response};
use uuid::Uuid;

fn ods(code: &str) -> OdsCode {
    code.parse().unwrap()
}

fn new_prescription(patient: NhsNumber, nominated: Option<&str>) -> NewPrescription {
    NewPrescription {
        patient,
        nominated_pharmacy: nominated.map(ods),
        items: vec![
            NewLineItem {
                code: "317972000".parse().unwrap(),
                description: "Amoxicillin 250mg capsules".into(),
                quantity: 21,
                unit: "capsule".into(),
                dosage: "One capsule three times a day".into(),
            },
            NewLineItem {
                code: "320567001".parse().unwrap(),
                description: "Paracetamol 500mg tablets".into(),
                quantity: 32,
                unit: "tablet".into(),
                dosage: "Two tablets up to four times a day".into(),
            },
        ],
    }
}

fn prescription(response: Response) -> Prescription {
    match response {
        Ok(Reply::Prescription(prescription)) => prescription,
        other => panic!("expected a prescription, got {other:?}"),
    }
}

fn issue(handle: &EngineHandle, patient: NhsNumber, nominated: Option<&str>) -> Prescription {
    prescription(submit(
        handle,
        request(
            demo_ids::GP,
            Operation::EpsCreate {
                prescription: new_prescription(patient, nominated),
            },
        ),
    ))
}

fn act(handle: &EngineHandle, user: Uuid, target: &Prescription, action: EpsAction) -> Response {
    submit(
        handle,
        request(
            user,
            Operation::EpsUpdate {
                id: target.id,
                action,
            },
        ),
    )
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn prescriptions_move_through_the_state_machine_and_refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(31, 6);
    load(&handle, &patients);
    let (high_street, station_road) = (ods("FY001"), ods("FY002"));

    // Issue: the id is the short form, from the practice, and a retry gets the same one.
    let create = request(
        demo_ids::GP,
        Operation::EpsCreate {
            prescription: new_prescription(patients[0].nhs_number, Some("FY001")),
        },
    );
    let first = prescription(submit(&handle, create.clone()));
    assert_eq!(first.status, PrescriptionStatus::ToBeDispensed);
    assert!(first.id.is_from(&ods("Y90001")), "{}", first.id);
    assert_eq!(first.id.to_string().parse(), Ok(first.id));
    assert_eq!(prescription(submit(&handle, create)), first);
    // Nominated prescriptions for patients on every shard.
    let second = issue(&handle, patients[1].nhs_number, Some("FY001"));
    let third = issue(&handle, patients[2].nhs_number, Some("FY001"));
    let walk_in = issue(&handle, patients[3].nhs_number, None);
    // A receptionist cannot prescribe; a pharmacist cannot prescribe.
    let refused = refusal(submit(
        &handle,
        request(
            demo_ids::PHARMACIST,
            Operation::EpsCreate {
                prescription: new_prescription(patients[0].nhs_number, None),
            },
        ),
    ));
    assert!(
        refused.message.contains("does not grant eps-prescribe"),
        "{refused}"
    );

    // The nominated pharmacy pulls its three, in batches of at most the limit asked.
    let release = |limit| {
        submit(
            &handle,
            request(
                demo_ids::PHARMACIST,
                Operation::EpsReleaseNominated { limit },
            ),
        )
    };
    let Ok(Reply::Prescriptions(batch)) = release(2) else {
        panic!("released");
    };
    assert_eq!(batch.len(), 2);
    let Ok(Reply::Prescriptions(rest)) = release(25) else {
        panic!("released");
    };
    assert_eq!(rest.len(), 1);
    let released: HashSet<_> = batch.iter().chain(&rest).map(|p| p.id).collect();
    assert_eq!(released, HashSet::from([first.id, second.id, third.id]));
    assert!(
        batch
            .iter()
            .chain(&rest)
            .all(|p| p.dispenser == Some(high_street.clone())
                && p.status == PrescriptionStatus::WithDispenser)
    );
    assert_eq!(release(25), Ok(Reply::Prescriptions(Vec::new())));
    assert_eq!(refusal(release(26)).code, ErrorCode::InvalidValue);

    // Another pharmacy cannot touch them; a pharmacist cannot act for another pharmacy.
    let dispense = |pharmacy: &OdsCode, lines| EpsAction::Dispense {
        pharmacy: pharmacy.clone(),
        lines,
    };
    let other = refusal(act(
        &handle,
        demo_ids::SECOND_PHARMACIST,
        &first,
        dispense(&station_road, vec![(0, 21)]),
    ));
    assert_eq!(
        other.code,
        ErrorCode::PrescriptionWithAnotherDispenser,
        "{other}"
    );
    let impostor = refusal(act(
        &handle,
        demo_ids::SECOND_PHARMACIST,
        &first,
        dispense(&high_street, vec![(0, 21)]),
    ));
    assert_eq!(impostor.code, ErrorCode::AccessDenied, "{impostor}");

    // Cancelled while with the dispenser: marked; returned, it is cancelled.
    let cancel = EpsAction::Cancel {
        organisation: ods("Y90001"),
    };
    let marked = prescription(act(&handle, demo_ids::GP, &first, cancel.clone()));
    assert!(marked.cancellation_pending);
    assert_eq!(marked.status, PrescriptionStatus::WithDispenser);
    let returned = prescription(act(
        &handle,
        demo_ids::PHARMACIST,
        &first,
        EpsAction::Return {
            pharmacy: high_street.clone(),
        },
    ));
    assert_eq!(returned.status, PrescriptionStatus::Cancelled);
    let late = refusal(act(&handle, demo_ids::GP, &first, cancel));
    assert_eq!(
        late.code,
        ErrorCode::PrescriptionInvalidStateTransition,
        "{late}"
    );

    // Partly dispensed, then fully, then claimed once.
    let partial = prescription(act(
        &handle,
        demo_ids::PHARMACIST,
        &second,
        dispense(&high_street, vec![(0, 21)]),
    ));
    assert_eq!(partial.status, PrescriptionStatus::WithDispenserActive);
    let missing = refusal(act(
        &handle,
        demo_ids::PHARMACIST,
        &second,
        dispense(&high_street, vec![(7, 1)]),
    ));
    assert_eq!(missing.code, ErrorCode::ItemNotFound, "{missing}");
    let full = prescription(act(
        &handle,
        demo_ids::PHARMACIST,
        &second,
        dispense(&high_street, vec![(1, 32)]),
    ));
    assert_eq!(full.status, PrescriptionStatus::Dispensed);
    let claim = EpsAction::Claim {
        pharmacy: high_street.clone(),
    };
    let claimed = prescription(act(&handle, demo_ids::PHARMACIST, &second, claim.clone()));
    assert_eq!(claimed.status, PrescriptionStatus::Claimed);
    let twice = refusal(act(&handle, demo_ids::PHARMACIST, &second, claim));
    assert_eq!(
        twice.code,
        ErrorCode::PrescriptionInvalidStateTransition,
        "{twice}"
    );

    // An id no prescription has.
    let mut unknown = walk_in.clone();
    unknown.id = spine_core::eps::PrescriptionId::new(1, &ods("Y90001"), 1).unwrap();
    let missing = refusal(act(
        &handle,
        demo_ids::PHARMACIST,
        &unknown,
        EpsAction::Release {
            pharmacy: high_street.clone(),
        },
    ));
    assert_eq!(missing.code, ErrorCode::PrescriptionNotFound, "{missing}");

    // Every step is in the patient's trail.
    let events = privacy_officer_events(
        &handle,
        Operation::AuditTrail {
            nhs_number: patients[1].nhs_number,
            limit: 100,
        },
    );
    let actions: Vec<AuditAction> = events.iter().map(|event| event.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::EpsClaim,
            AuditAction::EpsClaim,
            AuditAction::EpsDispense,
            AuditAction::EpsDispense,
            AuditAction::EpsDispense,
            AuditAction::EpsRelease,
            AuditAction::EpsPrescribe,
            AuditAction::PdsCreate,
        ]
    );

    // A restart keeps them.
    drop(handle);
    engine.shutdown().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let again = refusal(act(
        &handle,
        demo_ids::PHARMACIST,
        &second,
        EpsAction::Claim {
            pharmacy: high_street,
        },
    ));
    assert_eq!(again.code, ErrorCode::PrescriptionInvalidStateTransition);
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn racing_pharmacies_each_prescription_goes_to_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(32, 10);
    load(&handle, &patients);
    let prescriptions: Arc<Vec<Prescription>> = Arc::new(
        patients
            .iter()
            .flat_map(|patient| {
                [
                    issue(&handle, patient.nhs_number, None),
                    issue(&handle, patient.nhs_number, Some("FY002")),
                ]
            })
            .collect(),
    );
    // Two pharmacies, four threads each, all trying to release every prescription by id, while
    // the nominated pharmacy also pulls its nominations.
    let mut threads = Vec::new();
    for thread in 0..8 {
        let (handle, prescriptions) = (handle.clone(), Arc::clone(&prescriptions));
        let (user, pharmacy) = if thread % 2 == 0 {
            (demo_ids::PHARMACIST, ods("FY001"))
        } else {
            (demo_ids::SECOND_PHARMACIST, ods("FY002"))
        };
        threads.push(std::thread::spawn(move || {
            let mut won = Vec::new();
            if thread == 1 {
                let response = submit(
                    &handle,
                    request(user, Operation::EpsReleaseNominated { limit: 25 }),
                );
                let Ok(Reply::Prescriptions(pulled)) = response else {
                    panic!("nominated release: {response:?}");
                };
                won.extend(pulled.into_iter().map(|p| (p.id, pharmacy.clone())));
            }
            for target in prescriptions.iter() {
                let response = act(
                    &handle,
                    user,
                    target,
                    EpsAction::Release {
                        pharmacy: pharmacy.clone(),
                    },
                );
                match response {
                    Ok(Reply::Prescription(released)) => won.push((released.id, pharmacy.clone())),
                    Err(refusal) => assert!(
                        matches!(
                            refusal.code,
                            ErrorCode::PrescriptionWithAnotherDispenser
                                | ErrorCode::PrescriptionInvalidStateTransition
                        ),
                        "{refusal}"
                    ),
                    other => panic!("{other:?}"),
                }
            }
            won
        }));
    }
    let mut winners = std::collections::HashMap::new();
    for thread in threads {
        for (id, pharmacy) in thread.join().unwrap() {
            assert!(
                winners.insert(id, pharmacy).is_none(),
                "{id} released twice"
            );
        }
    }
    assert_eq!(
        winners.len(),
        prescriptions.len(),
        "every prescription released once"
    );
    drop(handle);
    engine.shutdown().unwrap();
}
