//! The Summary Care Record through the engine: versions and history, consent, the access
//! rules (relationship, permission to view, emergency access and its alert), the registered
//! practice's sole right to change it, retries, and a restart.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use common::*;
use spine_core::NhsNumber;
use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::audit::event::{AccessAlert, AuditAction, AuditOutcome};
use spine_core::engine::EngineHandle;
use spine_core::request::{ErrorCode, Operation, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput, ScrPermission, SummaryCareRecord};
use uuid::Uuid;

fn content(allergies: &[&str], repeat: &[&str]) -> ScrContent {
    let entries = |texts: &[&str]| {
        texts
            .iter()
            .map(|text| ScrEntryInput {
                code: None,
                text: (*text).to_owned(),
            })
            .collect()
    };
    ScrContent {
        allergies: entries(allergies),
        repeat_medications: entries(repeat),
        ..ScrContent::default()
    }
}

fn update(
    user: Uuid,
    nhs_number: NhsNumber,
    expected_version: u32,
    content: ScrContent,
) -> Request {
    request(
        user,
        Operation::ScrUpdate {
            nhs_number,
            expected_version,
            content,
        },
    )
}

fn view(user: Uuid, nhs_number: NhsNumber, permission_to_view: bool) -> Request {
    request(
        user,
        Operation::ScrView {
            nhs_number,
            permission_to_view,
        },
    )
}

fn record(response: Response) -> SummaryCareRecord {
    match response {
        Ok(Reply::Scr(record)) => record,
        other => panic!("expected a Summary Care Record, got {other:?}"),
    }
}

fn trail(
    handle: &EngineHandle,
    nhs_number: NhsNumber,
) -> Vec<spine_core::audit::event::AuditEvent> {
    privacy_officer_events(
        handle,
        Operation::AuditTrail {
            nhs_number,
            limit: 100,
        },
    )
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn the_practice_keeps_versions_and_others_see_them_only_as_the_rules_allow() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(11, 2);
    load(&handle, &patients);
    let nhs = patients[0].nhs_number;

    // No record yet.
    let missing = refusal(submit(&handle, view(demo_ids::GP, nhs, true)));
    assert_eq!(missing.code, ErrorCode::ResourceNotFound, "{missing}");

    // The registered practice writes version 1, then 2; a stale version is refused.
    let first = update(
        demo_ids::GP,
        nhs,
        0,
        content(&["Penicillin: anaphylaxis"], &[]),
    );
    let v1 = record(submit(&handle, first.clone()));
    assert_eq!(v1.version, 1);
    assert_eq!(v1.allergies[0].organisation.as_str(), "Y90001");
    assert_eq!(
        record(submit(&handle, first)),
        v1,
        "a retry gets the first outcome"
    );
    let v2 = record(submit(
        &handle,
        update(
            demo_ids::GP,
            nhs,
            1,
            content(&["Penicillin: anaphylaxis"], &["Ramipril 5mg once daily"]),
        ),
    ));
    assert_eq!(v2.version, 2);
    assert_eq!(
        v2.allergies[0], v1.allergies[0],
        "an entry kept keeps its provenance"
    );
    let stale = refusal(submit(
        &handle,
        update(demo_ids::GP, nhs, 1, content(&[], &[])),
    ));
    assert_eq!(stale.code, ErrorCode::ResourceVersionMismatch, "{stale}");
    let bad = refusal(submit(
        &handle,
        update(demo_ids::GP, nhs, 2, content(&[" "], &[])),
    ));
    assert_eq!(bad.code, ErrorCode::InvalidValue, "{bad}");

    // Only the registered practice changes it, emergency or not.
    let mut hospital = update(demo_ids::HOSPITAL_DOCTOR, nhs, 2, content(&[], &[]));
    hospital.justification = Justification::Emergency {
        reason: "unconscious".into(),
    };
    let refused = refusal(submit(&handle, hospital));
    assert_eq!(refused.code, ErrorCode::AccessDenied);
    assert!(
        refused.message.contains("does not grant scr-update"),
        "{refused}"
    );

    // The practice sees it with the patient's permission, and the history newest first.
    assert_eq!(record(submit(&handle, view(demo_ids::GP, nhs, true))), v2);
    let no_permission = refusal(submit(&handle, view(demo_ids::GP, nhs, false)));
    assert!(
        no_permission.message.contains("permission to view"),
        "{no_permission}"
    );
    let history = submit(
        &handle,
        request(
            demo_ids::GP,
            Operation::ScrHistory {
                nhs_number: nhs,
                permission_to_view: true,
                limit: 10,
            },
        ),
    );
    assert_eq!(history, Ok(Reply::ScrVersions(vec![v2.clone(), v1])));

    // A&E: no relationship; emergency access shows it and alerts the privacy officer.
    let refused = refusal(submit(&handle, view(demo_ids::HOSPITAL_DOCTOR, nhs, true)));
    assert!(
        refused.message.contains("legitimate relationship"),
        "{refused}"
    );
    let mut emergency = view(demo_ids::HOSPITAL_DOCTOR, nhs, false);
    emergency.justification = Justification::Emergency {
        reason: "collapsed, unable to consent".into(),
    };
    assert_eq!(record(submit(&handle, emergency)), v2);
    // A receptionist's role has no SCR activity at all.
    let receptionist = refusal(submit(&handle, view(demo_ids::RECEPTIONIST, nhs, true)));
    assert!(
        receptionist.message.contains("does not grant scr-view"),
        "{receptionist}"
    );

    let alerts = privacy_officer_events(
        &handle,
        Operation::PrivacyAlerts {
            organisation: "Y9H01".parse().unwrap(),
            limit: 10,
        },
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].action, AuditAction::ScrView);
    assert_eq!(alerts[0].alert, Some(AccessAlert::EmergencyAccess));
    assert_eq!(
        alerts[0].reason.as_deref(),
        Some("collapsed, unable to consent")
    );

    // Every SCR access is in the patient's trail, newest first.
    let actions: Vec<(AuditAction, bool)> = trail(&handle, nhs)
        .iter()
        .filter(|event| event.action != AuditAction::PdsCreate)
        .map(|event| (event.action, event.outcome == AuditOutcome::Allowed))
        .collect();
    assert_eq!(
        actions,
        vec![
            (AuditAction::ScrView, false),   // receptionist
            (AuditAction::ScrView, true),    // emergency
            (AuditAction::ScrView, false),   // no relationship
            (AuditAction::ScrView, true),    // history
            (AuditAction::ScrView, false),   // no permission to view
            (AuditAction::ScrView, true),    // view
            (AuditAction::ScrUpdate, false), // hospital
            (AuditAction::ScrUpdate, false), // blank entry
            (AuditAction::ScrUpdate, false), // stale
            (AuditAction::ScrUpdate, true),
            (AuditAction::ScrUpdate, true),
            (AuditAction::ScrView, false), // none yet
        ]
    );

    // A restart keeps the versions and their history.
    drop(handle);
    engine.shutdown().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    assert_eq!(record(submit(&handle, view(demo_ids::GP, nhs, true))), v2);
}

#[test]
fn dissent_means_no_record_is_kept_or_shown() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(12, 1);
    load(&handle, &patients);
    let nhs = patients[0].nhs_number;
    record(submit(
        &handle,
        update(demo_ids::GP, nhs, 0, content(&["Latex"], &[])),
    ));
    let set = |permission| {
        record(submit(
            &handle,
            request(
                demo_ids::GP,
                Operation::ScrSetPermission {
                    nhs_number: nhs,
                    permission,
                },
            ),
        ))
    };
    let opted_out = set(ScrPermission::No);
    assert_eq!(opted_out.version, 2);
    assert!(opted_out.allergies.is_empty());
    let mut emergency = view(demo_ids::HOSPITAL_DOCTOR, nhs, false);
    emergency.justification = Justification::Emergency {
        reason: "collapsed".into(),
    };
    for attempt in [view(demo_ids::GP, nhs, true), emergency] {
        let refused = refusal(submit(&handle, attempt));
        assert_eq!(refused.code, ErrorCode::NoPatientConsent, "{refused}");
    }
    let refused = refusal(submit(
        &handle,
        update(demo_ids::GP, nhs, 2, content(&["Latex"], &[])),
    ));
    assert_eq!(refused.code, ErrorCode::NoPatientConsent);
    // Consent given back: a fresh summary, and the history stops at the opt-out.
    set(ScrPermission::Ask);
    let fresh = record(submit(
        &handle,
        update(demo_ids::GP, nhs, 3, content(&["Nuts"], &[])),
    ));
    let history = submit(
        &handle,
        request(
            demo_ids::GP,
            Operation::ScrHistory {
                nhs_number: nhs,
                permission_to_view: true,
                limit: 100,
            },
        ),
    );
    let Ok(Reply::ScrVersions(versions)) = history else {
        panic!("history: {history:?}");
    };
    assert_eq!(
        versions.len(),
        2,
        "version 4 and the consent given back (3)"
    );
    assert_eq!(versions[0], fresh);
    assert!(
        versions
            .iter()
            .all(|version| version.allergies.iter().all(|entry| entry.text != "Latex"))
    );
}
