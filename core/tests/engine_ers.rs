//! The e-Referral Service through the engine: publishing services and slots, referring,
//! searching, booking, rebooking, cancelling and deferring with the specification's refusals;
//! many clients racing for the same slots (each slot ends with exactly one booking); and a
//! booking cut off between its shards' steps, settled when the engine restarts.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use common::*;
use spine_core::NhsNumber;
use spine_core::access::directory_file::{demo, demo_ids};
use spine_core::engine::{EngineConfig, EngineHandle};
use spine_core::ers::{
    FreeSlot, NewReferral, NewSlot, Priority, Referral, ReferralAction, ReferralState, Service,
    ServiceId, Slot, SlotId, SlotQuery, SlotStart, Ubrn,
};
use spine_core::request::{ErrorCode, Operation, Reply, Request, Response, service_home_value};
use spine_core::shard::ers::{ReferralAnswer, ReferralStep, SlotStep};
use spine_core::shard::record_layout::ShardIndexes;
use spine_core::shard::{self, ShardConfig, ShardInput, ShardOutput, ShardState};
use spine_storage::Log;

const CARDIOLOGY: u32 = 11_000;
const UROLOGY: u32 = 12_000;

fn service(id: u32, specialty: &str) -> Service {
    Service {
        id: ServiceId(id),
        name: format!("City General {specialty} clinic"),
        provider: "Y9H01".parse().unwrap(),
        specialty: specialty.parse().unwrap(),
        clinic_type: "GENERAL".parse().unwrap(),
    }
}

/// Publishes the service and `count` hourly slots on 2031-03-03 (from 08:00), as the
/// hospital's appointments manager.
fn publish(handle: &EngineHandle, service: &Service, count: u16) -> Vec<Slot> {
    let published = submit(
        handle,
        request(
            demo_ids::APPOINTMENTS_MANAGER,
            Operation::ErsPublishService {
                service: service.clone(),
            },
        ),
    );
    assert_eq!(published, Ok(Reply::Service(service.clone())));
    let slots = (0..count)
        .map(|hour| NewSlot {
            start: SlotStart::new("2031-03-03".parse().unwrap(), 8 * 60 + 30 * hour).unwrap(),
            duration_minutes: 20,
        })
        .collect();
    match submit(
        handle,
        request(
            demo_ids::APPOINTMENTS_MANAGER,
            Operation::ErsPublishSlots {
                service: service.id,
                slots,
            },
        ),
    ) {
        Ok(Reply::Slots(slots)) => slots,
        other => panic!("expected slots, got {other:?}"),
    }
}

fn referral(response: Response) -> Referral {
    match response {
        Ok(Reply::Referral(referral)) => referral,
        other => panic!("expected a referral, got {other:?}"),
    }
}

fn refer(handle: &EngineHandle, patient: NhsNumber, shortlist: &[u32]) -> Referral {
    referral(submit(
        handle,
        request(
            demo_ids::GP,
            Operation::ErsCreateReferral {
                referral: NewReferral {
                    patient,
                    specialty: "CARDIOLOGY".parse().unwrap(),
                    priority: Priority::Routine,
                    shortlist: shortlist.iter().copied().map(ServiceId).collect(),
                },
            },
        ),
    ))
}

fn book(handle: &EngineHandle, ubrn: Ubrn, slot: &Slot) -> Response {
    submit(
        handle,
        request(
            demo_ids::GP,
            Operation::ErsBook {
                ubrn,
                slot: slot.id(),
                service: slot.service(),
            },
        ),
    )
}

fn change(handle: &EngineHandle, ubrn: Ubrn, action: ReferralAction) -> Response {
    submit(
        handle,
        request(demo_ids::GP, Operation::ErsUpdateReferral { ubrn, action }),
    )
}

fn free_slots(handle: &EngineHandle, specialty: &str) -> Vec<FreeSlot> {
    let query = SlotQuery {
        specialty: specialty.parse().unwrap(),
        clinic_type: None,
        from: "2031-03-01".parse().unwrap(),
        to: "2031-03-31".parse().unwrap(),
        provider: None,
        limit: 100,
    };
    match submit(
        handle,
        request(demo_ids::GP, Operation::ErsSearchSlots { query }),
    ) {
        Ok(Reply::FreeSlots(slots)) => slots,
        other => panic!("expected free slots, got {other:?}"),
    }
}

fn free_ids(handle: &EngineHandle, specialty: &str) -> Vec<SlotId> {
    free_slots(handle, specialty)
        .into_iter()
        .map(|free| free.slot.id())
        .collect()
}

fn booked_slot(referral: &Referral) -> Option<SlotId> {
    (*referral.state() == ReferralState::Booked).then(|| referral.booking().unwrap().slot)
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_referral_is_booked_rebooked_cancelled_and_deferred_with_specific_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(61, 3);
    load(&handle, &patients);
    let cardiology = publish(&handle, &service(CARDIOLOGY, "CARDIOLOGY"), 3);
    let urology = publish(&handle, &service(UROLOGY, "UROLOGY"), 1);
    assert_eq!(free_ids(&handle, "CARDIOLOGY").len(), 3);

    let first = refer(&handle, patients[0].nhs_number, &[CARDIOLOGY]);
    assert_eq!(first.state(), &ReferralState::Unbooked);
    let ubrn = first.ubrn();
    assert_eq!(
        shard::shard_of(ubrn.value(), 2),
        shard::shard_of(patients[0].nhs_number.value(), 2),
        "a referral lives on its patient's shard"
    );

    // Book; the slot leaves the search.
    let booked = referral(book(&handle, ubrn, &cardiology[0]));
    assert_eq!(booked_slot(&booked), Some(cardiology[0].id()));
    assert_eq!(
        free_ids(&handle, "CARDIOLOGY"),
        vec![cardiology[1].id(), cardiology[2].id()]
    );

    // Another referral cannot have the same slot.
    let second = refer(&handle, patients[1].nhs_number, &[CARDIOLOGY, UROLOGY]);
    let taken = refusal(book(&handle, second.ubrn(), &cardiology[0]));
    assert_eq!(taken.code, ErrorCode::SlotNotAvailable, "{taken}");
    assert_eq!(
        referral(submit(
            &handle,
            request(
                demo_ids::GP,
                Operation::ErsRetrieveReferral {
                    ubrn: second.ubrn()
                }
            )
        ))
        .state(),
        &ReferralState::Unbooked,
        "a refused booking leaves the referral as it was"
    );

    // A service off the shortlist; a slot of another service than named.
    let off = refusal(book(&handle, ubrn, &urology[0]));
    assert_eq!(off.code, ErrorCode::ServiceNotOnShortlist, "{off}");
    let wrong = refusal(submit(
        &handle,
        request(
            demo_ids::GP,
            Operation::ErsBook {
                ubrn: second.ubrn(),
                slot: urology[0].id(),
                service: ServiceId(CARDIOLOGY),
            },
        ),
    ));
    assert_eq!(wrong.code, ErrorCode::InappropriateSlot, "{wrong}");

    // Rebook: the old slot is free again, the new one taken.
    let rebooked = referral(book(&handle, ubrn, &cardiology[2]));
    assert_eq!(booked_slot(&rebooked), Some(cardiology[2].id()));
    assert_eq!(
        free_ids(&handle, "CARDIOLOGY"),
        vec![cardiology[0].id(), cardiology[1].id()]
    );

    // A deferral while slots are free is refused; cancelling frees the slot.
    let early = refusal(change(
        &handle,
        second.ubrn(),
        ReferralAction::DeferToProvider {
            service: ServiceId(CARDIOLOGY),
        },
    ));
    assert_eq!(early.code, ErrorCode::SlotsCurrentlyAvailable, "{early}");
    let cancelled = referral(change(&handle, ubrn, ReferralAction::CancelBooking));
    assert_eq!(cancelled.state(), &ReferralState::Unbooked);
    assert_eq!(free_ids(&handle, "CARDIOLOGY").len(), 3);

    // Urology's one slot taken, the second referral may be deferred to it.
    let third = refer(&handle, patients[2].nhs_number, &[UROLOGY]);
    referral(book(&handle, third.ubrn(), &urology[0]));
    let deferred = referral(change(
        &handle,
        second.ubrn(),
        ReferralAction::DeferToProvider {
            service: ServiceId(UROLOGY),
        },
    ));
    assert_eq!(
        deferred.state(),
        &ReferralState::DeferredToProvider {
            service: ServiceId(UROLOGY)
        }
    );

    // A cancelled referral takes no booking; a retry gets the first answer.
    let cancel = request(
        demo_ids::GP,
        Operation::ErsUpdateReferral {
            ubrn: third.ubrn(),
            action: ReferralAction::Cancel,
        },
    );
    let first_answer = submit(&handle, cancel.clone());
    assert_eq!(
        referral(first_answer.clone()).state(),
        &ReferralState::Cancelled
    );
    assert_eq!(
        submit(&handle, cancel),
        first_answer,
        "a retry is answered alike"
    );
    assert_eq!(free_ids(&handle, "UROLOGY"), vec![urology[0].id()]);
    let late = refusal(book(&handle, third.ubrn(), &urology[0]));
    assert_eq!(late.code, ErrorCode::InvalidRequestState, "{late}");

    // Unknown referral; a pharmacist may not book; the trail holds the bookings.
    let unknown = refusal(book(&handle, Ubrn::try_from(1).unwrap(), &cardiology[1]));
    assert_eq!(unknown.code, ErrorCode::ReferenceNotFound, "{unknown}");
    let denied = refusal(submit(
        &handle,
        request(
            demo_ids::PHARMACIST,
            Operation::ErsBook {
                ubrn,
                slot: cardiology[1].id(),
                service: ServiceId(CARDIOLOGY),
            },
        ),
    ));
    assert_eq!(denied.code, ErrorCode::AccessDenied, "{denied}");
    let trail = privacy_officer_events(
        &handle,
        Operation::AuditTrail {
            nhs_number: patients[0].nhs_number,
            limit: 100,
        },
    );
    let actions: Vec<_> = trail.iter().map(|event| event.action).collect();
    for action in [
        spine_core::audit::event::AuditAction::ErsRefer,
        spine_core::audit::event::AuditAction::ErsBook,
        spine_core::audit::event::AuditAction::ErsCancelBooking,
    ] {
        assert!(
            actions.contains(&action),
            "{action:?} missing from {actions:?}"
        );
    }
    engine.shutdown().unwrap();
}

#[test]
fn a_provider_publishes_only_its_own_services_and_a_retry_gets_the_same_slots() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let mut foreign = service(13_000, "CARDIOLOGY");
    foreign.provider = "Y90002".parse().unwrap();
    let denied = refusal(submit(
        &handle,
        request(
            demo_ids::APPOINTMENTS_MANAGER,
            Operation::ErsPublishService { service: foreign },
        ),
    ));
    assert_eq!(denied.code, ErrorCode::AccessDenied, "{denied}");
    let mine = service(CARDIOLOGY, "CARDIOLOGY");
    publish(&handle, &mine, 1);
    let publication = request(
        demo_ids::APPOINTMENTS_MANAGER,
        Operation::ErsPublishSlots {
            service: mine.id,
            slots: vec![NewSlot {
                start: SlotStart::new("2031-03-04".parse().unwrap(), 600).unwrap(),
                duration_minutes: 30,
            }],
        },
    );
    let first = submit(&handle, publication.clone());
    assert_eq!(submit(&handle, publication), first);
    let Ok(Reply::Slots(slots)) = first else {
        panic!("expected slots, got {first:?}")
    };
    assert_eq!(slots[0].id(), SlotId::of_service(mine.id, 1));
    let empty = refusal(submit(
        &handle,
        request(
            demo_ids::APPOINTMENTS_MANAGER,
            Operation::ErsPublishSlots {
                service: mine.id,
                slots: Vec::new(),
            },
        ),
    ));
    assert_eq!(empty.code, ErrorCode::InvalidValue, "{empty}");
    engine.shutdown().unwrap();
}

#[test]
fn many_clients_racing_for_the_same_slots_leave_each_slot_with_one_booking() {
    const SLOTS: u16 = 12;
    const REFERRALS: usize = 36;
    const THREADS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let patients = population(62, REFERRALS);
    load(&handle, &patients);
    let slots = Arc::new(publish(&handle, &service(CARDIOLOGY, "CARDIOLOGY"), SLOTS));
    let referrals: Vec<Ubrn> = patients
        .iter()
        .map(|patient| refer(&handle, patient.nhs_number, &[CARDIOLOGY]).ubrn())
        .collect();
    let mut threads = Vec::new();
    for thread in 0..THREADS {
        let (handle, slots) = (handle.clone(), Arc::clone(&slots));
        let mine: Vec<Ubrn> = referrals
            .iter()
            .skip(thread)
            .step_by(THREADS)
            .copied()
            .collect();
        threads.push(std::thread::spawn(move || {
            let mut rng = random(thread as u64);
            let mut booked = 0;
            // Every referral tries every slot, starting at a random one, until one is its.
            for ubrn in mine {
                let start = rng.next_u64() as usize;
                for offset in 0..slots.len() {
                    let slot = &slots[(start + offset) % slots.len()];
                    match book(&handle, ubrn, slot) {
                        Ok(_) => {
                            booked += 1;
                            break;
                        }
                        Err(refusal) => assert_eq!(
                            refusal.code,
                            ErrorCode::SlotNotAvailable,
                            "only a taken slot may refuse: {refusal}"
                        ),
                    }
                }
            }
            booked
        }));
    }
    let booked: usize = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .sum();
    assert_eq!(
        booked,
        usize::from(SLOTS),
        "every slot booked once, no more"
    );
    assert!(free_ids(&handle, "CARDIOLOGY").is_empty());
    let mut held = HashSet::new();
    for ubrn in referrals {
        let found = referral(submit(
            &handle,
            request(demo_ids::GP, Operation::ErsRetrieveReferral { ubrn }),
        ));
        assert!(found.pending().is_none(), "{ubrn} left pending");
        if let Some(slot) = booked_slot(&found) {
            assert!(held.insert(slot), "slot {slot} booked twice");
        }
    }
    assert_eq!(held.len(), usize::from(SLOTS));
    engine.shutdown().unwrap();
}

/// Runs one input on shard `shard`'s log with the engine stopped, as if the engine had done
/// it and then crashed before the next step; returns the output.
fn run_offline(config: &EngineConfig, shard: usize, input: ShardInput) -> ShardOutput {
    let (log, _) = Log::open_with(config.log_config(shard), Arc::new(ShardIndexes)).unwrap();
    let shard_config = ShardConfig {
        nhs_stems: config.nhs_stems.clone(),
        ..ShardConfig::new(shard, config.shards)
    };
    let mut state = ShardState::open(shard_config, Arc::new(demo()), &log).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut turn = state.execute(&log, now_ms, vec![input]);
    if !turn.records.is_empty() {
        let batch = log.try_append_batch(turn.records).unwrap();
        pollster::block_on(batch.durable()).unwrap();
    }
    log.close().unwrap();
    turn.outputs.remove(0)
}

fn setup_for_repair(dir: &Path) -> (Vec<Slot>, Referral, Referral) {
    let engine = start(dir);
    let handle = engine.handle();
    let patients = population(63, 2);
    load(&handle, &patients);
    let slots = publish(&handle, &service(CARDIOLOGY, "CARDIOLOGY"), 2);
    let pending = refer(&handle, patients[0].nhs_number, &[CARDIOLOGY]);
    let owing = refer(&handle, patients[1].nhs_number, &[CARDIOLOGY]);
    referral(book(&handle, owing.ubrn(), &slots[1]));
    engine.shutdown().unwrap();
    (slots, pending, owing)
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn bookings_cut_off_between_shards_are_settled_when_the_engine_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (slots, pending, owing) = setup_for_repair(dir.path());
    let config = common::config(dir.path());
    let referral_shard = |ubrn: Ubrn| shard::shard_of(ubrn.value(), config.shards);
    let slot_shard = shard::shard_of(service_home_value(ServiceId(CARDIOLOGY)), config.shards);

    // Step 1 of a booking of slot 0 ran (the referral is pending), then a crash.
    let book_request = Arc::new(request(
        demo_ids::GP,
        Operation::ErsBook {
            ubrn: pending.ubrn(),
            slot: slots[0].id(),
            service: ServiceId(CARDIOLOGY),
        },
    ));
    let begun = run_offline(
        &config,
        referral_shard(pending.ubrn()),
        ShardInput::ErsReferral {
            request: Arc::clone(&book_request),
            ubrn: pending.ubrn(),
            step: ReferralStep::Begin,
        },
    );
    let ShardOutput::ErsReferral(Ok(outcome)) = begun else {
        panic!("expected a referral step, got {begun:?}")
    };
    let ReferralAnswer::BookSlot(booking) = outcome.answer else {
        panic!("expected a booking begun, got {:?}", outcome.answer)
    };
    // ... and step 2 too: the slot is booked, the referral still pending.
    let decided = run_offline(
        &config,
        slot_shard,
        ShardInput::ErsSlot(SlotStep::Book {
            ubrn: pending.ubrn(),
            booking,
        }),
    );
    assert!(
        matches!(decided, ShardOutput::ErsSlot(Ok(_))),
        "{decided:?}"
    );

    // The other referral's booking was cancelled on its shard, but the slot never heard.
    let cancel = Arc::new(request(
        demo_ids::GP,
        Operation::ErsUpdateReferral {
            ubrn: owing.ubrn(),
            action: ReferralAction::CancelBooking,
        },
    ));
    let cancelled = run_offline(
        &config,
        referral_shard(owing.ubrn()),
        ShardInput::ErsReferral {
            request: cancel,
            ubrn: owing.ubrn(),
            step: ReferralStep::Change { free_slots: 0 },
        },
    );
    let ShardOutput::ErsReferral(Ok(outcome)) = cancelled else {
        panic!("expected a referral step, got {cancelled:?}")
    };
    assert_eq!(outcome.releasing.len(), 1, "the release is owed");

    // The restart settles both (the engine runs the repair itself; running it again here
    // is harmless and lets the test wait for it).
    let engine = start(dir.path());
    let handle = engine.handle();
    pollster::block_on(handle.repair_referrals()).unwrap();
    let settled = referral(submit(
        &handle,
        request(
            demo_ids::GP,
            Operation::ErsRetrieveReferral {
                ubrn: pending.ubrn(),
            },
        ),
    ));
    assert_eq!(booked_slot(&settled), Some(slots[0].id()));
    assert_eq!(
        free_ids(&handle, "CARDIOLOGY"),
        vec![slots[1].id()],
        "the cancelled booking's slot is free again, the settled one's taken"
    );
    // The interrupted request, retried, gets the booking it began.
    let retried = submit(&handle, (*book_request).clone());
    assert_eq!(booked_slot(&referral(retried)), Some(slots[0].id()));
    let again = pollster::block_on(handle.repair_referrals()).unwrap();
    assert_eq!(again, Default::default(), "nothing is left to repair");
    engine.shutdown().unwrap();
}

/// The set-up of a late replay: a referral booked slot 0 (the request and its answer are
/// returned), then moved to slot 1; slot 0 was then booked by another referral and released.
fn book_and_move_on(dir: &Path) -> (Vec<Slot>, Request, Referral) {
    let engine = start(dir);
    let handle = engine.handle();
    let patients = population(64, 2);
    load(&handle, &patients);
    let slots = publish(&handle, &service(CARDIOLOGY, "CARDIOLOGY"), 2);
    let moving = refer(&handle, patients[0].nhs_number, &[CARDIOLOGY]);
    let other = refer(&handle, patients[1].nhs_number, &[CARDIOLOGY]);
    let first_request = request(
        demo_ids::GP,
        Operation::ErsBook {
            ubrn: moving.ubrn(),
            slot: slots[0].id(),
            service: ServiceId(CARDIOLOGY),
        },
    );
    let first = referral(submit(&handle, first_request.clone()));
    referral(book(&handle, moving.ubrn(), &slots[1]));
    referral(book(&handle, other.ubrn(), &slots[0]));
    referral(change(&handle, other.ubrn(), ReferralAction::CancelBooking));
    assert_eq!(free_ids(&handle, "CARDIOLOGY"), vec![slots[0].id()]);
    drop(handle);
    engine.shutdown().unwrap();
    (slots, first_request, first)
}

/// A booking's step on the slot replayed late (a duplicate of the request, or a repair working
/// from a stale list), after its referral moved on and the slot was booked and released by
/// another: the replay takes the free slot, and its finish makes the referral owe the slot
/// back, durably, so that a restart frees it.
#[test]
fn a_late_replay_that_takes_a_slot_is_owed_back_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let (slots, first_request, first) = book_and_move_on(dir.path());
    let late_booking = *first.booking().unwrap();
    let config = common::config(dir.path());
    let slot_shard = shard::shard_of(service_home_value(ServiceId(CARDIOLOGY)), config.shards);
    let referral_shard = shard::shard_of(first.ubrn().value(), config.shards);
    // The late replay reaches the slot, which only remembers its last release: it is taken.
    let replayed = run_offline(
        &config,
        slot_shard,
        ShardInput::ErsSlot(SlotStep::Book {
            ubrn: first.ubrn(),
            booking: late_booking,
        }),
    );
    assert!(
        matches!(replayed, ShardOutput::ErsSlot(Ok(_))),
        "{replayed:?}"
    );
    // Its finish: the duplicate gets the request's first answer, and the slot is owed back.
    let finished = run_offline(
        &config,
        referral_shard,
        ShardInput::ErsReferral {
            request: Arc::new(first_request),
            ubrn: first.ubrn(),
            step: ReferralStep::Finish {
                booking: late_booking,
                booked: Ok(()),
            },
        },
    );
    let ShardOutput::ErsReferral(Ok(outcome)) = finished else {
        panic!("expected a referral step, got {finished:?}")
    };
    assert_eq!(
        outcome.answer,
        ReferralAnswer::Done(Ok(Reply::Referral(first.clone())))
    );
    assert_eq!(
        outcome.releasing,
        vec![late_booking],
        "the slot is owed back"
    );

    // The restart's repair releases it (a crash right after the finish loses nothing).
    let engine = start(dir.path());
    let handle = engine.handle();
    pollster::block_on(handle.repair_referrals()).unwrap();
    assert_eq!(free_ids(&handle, "CARDIOLOGY"), vec![slots[0].id()]);
    let retrieve = Operation::ErsRetrieveReferral { ubrn: first.ubrn() };
    let moved = referral(submit(&handle, request(demo_ids::GP, retrieve)));
    assert_eq!(booked_slot(&moved), Some(slots[1].id()));
    engine.shutdown().unwrap();
}
