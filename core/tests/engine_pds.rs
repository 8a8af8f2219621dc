//! The engine end to end, in process: PDS operations across shards, idempotent retries,
//! search, access control, alerts, the audit trail, and a restart.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use common::*;
use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::audit::event::{AccessAlert, AuditAction, AuditOutcome};
use spine_core::pds::patient::{Death, DeathNotificationStatus};
use spine_core::pds::search::{DateRange, PostcodePattern, SCORE_EXACT, SearchQuery};
use spine_core::request::{ErrorCode, Operation, Reply};

fn search(
    engine: &spine_core::engine::EngineHandle,
    query: SearchQuery,
) -> spine_core::request::Response {
    submit(
        engine,
        request(demo_ids::GP, Operation::PdsSearch { query }),
    )
}

fn matches(response: spine_core::request::Response) -> Vec<spine_core::request::SearchMatch> {
    match response {
        Ok(Reply::Matches(found)) => found,
        other => panic!("expected matches, got {other:?}"),
    }
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_patient_is_created_read_updated_and_declared_dead_with_exact_versions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let mut new = population(1, 1).remove(0);
    new.restricted = false;
    let create = request(
        demo_ids::GP,
        Operation::PdsCreate {
            patient: new.clone(),
        },
    );
    let created = patient_reply(submit(&handle, create.clone()));
    assert_eq!(created.version, 1);
    assert!(
        created.nhs_number.value() < 9_500_000_000,
        "allocated from the create range"
    );
    assert_eq!(created.names, new.names);

    // A retry of the same request gets the first outcome, not a second patient.
    let retried = patient_reply(submit(&handle, create.clone()));
    assert_eq!(retried, created);
    // The same person registered again is found by the trace.
    let again = request(
        demo_ids::GP,
        Operation::PdsCreate {
            patient: new.clone(),
        },
    );
    assert_eq!(refusal(submit(&handle, again)).code, ErrorCode::SingleMatch);
    // The same id for a different request is refused.
    let mut reused = create.clone();
    reused.operation = Operation::PdsRetrieve {
        nhs_number: created.nhs_number,
    };
    let mut reused_write = create;
    if let Operation::PdsCreate { patient } = &mut reused_write.operation {
        patient.names[0].family = "Different".into();
    }
    assert_eq!(
        refusal(submit(&handle, reused_write)).code,
        ErrorCode::RequestIdReused
    );

    let read = patient_reply(retrieve(&handle, demo_ids::GP, created.nhs_number));
    assert_eq!(read, created);

    let mut changed = read.clone();
    changed.names[0].given = vec!["Renamed".into()];
    let update = |patient, expected_version| {
        request(
            demo_ids::GP,
            Operation::PdsUpdate {
                patient,
                expected_version,
            },
        )
    };
    let updated = patient_reply(submit(&handle, update(changed.clone(), 1)));
    assert_eq!(updated.version, 2);
    assert_eq!(updated.names[0].given, vec!["Renamed".to_owned()]);
    let stale = refusal(submit(&handle, update(changed, 1)));
    assert_eq!(stale.code, ErrorCode::ResourceVersionMismatch);
    assert!(stale.message.contains("version 2"), "{stale}");

    let death = Death {
        date: "2026-11-01".parse().unwrap(),
        time_s: None,
        notification: DeathNotificationStatus::Informal,
    };
    let notify = |expected_version| {
        request(
            demo_ids::GP,
            Operation::PdsDeathNotification {
                nhs_number: created.nhs_number,
                expected_version,
                death,
            },
        )
    };
    let dead = patient_reply(submit(&handle, notify(2)));
    assert_eq!((dead.version, dead.deceased), (3, Some(death)));
    assert_eq!(
        refusal(submit(&handle, notify(3))).code,
        ErrorCode::ForbiddenUpdate
    );

    let missing = "9434765919".parse().unwrap();
    assert_eq!(
        refusal(retrieve(&handle, demo_ids::GP, missing)).code,
        ErrorCode::ResourceNotFound
    );
    drop(handle);
    engine.shutdown().unwrap();

    // After a restart the latest version is there, and numbers are not allocated twice.
    let engine = start(dir.path());
    let handle = engine.handle();
    let read = patient_reply(retrieve(&handle, demo_ids::GP, created.nhs_number));
    assert_eq!(read, dead);
    let mut other = population(2, 1).remove(0);
    other.birth_date = Some("1950-01-01".parse().unwrap());
    let second = patient_reply(submit(
        &handle,
        request(demo_ids::GP, Operation::PdsCreate { patient: other }),
    ));
    assert_ne!(second.nhs_number, created.nhs_number);
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn searches_follow_the_specification() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let mut patients = population(3, 300);
    // A restricted patient with a known name, to check the location rules.
    patients[0].restricted = true;
    load(&handle, &patients);
    let target = &patients[0];
    let name = &target.names[0];
    let birth = DateRange::on(target.birth_date.unwrap());

    let mut exact = SearchQuery::new();
    exact.family = Some(name.family.as_str().into());
    exact.birth_date = Some(birth);
    let found = matches(search(&handle, exact.clone()));
    let hit = found
        .iter()
        .find(|found| found.patient.nhs_number == target.nhs_number)
        .expect("the target is found");
    assert_eq!(hit.score, SCORE_EXACT);
    assert!(
        hit.patient.addresses.is_empty(),
        "restricted: no address leaves the core"
    );
    assert!(hit.patient.telecom.is_empty() && hit.patient.general_practitioner.is_none());

    // A search using the postcode leaves restricted patients out altogether.
    let mut by_postcode = exact.clone();
    by_postcode.postcode = target.addresses[0]
        .postcode
        .clone()
        .map(PostcodePattern::Exact);
    let found = matches(search(&handle, by_postcode));
    assert!(
        found
            .iter()
            .all(|found| found.patient.nhs_number != target.nhs_number)
    );

    // Fuzzy: a homophone of the family name, with given name and birth date.
    let mut fuzzy = SearchQuery::new();
    fuzzy.family = Some(format!("{}e", name.family).as_str().into());
    fuzzy.given = name.given.first().map(|given| given.as_str().into());
    fuzzy.birth_date = Some(birth);
    fuzzy.fuzzy = true;
    let found = matches(search(&handle, fuzzy.clone()));
    let hit = found
        .iter()
        .find(|found| found.patient.nhs_number == target.nhs_number)
        .expect("the homophone finds the target");
    assert!(hit.score < SCORE_EXACT);
    // Transposed names.
    let mut transposed = fuzzy;
    transposed.family = name.given.first().map(|given| given.as_str().into());
    transposed.given = Some(name.family.as_str().into());
    let found = matches(search(&handle, transposed));
    assert!(
        found
            .iter()
            .any(|found| found.patient.nhs_number == target.nhs_number)
    );

    // Wildcards, and too many matches for a small limit over a wide range.
    let mut wide = SearchQuery::new();
    wide.family = Some(format!("{}*", &name.family[..2]).as_str().into());
    wide.birth_date = Some(DateRange {
        from: "1930-01-01".parse().unwrap(),
        to: "1939-12-31".parse().unwrap(),
    });
    let everyone_matching = patients
        .iter()
        .filter(|patient| {
            patient.names[0].family.starts_with(&name.family[..2])
                && wide
                    .birth_date
                    .unwrap()
                    .contains(patient.birth_date.unwrap())
        })
        .count();
    if everyone_matching > 1 {
        wide.max_results = 1;
        let refused = refusal(search(&handle, wide.clone()));
        assert_eq!(refused.code, ErrorCode::TooManyMatches);
    }
    wide.max_results = 50;
    if everyone_matching <= 50 {
        assert_eq!(matches(search(&handle, wide)).len(), everyone_matching);
    }

    // Rules: a non-fuzzy search needs family name and birth date.
    let mut bad = SearchQuery::new();
    bad.family = Some("Smith".into());
    assert_eq!(
        refusal(search(&handle, bad)).code,
        ErrorCode::InvalidSearchData
    );
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn access_is_checked_justified_access_alerts_and_every_access_is_in_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(4, 3);
    load(&handle, &patients);
    let patient = patients[1].clone();
    let update = |user, justification| {
        let mut update = request(
            user,
            Operation::PdsUpdate {
                patient: patient.clone(),
                expected_version: 1,
            },
        );
        update.justification = justification;
        update
    };
    // The receptionist's role does not grant updates.
    let refused = refusal(submit(
        &handle,
        update(demo_ids::RECEPTIONIST, Justification::None),
    ));
    assert_eq!(refused.code, ErrorCode::AccessDenied);
    assert!(
        refused.message.contains("does not grant pds-update"),
        "{refused}"
    );
    // The hospital doctor has no relationship with a patient registered elsewhere...
    let refused = refusal(submit(
        &handle,
        update(demo_ids::HOSPITAL_DOCTOR, Justification::None),
    ));
    assert!(
        refused.message.contains("legitimate relationship"),
        "{refused}"
    );
    // ...but may declare emergency access, which raises an alert.
    let emergency = Justification::Emergency {
        reason: "unconscious in A&E".into(),
    };
    patient_reply(submit(
        &handle,
        update(demo_ids::HOSPITAL_DOCTOR, emergency),
    ));
    patient_reply(retrieve(
        &handle,
        demo_ids::RECEPTIONIST,
        patient.nhs_number,
    ));

    // A clinician cannot read the audit; the privacy officer can.
    let trail = |user| {
        submit(
            &handle,
            request(
                user,
                Operation::AuditTrail {
                    nhs_number: patient.nhs_number,
                    limit: 100,
                },
            ),
        )
    };
    assert_eq!(refusal(trail(demo_ids::GP)).code, ErrorCode::AccessDenied);
    let Ok(Reply::AuditEvents(events)) = trail(demo_ids::PRIVACY_OFFICER) else {
        panic!("the privacy officer reads the trail");
    };
    let actions: Vec<(AuditAction, bool)> = events
        .iter()
        .map(|event| (event.action, event.outcome == AuditOutcome::Allowed))
        .collect();
    // Newest first: read, emergency update, refused update, refused update, load (and the
    // clinician's refused trail query).
    assert_eq!(
        actions,
        vec![
            (AuditAction::AuditQuery, false),
            (AuditAction::PdsRetrieve, true),
            (AuditAction::PdsUpdate, true),
            (AuditAction::PdsUpdate, false),
            (AuditAction::PdsUpdate, false),
            (AuditAction::PdsCreate, true),
        ]
    );
    assert_eq!(events[2].alert, Some(AccessAlert::EmergencyAccess));
    assert_eq!(events[2].reason.as_deref(), Some("unconscious in A&E"));
    assert_eq!(events[1].user, demo_ids::RECEPTIONIST);

    let alerts = privacy_officer_events(
        &handle,
        Operation::PrivacyAlerts {
            organisation: "Y9H01".parse().unwrap(),
            limit: 10,
        },
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].patient, Some(patient.nhs_number));
    assert_eq!(alerts[0].user, demo_ids::HOSPITAL_DOCTOR);
    let none = submit(
        &handle,
        request(
            demo_ids::PRIVACY_OFFICER,
            Operation::PrivacyAlerts {
                organisation: "Y90001".parse().unwrap(),
                limit: 10,
            },
        ),
    );
    assert_eq!(none, Ok(Reply::AuditEvents(Vec::new())));
}

#[test]
fn a_full_inbox_refuses_with_a_specific_error_and_shutdown_answers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.inbox_capacity = 1;
    let engine = spine_core::engine::Engine::start(config).unwrap();
    let handle = engine.handle();
    let patients = population(5, 1);
    load(&handle, &patients);
    let nhs_number = patients[0].nhs_number;
    // Many requests at once into inboxes of one place: some must be turned away, quickly and
    // with a reason, and every other one answered.
    let mut overloaded = 0;
    for _ in 0..200 {
        let requests: Vec<_> = (0..64)
            .map(|_| handle.submit(request(demo_ids::GP, Operation::PdsRetrieve { nhs_number })))
            .collect();
        for response in pollster::block_on(futures_util::future::join_all(requests)) {
            match response {
                Ok(Reply::Patient(patient)) => assert_eq!(patient.nhs_number, nhs_number),
                Err(refusal) => {
                    assert_eq!(refusal.code, ErrorCode::ServiceUnavailable, "{refusal}");
                    assert!(refusal.message.contains("overloaded"), "{refusal}");
                    overloaded += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if overloaded > 0 {
            break;
        }
    }
    assert!(overloaded > 0, "an inbox of one never overflowed");
    drop(handle);
    engine.shutdown().unwrap();
}
