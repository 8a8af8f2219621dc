//! One shard's logic as a sans-IO state machine.
//!
//! A shard owns a slice of the data (every patient whose NHS number hashes to it, with that
//! patient's audit trail) in its own log. The runtime hands it the requests it has gathered;
//! [`ShardState::execute`] runs them all and returns one [`Turn`]: the records to append, in
//! order, and one output per input. The runtime appends the records as one batch and releases
//! the outputs only when that batch, and every batch before it, is durable: nothing is
//! acknowledged or disclosed before the record of it is on disk.
//!
//! While a turn's batch is in flight the next turn may run. Writes it makes are kept in an
//! overlay ([`ShardState`]'s `pending`), which reads consult before the log, so a second update
//! sees the first and version checks stay exact; [`ShardState::durable`] drops the overlay's
//! entries once the log holds them.
//!
//! Reads go through [`Store`], implemented by the log and by an in-memory model, so tests and
//! simulations drive the same code without files.
//!
//! - `id_allocation.rs`: the ids a shard issues (prescription ids, UBRNs, transfer ids).
//! - `record_layout.rs`: how the shard lays its data out in its log: record kinds and their
//!   payload versions, key namespaces and secondary indexes (`core/RECORDS.md`).
//! - `records/`: the payloads' types of their own (patient, SCR, prescription and slot so far),
//!   with their conversions to and from the domain's.
//! - `pds.rs`: the PDS operations.
//! - `scr.rs`: the Summary Care Record operations.
//! - `eps.rs`: the Electronic Prescription Service's operations.
//! - `ers.rs`: the e-Referral Service's: services, slots, referrals and each shard's side of a
//!   booking.
//! - `gp2gp.rs`: GP2GP record transfers: chunks uploaded, checked, downloaded, delivered.
//! - `audit_queries.rs`: the audit trail of a patient and the alerts of an organisation.
//! - `outcomes.rs`, `meta.rs`, `alerts.rs`: the records behind idempotency, counters and alerts,
//!   encoded as the crate's `versioned.rs` says.

pub mod alerts;
pub mod audit_queries;
mod eps;
pub mod ers;
mod gp2gp;
mod id_allocation;
pub mod meta;
pub mod outcomes;
mod pds;
pub mod record_layout;
pub mod records;
pub mod registrations;
pub mod restricted;
pub mod retention;
mod scr;
pub mod store;

pub use eps::RELEASE_LIMIT_MAX;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use spine_storage::{Key, NewRecord, Position};

use crate::access::{Caller, Directory};
use crate::audit::chain::{AuditChain, ChainRecord, RECORD_PREFIX_SIZE};
use crate::audit::event::{AccessAlert, AuditAction, AuditEvent, AuditOutcome};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::search::{Score, SearchQuery};
use crate::request::{ErrorCode, Refusal, Request, Response};
use alerts::AlertRecord;
use meta::ShardMeta;
use outcomes::{OutcomeRecord, OutcomeSlots, WriteOutcome, Written};
use store::Store;

pub use spine_domain::routing::{shard_of, shard_of_request};

/// A shard's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// This shard's number.
    pub shard: usize,
    /// How many shards there are.
    pub shards: usize,
    /// Nine-digit stems NHS numbers are allocated from (the tenth digit is the check digit).
    pub nhs_stems: Range<u64>,
    /// Write outcomes remembered for idempotent retries (the ring's slots).
    pub outcome_slots: usize,
    /// Index entries one search may read on this shard, at most; a broader search is refused
    /// with `TOO_MANY_MATCHES`.
    pub search_candidates_max: usize,
}

impl ShardConfig {
    /// Shard `shard` of `shards`, allocating synthetic NHS numbers (`9xxxxxxxxx`, never issued
    /// to people), remembering 16,384 write outcomes.
    pub fn new(shard: usize, shards: usize) -> Self {
        assert!(shard < shards, "shard {shard} of {shards}");
        Self {
            shard,
            shards,
            nhs_stems: 900_000_000..crate::pds::synthetic::POPULATION_FIRST_STEM,
            outcome_slots: 16_384,
            search_candidates_max: 20_000,
        }
    }
}

/// One request, or one step of a request spanning shards, handed to a shard.
#[derive(Clone, Debug)]
pub enum ShardInput {
    /// A request this shard executes whole (it names a patient at home here).
    Execute(Request),
    /// The first outcome of this write request, if it was executed here before.
    LookupOutcome(Request),
    /// Create a patient here; `duplicates` is how many registered people a trace found.
    Create {
        /// The create request.
        request: Request,
        /// People the trace found.
        duplicates: usize,
    },
    /// The patients at home here matching a validated, authorised query, with scores; no more
    /// than `limit` (more is reported as `TOO_MANY_MATCHES`). Discloses nothing.
    SearchLocal {
        /// The query.
        query: Arc<SearchQuery>,
        /// Matches allowed in total.
        limit: usize,
    },
    /// Disclose the chosen matches of a search: read, audit, return.
    Disclose {
        /// The search request.
        request: Arc<Request>,
        /// The matches at home here, with their scores.
        matches: Vec<(NhsNumber, Score)>,
    },
    /// Release nominated prescriptions waiting here to the caller's pharmacy, at most
    /// `limit`.
    ReleaseNominated {
        /// The release request.
        request: Arc<Request>,
        /// Prescriptions still wanted.
        limit: usize,
    },
    /// One step of an e-RS booking or referral change, on the referral's shard.
    ErsReferral {
        /// The request (or, for a repair, the Spine's own stand-in for it).
        request: Arc<Request>,
        /// The referral.
        ubrn: crate::ers::Ubrn,
        /// The step.
        step: ers::ReferralStep,
    },
    /// A decision on a slot, on its service's shard.
    ErsSlot(ers::SlotStep),
    /// The free slots here that a validated, authorised search finds.
    ErsSearchLocal {
        /// The search.
        query: Arc<crate::ers::SlotQuery>,
    },
    /// Referrals here with a booking pending or a slot release owed, at most `limit`.
    ErsRepairList {
        /// Most to list.
        limit: usize,
    },
    /// Append an audit event for a request that disclosed no patient.
    Audit {
        /// The request.
        request: Arc<Request>,
        /// What was done.
        action: AuditAction,
        /// How it ended.
        outcome: AuditOutcome,
    },
}

/// What a shard answers to one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardOutput {
    /// The response to an `Execute`, `Create` or `Disclose`.
    Response(Response),
    /// The answer to a `LookupOutcome`.
    Outcome(Option<Response>),
    /// The answer to a `SearchLocal`.
    Candidates(Result<Vec<(NhsNumber, Score)>, Refusal>),
    /// An `Audit` event was appended.
    Audited,
    /// The prescriptions a `ReleaseNominated` released here.
    Released(Result<Vec<crate::eps::Prescription>, Refusal>),
    /// The answer to an `ErsReferral` step.
    ErsReferral(Result<ers::ReferralOutcome, Refusal>),
    /// The answer to an `ErsSlot` step.
    ErsSlot(Result<ers::SlotAnswer, Refusal>),
    /// The answer to an `ErsSearchLocal`.
    FreeSlots(Result<Vec<crate::ers::FreeSlot>, Refusal>),
    /// The answer to an `ErsRepairList`.
    ErsRepair(Result<Vec<ers::RepairItem>, Refusal>),
}

/// The result of one turn: records to append as one batch, and the outputs to release once it
/// is durable.
#[derive(Debug)]
pub struct Turn {
    /// The turn's number (consecutive from 1).
    pub number: u64,
    /// The log index the first record will get.
    pub first_index: u64,
    /// The records, in order; the last is the shard's metadata when there are any.
    pub records: Vec<NewRecord>,
    /// One output per input, in input order.
    pub outputs: Vec<ShardOutput>,
}

/// A write the log does not hold yet.
#[derive(Clone, Debug)]
struct Pending {
    index: u64,
    kind: u8,
    /// The payload, for records read back (patients, outcomes); `None` for audit events, of
    /// which only the index is needed (to link the next one), and for deletions.
    payload: Option<Bytes>,
    /// The record deletes its key: reads find nothing.
    deleted: bool,
    turn: u64,
}

/// Why a shard cannot open.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Read(#[from] spine_storage::ReadError),
    /// A record this shard wrote does not decode.
    #[error("record {index}: {what} does not decode")]
    Damaged {
        /// The record's log index.
        index: u64,
        /// What it was meant to be.
        what: &'static str,
    },
}

/// One shard's state between turns.
pub struct ShardState {
    config: ShardConfig,
    directory: Arc<Directory>,
    meta: ShardMeta,
    chain: AuditChain,
    outcomes: OutcomeSlots,
    /// The index the next appended record will get (the shard is its log's only appender).
    next_index: u64,
    turn: u64,
    pending: HashMap<Key, Pending>,
    /// Versions still in flight that a later write in flight replaced, by log index, for
    /// records whose history is read back by index (Summary Care Records).
    superseded: HashMap<u64, Superseded>,
}

/// Capacity an overlay map may keep however few entries it holds (eight times this before it
/// is shrunk).
const OVERLAY_CAPACITY_KEPT: usize = 1024;

/// Gives back the capacity of an overlay map that a burst (a bulk load's large turns) grew far
/// beyond what it holds now: `retain` visits every bucket, so a map left at the burst's size
/// made every later turn pay for it (`retain` was 1.6 % of a shard's samples at 70,000
/// requests a second, 1.0 % with this).
fn shrink_after_burst<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 8 * map.len().max(OVERLAY_CAPACITY_KEPT) {
        map.shrink_to((2 * map.len()).max(OVERLAY_CAPACITY_KEPT));
    }
}

/// A replaced version not yet durable.
#[derive(Clone, Debug)]
struct Superseded {
    payload: Bytes,
    turn: u64,
}

/// The records a turn is building, with their indexes.
struct TurnRecords {
    number: u64,
    first_index: u64,
    records: Vec<NewRecord>,
}

impl TurnRecords {
    fn next_index(&self) -> u64 {
        self.first_index + self.records.len() as u64
    }
}

impl ShardState {
    /// Opens a shard over what `store` holds: reads the metadata record, replays the records
    /// written after it, and rebuilds the outcome ring.
    pub fn open<S: Store>(
        config: ShardConfig,
        directory: Arc<Directory>,
        store: &S,
    ) -> Result<Self, ShardError> {
        let first_stem = config.nhs_stems.start;
        let (mut meta, meta_index) = match store.get(record_layout::META_KEY, |stored| {
            (ShardMeta::decode(stored.payload), stored.index)
        })? {
            Some((Some(meta), index)) => (meta, index),
            Some((None, index)) => {
                return Err(ShardError::Damaged {
                    index,
                    what: "shard metadata",
                });
            }
            None => (ShardMeta::new(first_stem), 0),
        };
        let last = store.last_index();
        // Records after the metadata record: a turn whose metadata a crash cut off.
        for index in meta_index + 1..=last {
            let damaged = |what| ShardError::Damaged { index, what };
            let replayed = store.read(index, |stored| -> Result<(), ShardError> {
                match stored.kind {
                    record_layout::KIND_AUDIT => {
                        let record = ChainRecord::parse(stored.payload)
                            .ok_or_else(|| damaged("audit event"))?;
                        meta.chain_sequence = record.sequence;
                        meta.chain_hash = record.hash;
                    }
                    record_layout::KIND_ALERT => {
                        let key = stored.key.ok_or_else(|| damaged("alert"))?;
                        meta.alert_sequence = (key.get() & ((1 << 56) - 1)) + 1;
                    }
                    record_layout::KIND_OUTCOME => {
                        let record = records::outcome::decode(stored.payload)
                            .ok_or_else(|| damaged("write outcome"))?;
                        meta.outcome_sequence = record.sequence + 1;
                    }
                    record_layout::KIND_PATIENT => {
                        let key = stored.key.ok_or_else(|| damaged("patient"))?;
                        let stem = (key.get() & ((1 << 56) - 1)) / 10;
                        if config.nhs_stems.contains(&stem) {
                            meta.nhs_cursor = meta.nhs_cursor.max(stem + 1);
                        }
                    }
                    _ => {}
                }
                Ok(())
            })?;
            replayed.transpose()?;
        }
        let outcomes = rebuild_outcomes(store, &config, &meta)?;
        Ok(Self {
            chain: AuditChain::resume(meta.chain_head()),
            config,
            directory,
            meta,
            outcomes,
            next_index: last + 1,
            turn: 0,
            pending: HashMap::new(),
            superseded: HashMap::new(),
        })
    }

    /// The shard's settings.
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// The audit chain's head after the last turn.
    pub fn chain_head(&self) -> crate::audit::chain::ChainHead {
        self.chain.head()
    }

    /// Writes not yet durable (overlay entries).
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    /// Runs `inputs` against the log as `store` holds it plus the overlay, at time `now_ms`.
    pub fn execute<S: Store>(&mut self, store: &S, now_ms: u64, inputs: Vec<ShardInput>) -> Turn {
        self.turn += 1;
        let mut turn = TurnRecords {
            number: self.turn,
            first_index: self.next_index,
            // Most inputs write one or two records; the metadata record closes the turn.
            records: Vec::with_capacity(inputs.len() * 2 + 1),
        };
        store.prefetch(&prefetch_keys(&inputs));
        let mut outputs = Vec::with_capacity(inputs.len());
        for input in inputs {
            let mut context = Context {
                shard: self,
                store,
                turn: &mut turn,
                now_ms,
            };
            outputs.push(context.run(input));
        }
        if !turn.records.is_empty() {
            let payload = self.meta_with_chain().encode();
            self.push(
                &mut turn,
                NewRecord::put(record_layout::META_KEY, record_layout::KIND_META, payload),
            );
        }
        self.next_index = turn.next_index();
        Turn {
            number: turn.number,
            first_index: turn.first_index,
            records: turn.records,
            outputs,
        }
    }

    /// Marks turn `number`, of `records` records from `first_index`, durable with its last
    /// record at `last`: the log now holds them, so the overlay forgets them. Panics if the log
    /// put them anywhere but where the shard said.
    pub fn durable(&mut self, number: u64, first_index: u64, records: usize, last: Position) {
        assert_eq!(
            last.index,
            first_index + records as u64 - 1,
            "turn {number}: the log placed records away from their predicted indexes; is \
             another writer appending to this shard's log?"
        );
        self.pending.retain(|_, pending| pending.turn > number);
        self.superseded.retain(|_, version| version.turn > number);
        shrink_after_burst(&mut self.pending);
        shrink_after_burst(&mut self.superseded);
    }

    fn meta_with_chain(&self) -> ShardMeta {
        let head = self.chain.head();
        ShardMeta {
            chain_sequence: head.sequence,
            chain_hash: head.hash,
            ..self.meta
        }
    }

    /// Adds a record to the turn and, when keyed, to the overlay; returns its log index.
    fn push(&mut self, turn: &mut TurnRecords, record: NewRecord) -> u64 {
        let index = turn.next_index();
        if let Some(key) = record.key {
            let replaced = self.pending.insert(
                key,
                Pending {
                    index,
                    kind: record.kind,
                    payload: (record.kind != record_layout::KIND_AUDIT && !record.delete)
                        .then(|| record.payload.clone()),
                    deleted: record.delete,
                    turn: turn.number,
                },
            );
            if let Some(Pending {
                index,
                kind: record_layout::KIND_SCR,
                payload: Some(payload),
                turn,
                ..
            }) = replaced
            {
                self.superseded.insert(index, Superseded { payload, turn });
            }
        }
        turn.records.push(record);
        index
    }
}

/// What one input runs with: the shard, the store and the turn being built.
struct Context<'a, S> {
    shard: &'a mut ShardState,
    store: &'a S,
    turn: &'a mut TurnRecords,
    now_ms: u64,
}

/// The refusal for a store that cannot be read, or a record that breaks what the shard wrote.
/// The details (which segment file, at which offset) are for the service desk, in the server's
/// log; the requester is told only that the shard cannot serve it, never the server's paths.
fn unavailable(error: impl std::fmt::Display) -> Refusal {
    tracing::error!(%error, "a shard's storage could not serve a request");
    Refusal::new(
        ErrorCode::ServiceUnavailable,
        "the shard's storage could not serve this request; the server's log has the details",
    )
}

impl<S: Store> Context<'_, S> {
    fn run(&mut self, input: ShardInput) -> ShardOutput {
        match input {
            ShardInput::Execute(request) => {
                let response = self.execute(&request);
                ShardOutput::Response(self.withhold_restricted(&request, response))
            }
            ShardInput::LookupOutcome(request) => {
                ShardOutput::Outcome(self.previous_outcome(&request))
            }
            ShardInput::Create {
                request,
                duplicates,
            } => ShardOutput::Response(self.create(&request, duplicates)),
            ShardInput::SearchLocal { query, limit } => {
                ShardOutput::Candidates(self.search_local(&query, limit))
            }
            ShardInput::Disclose { request, matches } => {
                ShardOutput::Response(self.disclose(&request, &matches))
            }
            ShardInput::ReleaseNominated { request, limit } => {
                ShardOutput::Released(self.eps_release_nominated(&request, limit))
            }
            ShardInput::ErsReferral {
                request,
                ubrn,
                step,
            } => {
                let outcome = self
                    .ers_referral_step(&request, ubrn, step)
                    .map(|mut outcome| {
                        let answer =
                            std::mem::replace(&mut outcome.answer, ers::ReferralAnswer::Recorded);
                        outcome.answer = match answer {
                            ers::ReferralAnswer::Done(response) => ers::ReferralAnswer::Done(
                                self.withhold_restricted(&request, response),
                            ),
                            other => other,
                        };
                        outcome
                    });
                ShardOutput::ErsReferral(outcome)
            }
            ShardInput::ErsSlot(step) => ShardOutput::ErsSlot(self.ers_slot_step(step)),
            ShardInput::ErsSearchLocal { query } => {
                ShardOutput::FreeSlots(self.ers_search_local(&query))
            }
            ShardInput::ErsRepairList { limit } => {
                ShardOutput::ErsRepair(self.ers_repair_list(limit))
            }
            ShardInput::Audit {
                request,
                action,
                outcome,
            } => {
                self.audit(&request, None, action, None, outcome, None);
                ShardOutput::Audited
            }
        }
    }

    /// A request naming a patient at home here.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    fn execute(&mut self, request: &Request) -> Response {
        use crate::request::Operation::*;
        if request.operation.is_write()
            && let Some(previous) = self.previous_outcome(request)
        {
            return previous;
        }
        match &request.operation {
            PdsRetrieve { nhs_number } => self.retrieve(request, *nhs_number),
            PdsLoad { patient } => {
                let outcome = self.load(request, patient);
                self.remember(request, outcome)
            }
            PdsUpdate {
                patient,
                expected_version,
            } => {
                let outcome = self.update(request, patient, *expected_version);
                self.remember(request, outcome)
            }
            PdsDeathNotification {
                nhs_number,
                expected_version,
                death,
            } => {
                let outcome = self.death(request, *nhs_number, *expected_version, death);
                self.remember(request, outcome)
            }
            AuditTrail { nhs_number, limit } => self.audit_trail(request, *nhs_number, *limit),
            PrivacyAlerts {
                organisation,
                limit,
            } => self.privacy_alerts(request, organisation, *limit),
            ScrView {
                nhs_number,
                permission_to_view,
            } => self.scr_view(request, *nhs_number, *permission_to_view),
            ScrHistory {
                nhs_number,
                permission_to_view,
                limit,
            } => self.scr_history(request, *nhs_number, *permission_to_view, *limit),
            ScrUpdate {
                nhs_number,
                expected_version,
                content,
            } => {
                let outcome = self.scr_update(request, *nhs_number, *expected_version, content);
                self.remember(request, outcome)
            }
            ScrSetPermission {
                nhs_number,
                permission,
            } => {
                let outcome = self.scr_set_permission(request, *nhs_number, *permission);
                self.remember(request, outcome)
            }
            EpsCreate { prescription } => {
                let outcome = self.eps_create(request, prescription);
                self.remember(request, outcome)
            }
            EpsUpdate { id, action } => {
                let outcome = self.eps_update(request, *id, action);
                self.remember(request, outcome)
            }
            ErsPublishService { service } => {
                let outcome = self.ers_publish_service(request, service);
                self.remember(request, outcome)
            }
            ErsPublishSlots { service, slots } => {
                let outcome = self.ers_publish_slots(request, *service, slots);
                self.remember(request, outcome)
            }
            ErsCreateReferral { referral } => {
                let outcome = self.ers_create_referral(request, referral);
                self.remember(request, outcome)
            }
            ErsRetrieveReferral { ubrn } => self.ers_retrieve_referral(request, *ubrn),
            Gp2gpStart {
                patient,
                document_size,
                document_sha256,
            } => {
                let outcome = self.gp2gp_start(request, *patient, *document_size, *document_sha256);
                self.remember(request, outcome)
            }
            Gp2gpSendChunk {
                transfer,
                index,
                bytes,
            } => self.gp2gp_send_chunk(request, *transfer, *index, bytes),
            Gp2gpStatus { transfer } => self.gp2gp_status(request, *transfer),
            Gp2gpFetchChunk { transfer, index } => {
                self.gp2gp_fetch_chunk(request, *transfer, *index)
            }
            Gp2gpAcknowledge {
                transfer,
                document_sha256,
            } => self.gp2gp_acknowledge(request, *transfer, *document_sha256),
            Gp2gpCancel { transfer } => self.gp2gp_cancel(request, *transfer),
            EpsReleaseNominated { .. }
            | ErsSearchSlots { .. }
            | ErsBook { .. }
            | ErsUpdateReferral { .. } => Err(Refusal::new(
                ErrorCode::ServiceUnavailable,
                "the operation spans shards: the engine coordinates it",
            )),
            PdsCreate { .. } | PdsSearch { .. } => Err(Refusal::new(
                ErrorCode::ServiceUnavailable,
                "create and search span shards: the engine coordinates them",
            )),
            ConnectionRoute => Err(connection_route_refusal()),
        }
    }

    /// The latest record under `key`: the overlay's, else the log's.
    fn latest<T>(
        &self,
        key: Key,
        visit: impl FnOnce(u64, &[u8]) -> T,
    ) -> Result<Option<T>, Refusal> {
        if let Some(pending) = self.shard.pending.get(&key) {
            if pending.deleted {
                return Ok(None);
            }
            let payload = pending
                .payload
                .as_ref()
                .expect("records read back keep their payload in the overlay");
            return Ok(Some(visit(pending.index, payload)));
        }
        self.store
            .get(key, |stored| visit(stored.index, stored.payload))
            .map_err(unavailable)
    }

    /// The log index of the latest record under `key` (overlay first), without reading it. A
    /// read failure leaves the link out (0) rather than refuse the request: the link only
    /// speeds up the trail query, and the event itself is still chained.
    fn latest_index(&self, key: Key) -> Option<u64> {
        if let Some(pending) = self.shard.pending.get(&key) {
            return (!pending.deleted).then_some(pending.index);
        }
        match self.store.index_of(key) {
            Ok(index) => index,
            Err(error) => {
                tracing::error!(%error, "reading an audit link");
                None
            }
        }
    }

    /// The organisation the caller acts for, as audit events name it.
    fn caller_organisation(&self, caller: &Caller) -> String {
        self.shard
            .directory
            .user(caller.user)
            .and_then(|user| {
                user.role_profiles
                    .iter()
                    .find(|profile| profile.id == caller.role_profile)
            })
            .map_or_else(
                || "UNKNOWN".to_owned(),
                |profile| profile.organisation.to_string(),
            )
    }

    /// Appends an audit event (and an alert record when it raises one); returns the event's
    /// log index.
    fn audit(
        &mut self,
        request: &Request,
        patient: Option<NhsNumber>,
        action: AuditAction,
        reason: Option<&str>,
        outcome: AuditOutcome,
        alert: Option<AccessAlert>,
    ) -> u64 {
        let organisation = self.caller_organisation(&request.caller);
        let event = AuditEvent {
            time_ms: self.now_ms,
            user: request.caller.user,
            role_profile: truncated(&request.caller.role_profile),
            organisation: organisation.clone(),
            system: request.caller.asid.to_string(),
            action,
            patient,
            outcome,
            reason: reason.map(truncated),
            alert,
        };
        // Link to the patient's previous event, so their trail is read newest first.
        let previous = match patient {
            Some(patient) => self
                .latest_index(record_layout::audit_key(patient))
                .unwrap_or(0),
            None => 0,
        };
        let mut payload = Vec::with_capacity(256);
        self.shard
            .chain
            .append(&event, previous, &mut payload)
            .expect("audit events are bounded when built");
        let index = self.turn.next_index();
        let alert_payload = alert.map(|_| {
            AlertRecord {
                organisation: &organisation,
                audit_index: index,
                event: &payload[RECORD_PREFIX_SIZE..],
            }
            .encode()
        });
        let payload = Bytes::from(payload);
        let record = match patient {
            Some(patient) => NewRecord::put(
                record_layout::audit_key(patient),
                record_layout::KIND_AUDIT,
                payload,
            ),
            None => NewRecord::unkeyed(record_layout::KIND_AUDIT, payload),
        };
        let pushed = self.shard.push(self.turn, record);
        assert_eq!(pushed, index, "an audit event goes where its alert says");
        if let Some(alert_payload) = alert_payload {
            let sequence = self.shard.meta.alert_sequence;
            self.shard.meta.alert_sequence += 1;
            self.shard.push(
                self.turn,
                NewRecord::put(
                    record_layout::alert_key(sequence),
                    record_layout::KIND_ALERT,
                    alert_payload,
                ),
            );
        }
        index
    }

    /// Appends the audit event of an allowed access to `patient`'s record, with the alert a
    /// justification raised (and its reason), if any.
    fn audit_allowed(
        &mut self,
        request: &Request,
        patient: NhsNumber,
        action: AuditAction,
        alert: Option<(AccessAlert, &str)>,
    ) -> u64 {
        self.audit(
            request,
            Some(patient),
            action,
            alert.map(|(_, reason)| reason),
            AuditOutcome::Allowed,
            alert.map(|(alert, _)| alert),
        )
    }

    /// Appends a change's audit event and then the changed record (the event first: a crash
    /// can cut a batch short anywhere, and a change that survives must never lack its event;
    /// an event whose change was cut off records an attempt, the safe way to be wrong).
    /// Returns where the record (a keyed put) went, for the write's outcome.
    fn write_audited(
        &mut self,
        request: &Request,
        action: AuditAction,
        patient: NhsNumber,
        alert: Option<(AccessAlert, &str)>,
        record: NewRecord,
    ) -> Written {
        let key = record.key.expect("a changed record is keyed");
        self.audit_allowed(request, patient, action, alert);
        let index = self.shard.push(self.turn, record);
        Written {
            key: key.get(),
            index,
        }
    }

    /// A digest of everything a request asks apart from its id.
    fn fingerprint(request: &Request) -> u64 {
        let bytes =
            postcard::to_allocvec(&(&request.caller, &request.justification, &request.operation))
                .expect("requests serialise");
        let digest = Sha256::digest(&bytes);
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    /// The stored outcome of an earlier request with this id, if any.
    fn previous_outcome(&self, request: &Request) -> Option<Response> {
        let sequence = self.shard.outcomes.find(request.id)?;
        let key = record_layout::outcome_key(self.shard.outcomes.slot_of(sequence));
        let record = match self.latest(key, |_, payload| records::outcome::decode(payload)) {
            Ok(Some(Some(record))) if record.request_id == request.id => record,
            // The ring's slot was taken by a later write: this id's outcome is forgotten.
            Ok(Some(Some(_)) | None) => return None,
            // Remembered but unreadable: refused rather than run a second time.
            Ok(Some(None)) => {
                tracing::error!(request = %request.id, "a write outcome does not decode");
                return Some(Err(Refusal::new(
                    ErrorCode::ServiceUnavailable,
                    format!(
                        "the outcome of request {} is stored but cannot be read; it is not run \
                         again",
                        request.id
                    ),
                )));
            }
            Err(refusal) => return Some(Err(refusal)),
        };
        if record.fingerprint != Self::fingerprint(request) {
            return Some(Err(Refusal::new(
                ErrorCode::RequestIdReused,
                format!(
                    "request id {} was used before for a different request",
                    request.id
                ),
            )));
        }
        Some(match record.outcome {
            Ok(written) => self.written_reply(written, &request.operation),
            Err(refusal) => Err(refusal),
        })
    }

    /// The reply a write gave, from the record it wrote (its kind says which reply; a
    /// service's record answers a publication of slots with the slots it gave).
    fn written_reply(&self, written: Written, operation: &crate::request::Operation) -> Response {
        let publication = matches!(operation, crate::request::Operation::ErsPublishSlots { .. });
        let decode = |kind: u8, payload: &[u8]| -> Result<crate::request::Reply, String> {
            use crate::request::Reply;
            match kind {
                record_layout::KIND_PATIENT => records::patient::decode(payload)
                    .map(|patient| Reply::Patient(patient.into_disclosable()))
                    .map_err(|error| error.to_string()),
                record_layout::KIND_SCR => records::scr::decode(payload)
                    .map(Reply::Scr)
                    .map_err(|error| error.to_string()),
                record_layout::KIND_PRESCRIPTION => records::prescription::decode(payload)
                    .map(Reply::Prescription)
                    .map_err(|error| error.to_string()),
                record_layout::KIND_REFERRAL => records::referral::decode(payload)
                    .map(|record| Reply::Referral(record.referral))
                    .map_err(|error| error.to_string()),
                record_layout::KIND_SERVICE if publication => records::service::decode(payload)
                    .map_err(|error| error.to_string())
                    .and_then(|record| {
                        self.published_slots(&record)
                            .map_err(|refusal| refusal.message)
                    }),
                record_layout::KIND_TRANSFER => records::transfer::decode(payload)
                    .map(|transfer| gp2gp::status_reply(&transfer))
                    .map_err(|error| error.to_string()),
                record_layout::KIND_SERVICE => records::service::decode(payload)
                    .map(|record| Reply::Service(record.service))
                    .map_err(|error| error.to_string()),
                other => Err(format!(
                    "a record of kind {other} is not one a write answers with"
                )),
            }
        };
        let pending = Key::new(written.key).and_then(|key| self.shard.pending.get(&key));
        let found = match pending {
            Some(Pending {
                index,
                kind,
                payload: Some(payload),
                ..
            }) if *index == written.index => Some(decode(*kind, payload)),
            _ => self
                .store
                .read(written.index, |stored| decode(stored.kind, stored.payload))
                .map_err(unavailable)?,
        };
        match found {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(error)) => Err(unavailable(format!(
                "the record written at {} does not decode: {error}",
                written.index
            ))),
            None => Err(unavailable(format!(
                "the record written at {} is missing",
                written.index
            ))),
        }
    }

    /// Stores a write's outcome in the ring (after the write's own records) and returns it.
    fn remember(&mut self, request: &Request, outcome: WriteOutcome) -> Response {
        if let Err(refusal) = &outcome
            && refusal.code == ErrorCode::ServiceUnavailable
        {
            // Not executed: a retry should try again.
            return Err(refusal.clone());
        }
        let sequence = self.shard.meta.outcome_sequence;
        self.shard.meta.outcome_sequence += 1;
        let (response, stored) = match outcome {
            Ok((reply, written)) => (Ok(reply), Ok(written)),
            Err(refusal) => (Err(refusal.clone()), Err(refusal)),
        };
        let record = OutcomeRecord {
            request_id: request.id,
            fingerprint: Self::fingerprint(request),
            sequence,
            outcome: stored,
        };
        let slot = self.shard.outcomes.slot_of(sequence);
        self.shard.push(
            self.turn,
            NewRecord::put(
                record_layout::outcome_key(slot),
                record_layout::KIND_OUTCOME,
                records::outcome::encode(&record),
            ),
        );
        self.shard.outcomes.insert(request.id, sequence);
        response
    }
}

/// Audit text fields are bounded; a longer one is cut (on a character boundary) rather than
/// lose the event.
fn truncated(text: &str) -> String {
    let max = crate::audit::event::TEXT_BYTES_MAX;
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The keys a turn's inputs will read first: each named patient's record and audit trail head
/// (and Summary Care Record, for its operations).
fn prefetch_keys(inputs: &[ShardInput]) -> Vec<Key> {
    use crate::request::Operation;
    let mut keys = Vec::with_capacity(inputs.len() * 2);
    let add = |keys: &mut Vec<Key>, patient: NhsNumber| {
        keys.push(record_layout::patient_key(patient));
        keys.push(record_layout::audit_key(patient));
    };
    for input in inputs {
        match input {
            ShardInput::Execute(request) => {
                if let Some(patient) = request.operation.patient() {
                    add(&mut keys, patient);
                }
                if let Operation::ScrView { nhs_number, .. }
                | Operation::ScrHistory { nhs_number, .. }
                | Operation::ScrUpdate { nhs_number, .. }
                | Operation::ScrSetPermission { nhs_number, .. } = &request.operation
                {
                    keys.push(record_layout::scr_key(*nhs_number));
                }
                if let Operation::EpsUpdate { id, .. } = &request.operation {
                    keys.push(record_layout::prescription_key(*id));
                }
            }
            ShardInput::Disclose { matches, .. } => {
                for (patient, _) in matches {
                    add(&mut keys, *patient);
                }
            }
            _ => {}
        }
    }
    keys
}

/// The refusal of a connection's route anywhere but at the network server, which alone knows
/// its connections.
pub fn connection_route_refusal() -> Refusal {
    Refusal::new(
        ErrorCode::MalformedRequest,
        "connection_route asks about a network connection: only the network server answers it",
    )
}

/// The ring of remembered write outcomes, from the log: the last `outcome_slots` of them.
fn rebuild_outcomes<S: Store>(
    store: &S,
    config: &ShardConfig,
    meta: &ShardMeta,
) -> Result<OutcomeSlots, ShardError> {
    let mut outcomes = OutcomeSlots::new(config.outcome_slots);
    let oldest = meta
        .outcome_sequence
        .saturating_sub(config.outcome_slots as u64);
    for sequence in oldest..meta.outcome_sequence {
        let key = record_layout::outcome_key(outcomes.slot_of(sequence));
        // An outcome that does not decode is damage, not an empty slot: forgetting it
        // would let a retry of its write run a second time.
        let record = store.get(key, |stored| {
            records::outcome::decode(stored.payload).ok_or(ShardError::Damaged {
                index: stored.index,
                what: "write outcome",
            })
        })?;
        if let Some(record) = record.transpose()?
            && record.sequence == sequence
        {
            outcomes.insert(record.request_id, sequence);
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_map_gives_back_a_burst_capacity_once() {
        let mut map: HashMap<u64, ()> = (0..100_000).map(|key| (key, ())).collect();
        map.retain(|&key, _| key < 100);
        shrink_after_burst(&mut map);
        let shrunk = map.capacity();
        assert!(shrunk < 8 * OVERLAY_CAPACITY_KEPT, "{shrunk}");
        assert_eq!(map.len(), 100);
        shrink_after_burst(&mut map);
        assert_eq!(map.capacity(), shrunk, "a shrunk map is left alone");
    }
}
