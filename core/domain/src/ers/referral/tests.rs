use super::*;
use crate::ers::refusal::ErsErrorCode;

const CARDIOLOGY: ServiceId = ServiceId(11000);
const HEART_FAILURE: ServiceId = ServiceId(11021);
const NOT_SHORTLISTED: ServiceId = ServiceId(12000);
const SLOT: SlotId = SlotId(11000021);
const OTHER_SLOT: SlotId = SlotId(11000022);

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn ubrn() -> Ubrn {
    "000000070000".parse().unwrap()
}

/// The specification's sandbox referral: 000000070000 for patient 9912003888, urgent
/// cardiology.
fn new_referral(shortlist: Vec<ServiceId>) -> Result<Referral, BookingRefusal> {
    create(
        ubrn(),
        "9912003888".parse().unwrap(),
        "A81001".parse().unwrap(),
        "CARDIOLOGY".parse().unwrap(),
        Priority::Urgent,
        shortlist,
    )
}

fn referral() -> Referral {
    new_referral(vec![CARDIOLOGY, HEART_FAILURE]).unwrap()
}

fn booked(booking_id: Uuid) -> Referral {
    let pending = begin_booking(&referral(), SLOT, CARDIOLOGY, booking_id).unwrap();
    confirm_booking(&pending, booking_id).unwrap()
}

/// Asserts the refusal's code and message.
fn refused(result: Result<Referral, BookingRefusal>, code: ErsErrorCode, message: &str) {
    let refusal = result.unwrap_err();
    assert_eq!(refusal.code(), code, "{refusal}");
    assert_eq!(refusal.to_string(), message);
}

#[test]
fn priorities_are_the_specifications_codes() {
    for priority in [Priority::Routine, Priority::Urgent, Priority::TwoWeekWait] {
        assert_eq!(priority.as_str().parse::<Priority>(), Ok(priority));
        assert_eq!(priority.to_string(), priority.as_str());
    }
    assert_eq!(
        "urgent".parse::<Priority>(),
        Err(PriorityError("urgent".into()))
    );
}

#[test]
fn a_new_referral_is_unbooked_at_version_one() {
    let referral = referral();
    assert_eq!(referral.ubrn(), ubrn());
    assert_eq!(referral.patient().to_string(), "9912003888");
    assert_eq!(referral.referrer().as_str(), "A81001");
    assert_eq!(referral.specialty().as_str(), "CARDIOLOGY");
    assert_eq!(referral.priority(), Priority::Urgent);
    assert_eq!(referral.shortlist(), [CARDIOLOGY, HEART_FAILURE]);
    assert_eq!(referral.state(), &ReferralState::Unbooked);
    assert_eq!(referral.state().code(), "NOT_BOOKED");
    assert_eq!(referral.booking(), None);
    assert_eq!(referral.pending(), None);
    assert_eq!(referral.version(), 1);
    assert_eq!(
        referral.history(),
        [HistoryEntry {
            version: 1,
            event: ReferralEvent::Created
        }]
    );
}

#[test]
fn shortlists_have_one_to_twenty_distinct_services() {
    refused(
        new_referral(vec![]),
        ErsErrorCode::MissingValue,
        "the shortlist is empty; a referral needs at least one service",
    );
    let twenty: Vec<ServiceId> = (1..=20).map(ServiceId).collect();
    assert!(new_referral(twenty.clone()).is_ok());
    let mut twenty_one = twenty;
    twenty_one.push(ServiceId(21));
    refused(
        new_referral(twenty_one),
        ErsErrorCode::TooManyItems,
        "the shortlist has 21 services; at most 20 are allowed",
    );
    refused(
        new_referral(vec![CARDIOLOGY, HEART_FAILURE, CARDIOLOGY]),
        ErsErrorCode::DuplicateService,
        "service 11000 appears more than once on the shortlist",
    );
}

#[test]
fn booking_goes_pending_then_booked() {
    let referral = referral();
    let pending = begin_booking(&referral, SLOT, CARDIOLOGY, id(1)).unwrap();
    let booking = Booking {
        booking_id: id(1),
        slot: SLOT,
        service: CARDIOLOGY,
    };
    assert_eq!(
        pending.state(),
        &ReferralState::BookingPending {
            booking,
            prior: PriorState::Unbooked
        }
    );
    assert_eq!(pending.state().code(), "BOOKING_PENDING");
    assert_eq!(pending.pending(), Some(&booking));
    assert_eq!(pending.booking(), None);
    assert!(pending.holds_booking(id(1)));
    assert_eq!(pending.version(), 2);

    let booked = confirm_booking(&pending, id(1)).unwrap();
    assert_eq!(booked.state(), &ReferralState::Booked);
    assert_eq!(booked.state().code(), "BOOKED");
    assert_eq!(booked.booking(), Some(&booking));
    assert_eq!(booked.pending(), None);
    assert_eq!(booked.version(), 3);
    assert_eq!(released_booking(&pending, &booked), None);
    assert_eq!(
        booked.history().last(),
        Some(&HistoryEntry {
            version: 3,
            event: ReferralEvent::BookingConfirmed(booking)
        })
    );
}

#[test]
fn booking_needs_a_shortlisted_service_and_a_bookable_state() {
    refused(
        begin_booking(&referral(), SLOT, NOT_SHORTLISTED, id(1)),
        ErsErrorCode::ServiceNotOnShortlist,
        "service 12000 is not on the shortlist of referral 000000070000",
    );
    let pending = begin_booking(&referral(), SLOT, CARDIOLOGY, id(1)).unwrap();
    refused(
        begin_booking(&pending, OTHER_SLOT, CARDIOLOGY, id(2)),
        ErsErrorCode::InvalidRequestState,
        "cannot book referral 000000070000: it is BOOKING_PENDING",
    );
    refused(
        begin_booking(&booked(id(1)), OTHER_SLOT, CARDIOLOGY, id(2)),
        ErsErrorCode::InvalidRequestState,
        "cannot book referral 000000070000: it is BOOKED",
    );
    let cancelled = cancel_referral(&referral()).unwrap();
    refused(
        begin_booking(&cancelled, SLOT, CARDIOLOGY, id(2)),
        ErsErrorCode::InvalidRequestState,
        "cannot book referral 000000070000: it is CANCELLED_REFERRAL",
    );
    // A deferred referral can still be booked, at any shortlisted service, and goes back to
    // deferred if the slot refuses.
    let deferred = defer_to_provider(&referral(), HEART_FAILURE, 0).unwrap();
    let pending = begin_booking(&deferred, SLOT, CARDIOLOGY, id(3)).unwrap();
    assert_eq!(
        abort_booking(&pending, id(3)).unwrap().state(),
        deferred.state()
    );
    assert!(confirm_booking(&pending, id(3)).is_ok());
}

#[test]
fn an_aborted_booking_returns_to_where_it_was() {
    let referral = referral();
    let pending = begin_booking(&referral, SLOT, CARDIOLOGY, id(1)).unwrap();
    let aborted = abort_booking(&pending, id(1)).unwrap();
    assert_eq!(aborted.state(), &ReferralState::Unbooked);
    assert_eq!(aborted.booking(), None);
    assert!(!aborted.holds_booking(id(1)));
    assert_eq!(aborted.version(), 3);
    assert_eq!(released_booking(&pending, &aborted), None);
}

#[test]
fn confirm_and_abort_name_the_pending_booking() {
    let pending = begin_booking(&referral(), SLOT, CARDIOLOGY, id(1)).unwrap();
    let mismatch = format!(
        "booking {} is not the booking pending on referral 000000070000 ({} is)",
        id(2),
        id(1)
    );
    refused(
        confirm_booking(&pending, id(2)),
        ErsErrorCode::BookingMismatch,
        &mismatch,
    );
    refused(
        abort_booking(&pending, id(2)),
        ErsErrorCode::BookingMismatch,
        &mismatch,
    );
    refused(
        confirm_booking(&referral(), id(1)),
        ErsErrorCode::InvalidRequestState,
        "cannot confirm a booking of referral 000000070000: it is NOT_BOOKED",
    );
    // A confirmation replayed after it was recorded is refused, and changes nothing.
    let booked = confirm_booking(&pending, id(1)).unwrap();
    refused(
        confirm_booking(&booked, id(1)),
        ErsErrorCode::InvalidRequestState,
        "cannot confirm a booking of referral 000000070000: it is BOOKED",
    );
    refused(
        abort_booking(&booked, id(1)),
        ErsErrorCode::InvalidRequestState,
        "cannot abort a booking of referral 000000070000: it is BOOKED",
    );
}

#[test]
fn rebooking_keeps_the_old_booking_until_the_new_one_is_confirmed() {
    let booked = booked(id(1));
    let old = *booked.booking().unwrap();
    refused(
        begin_rebooking(&referral(), OTHER_SLOT, CARDIOLOGY, id(2)),
        ErsErrorCode::InvalidRequestState,
        "cannot rebook referral 000000070000: it is NOT_BOOKED",
    );
    refused(
        begin_rebooking(&booked, OTHER_SLOT, NOT_SHORTLISTED, id(2)),
        ErsErrorCode::ServiceNotOnShortlist,
        "service 12000 is not on the shortlist of referral 000000070000",
    );
    refused(
        begin_rebooking(&booked, OTHER_SLOT, CARDIOLOGY, id(1)),
        ErsErrorCode::InvalidValue,
        &format!(
            "booking {} is already referral 000000070000's; a new booking needs a new id",
            id(1)
        ),
    );

    let rebooking = begin_rebooking(&booked, OTHER_SLOT, HEART_FAILURE, id(2)).unwrap();
    assert_eq!(rebooking.booking(), Some(&old));
    assert!(rebooking.holds_booking(id(1)) && rebooking.holds_booking(id(2)));
    assert!(matches!(
        rebooking.state(),
        ReferralState::BookingPending {
            prior: PriorState::Booked,
            ..
        }
    ));

    let aborted = abort_booking(&rebooking, id(2)).unwrap();
    assert_eq!(aborted.state(), &ReferralState::Booked);
    assert_eq!(aborted.booking(), Some(&old));
    assert_eq!(released_booking(&rebooking, &aborted), None);

    let rebooked = confirm_booking(&rebooking, id(2)).unwrap();
    assert_eq!(
        rebooked.booking(),
        Some(&Booking {
            booking_id: id(2),
            slot: OTHER_SLOT,
            service: HEART_FAILURE
        })
    );
    assert!(!rebooked.holds_booking(id(1)));
    assert_eq!(released_booking(&rebooking, &rebooked), Some(old));
}

#[test]
fn cancelling_a_booking_unbooks_and_releases_it() {
    let booked = booked(id(1));
    let cancelled = cancel_booking(&booked).unwrap();
    assert_eq!(cancelled.state(), &ReferralState::Unbooked);
    assert_eq!(cancelled.booking(), None);
    assert_eq!(
        released_booking(&booked, &cancelled),
        booked.booking().copied()
    );
    refused(
        cancel_booking(&cancelled),
        ErsErrorCode::InvalidRequestState,
        "cannot cancel the booking of referral 000000070000: it is NOT_BOOKED",
    );
    let rebooking = begin_rebooking(&booked, OTHER_SLOT, CARDIOLOGY, id(2)).unwrap();
    refused(
        cancel_booking(&rebooking),
        ErsErrorCode::InvalidRequestState,
        "cannot cancel the booking of referral 000000070000: it is BOOKING_PENDING",
    );
}

#[test]
fn deferral_needs_an_unbooked_referral_and_no_free_slot() {
    let deferred = defer_to_provider(&referral(), HEART_FAILURE, 0).unwrap();
    assert_eq!(
        deferred.state(),
        &ReferralState::DeferredToProvider {
            service: HEART_FAILURE
        }
    );
    assert_eq!(deferred.state().code(), "DEFERRED_TO_PROVIDER");
    assert_eq!(deferred.version(), 2);
    refused(
        defer_to_provider(&referral(), HEART_FAILURE, 3),
        ErsErrorCode::SlotsCurrentlyAvailable,
        "service 11021 has 3 free slots; book one instead of deferring",
    );
    refused(
        defer_to_provider(&referral(), NOT_SHORTLISTED, 0),
        ErsErrorCode::ServiceNotOnShortlist,
        "service 12000 is not on the shortlist of referral 000000070000",
    );
    refused(
        defer_to_provider(&deferred, CARDIOLOGY, 0),
        ErsErrorCode::InvalidRequestState,
        "cannot defer referral 000000070000: it is DEFERRED_TO_PROVIDER",
    );
    refused(
        defer_to_provider(&booked(id(1)), CARDIOLOGY, 0),
        ErsErrorCode::InvalidRequestState,
        "cannot defer referral 000000070000: it is BOOKED",
    );
}

#[test]
fn cancelling_a_referral_is_final_and_releases_its_booking() {
    for before in [
        referral(),
        defer_to_provider(&referral(), CARDIOLOGY, 0).unwrap(),
        booked(id(1)),
    ] {
        let cancelled = cancel_referral(&before).unwrap();
        assert_eq!(cancelled.state(), &ReferralState::Cancelled);
        assert_eq!(cancelled.booking(), None);
        assert_eq!(
            released_booking(&before, &cancelled),
            before.booking().copied()
        );
        assert_eq!(
            cancelled.history().last().map(|entry| entry.event),
            Some(ReferralEvent::Cancelled {
                released: before.booking().copied()
            })
        );
        refused(
            cancel_referral(&cancelled),
            ErsErrorCode::InvalidRequestState,
            "cannot cancel referral 000000070000: it is CANCELLED_REFERRAL",
        );
    }
    let pending = begin_booking(&referral(), SLOT, CARDIOLOGY, id(1)).unwrap();
    refused(
        cancel_referral(&pending),
        ErsErrorCode::InvalidRequestState,
        "cannot cancel referral 000000070000: it is BOOKING_PENDING",
    );
}

#[test]
fn history_is_bounded_and_keeps_the_latest() {
    let mut referral = referral();
    for n in 0..40 {
        let pending = begin_booking(&referral, SLOT, CARDIOLOGY, id(n)).unwrap();
        referral = abort_booking(&pending, id(n)).unwrap();
    }
    assert_eq!(referral.version(), 81);
    assert_eq!(referral.history().len(), HISTORY_MAX);
    let versions: Vec<u32> = referral
        .history()
        .iter()
        .map(|entry| entry.version)
        .collect();
    assert_eq!(versions, (50..=81).collect::<Vec<_>>());
}

#[test]
fn the_last_version_cannot_step() {
    let mut last = referral();
    last.version = u32::MAX;
    refused(
        cancel_referral(&last),
        ErsErrorCode::InvalidRequestState,
        "referral 000000070000 has reached its last version and cannot change",
    );
}

fn parts(referral: &Referral) -> ReferralParts {
    ReferralParts {
        ubrn: referral.ubrn,
        patient: referral.patient,
        referrer: referral.referrer.clone(),
        specialty: referral.specialty.clone(),
        priority: referral.priority,
        shortlist: referral.shortlist.clone(),
        state: referral.state,
        booking: referral.booking,
        version: referral.version,
        history: referral.history.clone(),
    }
}

#[test]
fn a_referral_rebuilt_from_its_parts_keeps_the_rules() {
    let rebooking = begin_rebooking(&booked(id(1)), OTHER_SLOT, CARDIOLOGY, id(2)).unwrap();
    for referral in [referral(), booked(id(1)), rebooking] {
        assert_eq!(Referral::from_parts(parts(&referral)), Ok(referral));
    }
    let rebuilt = |broken: &Referral| Referral::from_parts(parts(broken)).unwrap_err();
    let mut broken = referral();
    broken.booking = Some(Booking {
        booking_id: id(1),
        slot: SLOT,
        service: CARDIOLOGY,
    });
    assert_eq!(
        rebuilt(&broken),
        "a NOT_BOOKED referral cannot have a booking"
    );
    let mut broken = booked(id(1));
    broken.booking = None;
    assert_eq!(rebuilt(&broken), "a BOOKED referral must have a booking");
    let mut broken = referral();
    broken.shortlist.clear();
    assert_eq!(
        rebuilt(&broken),
        "the shortlist is empty; a referral needs at least one service"
    );
    let mut broken = referral();
    broken.version = 0;
    assert_eq!(rebuilt(&broken), "version 0 with 1 history entries");
}
