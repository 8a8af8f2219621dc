//! The e-Referral Service's requests that span shards: the slot search (every shard's free
//! slots, merged), and the booking's steps between the referral's shard and the slot's (see
//! [`crate::ers`] for why it is safe):
//!
//! 1. the referral's shard begins the booking (stored as pending, named by the request id);
//! 2. the slot's shard books the slot, or refuses (the only place a slot is taken);
//! 3. the referral's shard confirms or aborts, and answers;
//! 4. slots the referral no longer holds (a rebooking's old slot, a cancelled booking's) are
//!    released on their shards, and the referral's shard told.
//!
//! Any step a failure cuts off is finished later by replaying it: a retry of the request
//! resumes its own pending booking, a request finding another booking pending settles it
//! first, and [`Coordinator::repair_referrals`] (run when the engine starts) settles every
//! pending booking and owed release, checking first that each booking it found is still
//! pending. Replays are safe while other messages are still in flight: booking a slot is
//! idempotent for the booking that holds it, and a replay that comes so late it takes a slot
//! its referral no longer wants is owed back by the referral when it finishes (see
//! [`crate::ers`]).

use std::sync::Arc;

use uuid::Uuid;

use super::{Coordinator, ShardLinks, unexpected};
use crate::access::{Activity, Caller, Justification};
use crate::ers::{Booking, BookingRefusal, ReferralAction, SlotQuery, Ubrn};
use crate::request::{ErrorCode, Operation, Refusal, Reply, Request, Response, service_home_value};
use crate::shard::ers::{ReferralAnswer, ReferralOutcome, ReferralStep, SlotAnswer, SlotStep};
use crate::shard::{self, ShardInput, ShardOutput};

/// Free slots a deferral check counts, at most (the refusal says how many there are).
const FREE_SLOTS_COUNTED_MAX: usize = 100;
/// Referrals one shard lists per repair pass.
const REPAIR_BATCH: usize = 10_000;

/// What a repair found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Pending bookings settled (confirmed or aborted).
    pub bookings_settled: usize,
    /// Slot releases completed.
    pub releases_completed: usize,
}

/// The Spine's own stand-in for a request when it finishes a step on nobody's behalf: audit
/// events name it (user nil, role `spine-repair`), and it is not a write, so no outcome is
/// remembered under its id.
fn repair_request(ubrn: Ubrn) -> Arc<Request> {
    Arc::new(Request {
        id: Uuid::nil(),
        caller: Caller {
            user: Uuid::nil(),
            role_profile: "spine-repair".into(),
            organisation: None,
            asid: 0,
        },
        justification: Justification::None,
        operation: Operation::ErsRetrieveReferral { ubrn },
    })
}

impl<L: ShardLinks + ?Sized> Coordinator<'_, L> {
    /// Free slots on every shard, soonest first, cut at the query's limit. A search discloses
    /// no patient, so it is not audited.
    pub(super) async fn ers_search(&self, request: Request) -> Response {
        let Operation::ErsSearchSlots { query } = request.operation else {
            return Err(unexpected(&ShardOutput::Audited));
        };
        if let Err(denied) = self
            .directory
            .authorise(&request.caller, Activity::ErsRefer)
        {
            return Err(Refusal::new(ErrorCode::AccessDenied, denied));
        }
        query
            .validate()
            .map_err(|error| Refusal::from(BookingRefusal::from(error)))?;
        let limit = query.limit as usize;
        let query: Arc<SlotQuery> = Arc::new(query);
        let outputs = self
            .scatter(|_| {
                Some(ShardInput::ErsSearchLocal {
                    query: Arc::clone(&query),
                })
            })
            .await;
        let mut found = Vec::new();
        for (_, output) in outputs {
            match output? {
                ShardOutput::FreeSlots(slots) => found.extend(slots?),
                other => return Err(unexpected(&other)),
            }
        }
        found.sort_by_key(|free| (free.slot.start(), free.slot.id()));
        found.truncate(limit);
        Ok(Reply::FreeSlots(found))
    }

    /// Books (or rebooks) a slot for a referral.
    pub(super) async fn ers_book(&self, request: Request) -> Response {
        let Operation::ErsBook { ubrn, .. } = request.operation else {
            return Err(unexpected(&ShardOutput::Audited));
        };
        self.referral_request(Arc::new(request), ubrn, ReferralStep::Begin)
            .await
    }

    /// Cancels a booking, defers to a provider or cancels a referral.
    pub(super) async fn ers_update_referral(&self, request: Request) -> Response {
        let Operation::ErsUpdateReferral { ubrn, action } = request.operation else {
            return Err(unexpected(&ShardOutput::Audited));
        };
        let free_slots = match action {
            ReferralAction::DeferToProvider { service } => {
                let step = SlotStep::CountFree {
                    service,
                    limit: FREE_SLOTS_COUNTED_MAX,
                };
                match self.slot_step(service_home_value(service), step).await? {
                    Ok(SlotAnswer::Free(free)) => free,
                    Ok(other) => {
                        return Err(Refusal::new(
                            ErrorCode::ServiceUnavailable,
                            format!("internal: a count of free slots answered {other:?}"),
                        ));
                    }
                    Err(refusal) => return Err(refusal),
                }
            }
            ReferralAction::CancelBooking | ReferralAction::Cancel => 0,
        };
        let step = ReferralStep::Change { free_slots };
        self.referral_request(Arc::new(request), ubrn, step).await
    }

    /// Runs a booking or change on the referral's shard; settles another booking found
    /// pending (once) and asks again; completes a booking begun; releases what the referral
    /// owes.
    async fn referral_request(
        &self,
        request: Arc<Request>,
        ubrn: Ubrn,
        step: ReferralStep,
    ) -> Response {
        let mut settled = false;
        loop {
            let outcome = self.referral_step(&request, ubrn, step.clone()).await?;
            let outcome = match outcome.answer {
                ReferralAnswer::BookSlot(booking) => {
                    self.complete_booking(&request, ubrn, booking).await?
                }
                ReferralAnswer::Settle(pending) if !settled => {
                    settled = true;
                    let repair = repair_request(ubrn);
                    let finished = self.complete_booking(&repair, ubrn, pending).await?;
                    self.release_owed(ubrn, &finished.releasing).await;
                    continue;
                }
                ReferralAnswer::Settle(pending) => {
                    return Err(Refusal::new(
                        ErrorCode::ServiceUnavailable,
                        format!(
                            "booking {} of referral {ubrn} is still pending; retry later",
                            pending.booking_id
                        ),
                    ));
                }
                _ => outcome,
            };
            self.release_owed(ubrn, &outcome.releasing).await;
            return match outcome.answer {
                ReferralAnswer::Done(response) => response,
                other => Err(Refusal::new(
                    ErrorCode::ServiceUnavailable,
                    format!("internal: a referral step answered {other:?}"),
                )),
            };
        }
    }

    async fn referral_step(
        &self,
        request: &Arc<Request>,
        ubrn: Ubrn,
        step: ReferralStep,
    ) -> Result<ReferralOutcome, Refusal> {
        let home = shard::shard_of(ubrn.value(), self.shard_count());
        let input = ShardInput::ErsReferral {
            request: Arc::clone(request),
            ubrn,
            step,
        };
        match self.call(home, input).await? {
            ShardOutput::ErsReferral(outcome) => outcome,
            other => Err(unexpected(&other)),
        }
    }

    /// A step on the slot shard of the service with home value `home`. The outer error: the
    /// step's outcome is unknown (it may have been executed); the inner: it was refused, or
    /// never reached the shard, and changed nothing.
    async fn slot_step(
        &self,
        home: u64,
        step: SlotStep,
    ) -> Result<Result<SlotAnswer, Refusal>, Refusal> {
        let shard = shard::shard_of(home, self.shard_count());
        let answer = match self.send(shard, ShardInput::ErsSlot(step)) {
            Ok(answer) => answer,
            Err(refusal) => return Ok(Err(refusal)),
        };
        match Self::answer(shard, answer).await? {
            // Not executed, or its turn not made durable: unknown either way.
            ShardOutput::ErsSlot(Err(refusal)) if refusal.code == ErrorCode::ServiceUnavailable => {
                Err(refusal)
            }
            ShardOutput::ErsSlot(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Steps 2 and 3 of a booking: the slot's shard decides, the referral's shard records.
    /// When the slot's answer is unknown the booking stays pending (a retry or a repair
    /// settles it) and the request is answered `SERVICE_UNAVAILABLE`.
    async fn complete_booking(
        &self,
        request: &Arc<Request>,
        ubrn: Ubrn,
        booking: Booking,
    ) -> Result<ReferralOutcome, Refusal> {
        // The slot's id names its own service: a slot of another service than the booking
        // names is found, and refused as inappropriate, rather than missed.
        let booked = match booking.slot.service() {
            Some(service) => {
                let step = SlotStep::Book { ubrn, booking };
                self.slot_step(service_home_value(service), step)
                    .await
                    .map_err(|unknown| {
                        Refusal::new(
                            ErrorCode::ServiceUnavailable,
                            format!(
                                "the slot's shard did not answer ({unknown}); the booking \
                                 stays pending and is settled by a retry or a restart"
                            ),
                        )
                    })?
                    .map(|_| ())
            }
            None => Err(BookingRefusal::SlotNotFound { slot: booking.slot }.into()),
        };
        let step = ReferralStep::Finish { booking, booked };
        self.referral_step(request, ubrn, step).await
    }

    /// Releases the slots of `owed` and tells the referral's shard which are done. A release
    /// that fails stays owed (the next request on the referral, or a restart, retries it).
    async fn release_owed(&self, ubrn: Ubrn, owed: &[Booking]) -> usize {
        let mut done = Vec::with_capacity(owed.len());
        for booking in owed {
            let Some(service) = booking.slot.service() else {
                done.push(booking.booking_id);
                continue;
            };
            let step = SlotStep::Release { booking: *booking };
            match self.slot_step(service_home_value(service), step).await {
                // Released now or before, or never held by this booking: nothing is owed.
                Ok(Ok(_)) => done.push(booking.booking_id),
                Ok(Err(refusal)) if refusal.code != ErrorCode::ServiceUnavailable => {
                    done.push(booking.booking_id);
                }
                Ok(Err(refusal)) | Err(refusal) => {
                    tracing::warn!(%ubrn, %refusal, "a slot release stays owed");
                }
            }
        }
        if done.is_empty() {
            return 0;
        }
        let released = done.len();
        let step = ReferralStep::Released { booking_ids: done };
        match self.referral_step(&repair_request(ubrn), ubrn, step).await {
            Ok(_) => released,
            Err(refusal) => {
                tracing::warn!(%ubrn, %refusal, "recording slot releases failed; they stay owed");
                0
            }
        }
    }

    /// Settles every pending booking and owed slot release on every shard; run when the
    /// engine starts, and safe at any time.
    pub async fn repair_referrals(&self) -> Result<RepairReport, Refusal> {
        let mut report = RepairReport::default();
        for shard in 0..self.shard_count() {
            loop {
                let items = match self
                    .call(
                        shard,
                        ShardInput::ErsRepairList {
                            limit: REPAIR_BATCH,
                        },
                    )
                    .await?
                {
                    ShardOutput::ErsRepair(items) => items?,
                    other => return Err(unexpected(&other)),
                };
                let more = items.len() == REPAIR_BATCH;
                self.repair_items(items, &mut report).await?;
                if !more {
                    break;
                }
            }
        }
        Ok(report)
    }

    async fn repair_items(
        &self,
        items: Vec<crate::shard::ers::RepairItem>,
        report: &mut RepairReport,
    ) -> Result<(), Refusal> {
        {
            for item in items {
                let mut owed = item.releasing;
                if let Some(pending) = item.pending {
                    // The list may be stale: book the slot only if the booking is still
                    // pending (a request or another repair may have settled it since).
                    let repair = repair_request(item.ubrn);
                    let step = ReferralStep::Resume {
                        booking_id: pending.booking_id,
                    };
                    let resumed = self.referral_step(&repair, item.ubrn, step).await?;
                    owed = resumed.releasing;
                    if let ReferralAnswer::BookSlot(pending) = resumed.answer {
                        let finished = self.complete_booking(&repair, item.ubrn, pending).await?;
                        report.bookings_settled += 1;
                        owed = finished.releasing;
                    }
                }
                report.releases_completed += self.release_owed(item.ubrn, &owed).await;
            }
        }
        Ok(())
    }
}
