//! What callers ask of the engine and what they get back: one [`Request`] per operation, each
//! answered by a [`Response`] that is a [`Reply`] or a [`Refusal`] with a specific
//! [`ErrorCode`]. The network protocol (issue 4) carries these.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::{Caller, Justification};
use crate::audit::event::AuditEvent;
use crate::eps::{EpsAction, NewPrescription, Prescription, PrescriptionId};
use crate::ers::{
    BookingRefusal, ErsErrorCode, FreeSlot, NewReferral, NewSlot, Referral, ReferralAction,
    Service, ServiceId, Slot, SlotId, SlotQuery, Ubrn,
};
use crate::gp2gp::{Gp2gpErrorCode, Sha256Hash, Transfer, TransferId, TransferRefusal};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::patient::{Death, Patient};
use crate::pds::search::{Score, SearchQuery};
use crate::pds::values::OdsCode;
use crate::scr::record::{ScrContent, ScrPermission, SummaryCareRecord};

/// Audit events one trail or alert query returns, at most.
pub const AUDIT_QUERY_LIMIT_MAX: u32 = 1_000;

/// One request: its id (a retry with the same id gets the first outcome), who asks and why,
/// and the operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the caller, unique per intended effect.
    pub id: Uuid,
    /// The end user, role profile and system.
    pub caller: Caller,
    /// A justification for access outside a legitimate relationship, if any.
    pub justification: Justification,
    /// What to do.
    pub operation: Operation,
}

/// The operations the engine offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Register a new patient; the engine allocates the NHS number (the record's own is
    /// ignored) unless a trace finds the person already registered.
    PdsCreate {
        /// The new record.
        patient: Patient,
    },
    /// Load a record with its NHS number already allocated (migration and test populations);
    /// refused if the number is in use.
    PdsLoad {
        /// The record, version ignored (it starts at 1).
        patient: Patient,
    },
    /// Read a patient's record.
    PdsRetrieve {
        /// Whose.
        nhs_number: NhsNumber,
    },
    /// Replace a patient's record, if it is still at `expected_version`.
    PdsUpdate {
        /// The new record (its NHS number says whose; its version is ignored).
        patient: Patient,
        /// The version the change was made against.
        expected_version: u32,
    },
    /// Record a patient's death, if the record is still at `expected_version`.
    PdsDeathNotification {
        /// Whose.
        nhs_number: NhsNumber,
        /// The version the notification was made against.
        expected_version: u32,
        /// The death.
        death: Death,
    },
    /// Search (trace) for patients.
    PdsSearch {
        /// The criteria and options.
        query: SearchQuery,
    },
    /// Every audited access to one patient's record, newest first ("who has seen my record").
    AuditTrail {
        /// Whose.
        nhs_number: NhsNumber,
        /// Events at most (up to [`AUDIT_QUERY_LIMIT_MAX`]).
        limit: u32,
    },
    /// Privacy alerts (emergency access, self-claimed relationships) raised by users of one
    /// organisation, oldest first.
    PrivacyAlerts {
        /// The users' organisation.
        organisation: OdsCode,
        /// Events at most (up to [`AUDIT_QUERY_LIMIT_MAX`]).
        limit: u32,
    },
    /// View a patient's Summary Care Record.
    ScrView {
        /// Whose.
        nhs_number: NhsNumber,
        /// The patient gave permission to view, asked at the point of care.
        permission_to_view: bool,
    },
    /// A patient's Summary Care Record versions, newest first (the same rules as a view).
    ScrHistory {
        /// Whose.
        nhs_number: NhsNumber,
        /// The patient gave permission to view, asked at the point of care.
        permission_to_view: bool,
        /// Versions at most (up to [`crate::scr::record::HISTORY_LIMIT_MAX`]).
        limit: u32,
    },
    /// Replace the summary (registered practice only), if it is still at `expected_version`
    /// (0: there is no record yet).
    ScrUpdate {
        /// Whose.
        nhs_number: NhsNumber,
        /// The version the change was made against.
        expected_version: u32,
        /// The whole summary.
        content: ScrContent,
    },
    /// Record the patient's consent preference (registered practice only).
    ScrSetPermission {
        /// Whose.
        nhs_number: NhsNumber,
        /// The preference.
        permission: ScrPermission,
    },
    /// Issue a prescription; the server allocates its short id (a prescriber's role).
    EpsCreate {
        /// What is prescribed, for whom.
        prescription: NewPrescription,
    },
    /// Act on one prescription: cancel (its prescriber's organisation), or release, return,
    /// dispense, mark not dispensed, withdraw or claim (a pharmacy). The organisation the
    /// action names must be the caller's.
    EpsUpdate {
        /// Which prescription.
        id: PrescriptionId,
        /// What to do.
        action: EpsAction,
    },
    /// Release to the caller's pharmacy up to `limit` (1 to 25) prescriptions nominated to
    /// it and waiting to be dispensed.
    EpsReleaseNominated {
        /// Prescriptions at most.
        limit: u8,
    },
    /// Publish (or rename) a directly bookable service; the caller's organisation must be its
    /// provider (a provider's role).
    ErsPublishService {
        /// The service.
        service: Service,
    },
    /// Publish appointment slots of a service (1 to 100); the server gives them their ids.
    ErsPublishSlots {
        /// The service, provided by the caller's organisation.
        service: ServiceId,
        /// The slots.
        slots: Vec<NewSlot>,
    },
    /// Free slots by specialty, date range and, optionally, provider and clinic type, soonest
    /// first.
    ErsSearchSlots {
        /// The search.
        query: SlotQuery,
    },
    /// Refer a patient registered at the caller's practice; the server allocates the UBRN.
    ErsCreateReferral {
        /// The referral.
        referral: NewReferral,
    },
    /// Read a referral.
    ErsRetrieveReferral {
        /// Which.
        ubrn: Ubrn,
    },
    /// Book a slot of a shortlisted service for the referral, or move its booking there (a
    /// rebooking releases the old slot). A slot is never booked twice.
    ErsBook {
        /// The referral.
        ubrn: Ubrn,
        /// The slot.
        slot: SlotId,
        /// The slot's service, which must be on the shortlist.
        service: ServiceId,
    },
    /// Cancel the booking, defer to a provider, or cancel the referral.
    ErsUpdateReferral {
        /// The referral.
        ubrn: Ubrn,
        /// What to do.
        action: ReferralAction,
    },
    /// Start sending a patient's GP record (the caller's practice, the previous one) to the
    /// practice the patient is now registered at in PDS; the server allocates the transfer id.
    Gp2gpStart {
        /// Whose record.
        patient: NhsNumber,
        /// The document's size in bytes (1 byte to 100 MiB).
        document_size: u64,
        /// SHA-256 of the whole document.
        document_sha256: Sha256Hash,
    },
    /// Upload one chunk (the sending practice); acknowledged once durable, and idempotent by
    /// content (the same bytes again are accepted; other bytes refused).
    Gp2gpSendChunk {
        /// The transfer.
        transfer: TransferId,
        /// Which chunk (256 KiB each, the last may be shorter).
        index: u32,
        /// Its bytes.
        // Encoded as one byte string (the same bytes on the wire as a sequence of u8),
        // copied whole instead of one element at a time.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A transfer's state and the chunks still missing (either practice): what a resume asks.
    Gp2gpStatus {
        /// The transfer.
        transfer: TransferId,
    },
    /// Download one chunk of a complete transfer (the receiving practice).
    Gp2gpFetchChunk {
        /// The transfer.
        transfer: TransferId,
        /// Which chunk.
        index: u32,
    },
    /// Acknowledge delivery with the SHA-256 of the document reassembled (the receiving
    /// practice); the first acknowledgement delivers, a repeat changes nothing.
    Gp2gpAcknowledge {
        /// The transfer.
        transfer: TransferId,
        /// SHA-256 of what was received.
        document_sha256: Sha256Hash,
    },
    /// End a transfer before delivery (either practice).
    Gp2gpCancel {
        /// The transfer.
        transfer: TransferId,
    },
    /// How the server is sharded and which shard's core serves this connection, so a client
    /// can send each request over a connection served by its home shard's core (answered by
    /// the network server; the engine has no connections).
    ConnectionRoute,
}

/// A transfer's state and the chunks the Spine does not hold yet (at most 400).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStatus {
    /// The transfer.
    pub transfer: Transfer,
    /// Chunk indexes still to upload, in order.
    pub missing: Vec<u32>,
}

impl Operation {
    /// The patient whose home shard executes the operation, if it names one.
    pub fn patient(&self) -> Option<NhsNumber> {
        match self {
            Operation::PdsLoad { patient } | Operation::PdsUpdate { patient, .. } => {
                Some(patient.nhs_number)
            }
            Operation::PdsRetrieve { nhs_number }
            | Operation::PdsDeathNotification { nhs_number, .. }
            | Operation::AuditTrail { nhs_number, .. }
            | Operation::ScrView { nhs_number, .. }
            | Operation::ScrHistory { nhs_number, .. }
            | Operation::ScrUpdate { nhs_number, .. }
            | Operation::ScrSetPermission { nhs_number, .. } => Some(*nhs_number),
            Operation::EpsCreate { prescription } => Some(prescription.patient),
            Operation::ErsCreateReferral { referral } => Some(referral.patient),
            Operation::Gp2gpStart { patient, .. } => Some(*patient),
            Operation::PdsCreate { .. }
            | Operation::PdsSearch { .. }
            | Operation::PrivacyAlerts { .. }
            | Operation::EpsUpdate { .. }
            | Operation::EpsReleaseNominated { .. }
            | Operation::ErsPublishService { .. }
            | Operation::ErsPublishSlots { .. }
            | Operation::ErsSearchSlots { .. }
            | Operation::ErsRetrieveReferral { .. }
            | Operation::ErsBook { .. }
            | Operation::ErsUpdateReferral { .. }
            | Operation::Gp2gpSendChunk { .. }
            | Operation::Gp2gpStatus { .. }
            | Operation::Gp2gpFetchChunk { .. }
            | Operation::Gp2gpAcknowledge { .. }
            | Operation::Gp2gpCancel { .. }
            | Operation::ConnectionRoute => None,
        }
    }

    /// The value whose home shard executes the operation whole: the patient's NHS number, a
    /// prescription's key, a referral's UBRN or a transfer's id (allocated to live with their
    /// patient),
    /// or a service's id; `None` for operations that span shards.
    pub fn home_value(&self) -> Option<u64> {
        match self {
            Operation::EpsUpdate { id, .. } => Some(id.key_value()),
            Operation::ErsRetrieveReferral { ubrn } => Some(ubrn.value()),
            Operation::ErsPublishService { service } => Some(service_home_value(service.id)),
            Operation::ErsPublishSlots { service, .. } => Some(service_home_value(*service)),
            Operation::Gp2gpSendChunk { transfer, .. }
            | Operation::Gp2gpStatus { transfer }
            | Operation::Gp2gpFetchChunk { transfer, .. }
            | Operation::Gp2gpAcknowledge { transfer, .. }
            | Operation::Gp2gpCancel { transfer } => Some(transfer.get()),
            other => other.patient().map(NhsNumber::value),
        }
    }

    /// Every operation's name, in the order they are declared (metrics label by it).
    pub const NAMES: [&'static str; 29] = [
        "pds_create",
        "pds_load",
        "pds_retrieve",
        "pds_update",
        "pds_death_notification",
        "pds_search",
        "audit_trail",
        "privacy_alerts",
        "scr_view",
        "scr_history",
        "scr_update",
        "scr_set_permission",
        "eps_create",
        "eps_update",
        "eps_release_nominated",
        "ers_publish_service",
        "ers_publish_slots",
        "ers_search_slots",
        "ers_create_referral",
        "ers_retrieve_referral",
        "ers_book",
        "ers_update_referral",
        "gp2gp_start",
        "gp2gp_send_chunk",
        "gp2gp_status",
        "gp2gp_fetch_chunk",
        "gp2gp_acknowledge",
        "gp2gp_cancel",
        "connection_route",
    ];

    /// The operation's position in [`Operation::NAMES`].
    pub fn index(&self) -> usize {
        match self {
            Operation::PdsCreate { .. } => 0,
            Operation::PdsLoad { .. } => 1,
            Operation::PdsRetrieve { .. } => 2,
            Operation::PdsUpdate { .. } => 3,
            Operation::PdsDeathNotification { .. } => 4,
            Operation::PdsSearch { .. } => 5,
            Operation::AuditTrail { .. } => 6,
            Operation::PrivacyAlerts { .. } => 7,
            Operation::ScrView { .. } => 8,
            Operation::ScrHistory { .. } => 9,
            Operation::ScrUpdate { .. } => 10,
            Operation::ScrSetPermission { .. } => 11,
            Operation::EpsCreate { .. } => 12,
            Operation::EpsUpdate { .. } => 13,
            Operation::EpsReleaseNominated { .. } => 14,
            Operation::ErsPublishService { .. } => 15,
            Operation::ErsPublishSlots { .. } => 16,
            Operation::ErsSearchSlots { .. } => 17,
            Operation::ErsCreateReferral { .. } => 18,
            Operation::ErsRetrieveReferral { .. } => 19,
            Operation::ErsBook { .. } => 20,
            Operation::ErsUpdateReferral { .. } => 21,
            Operation::Gp2gpStart { .. } => 22,
            Operation::Gp2gpSendChunk { .. } => 23,
            Operation::Gp2gpStatus { .. } => 24,
            Operation::Gp2gpFetchChunk { .. } => 25,
            Operation::Gp2gpAcknowledge { .. } => 26,
            Operation::Gp2gpCancel { .. } => 27,
            Operation::ConnectionRoute => 28,
        }
    }

    /// The operation's name (`pds_retrieve`, …).
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// Whether the operation changes data and is made idempotent by its request id. GP2GP's
    /// chunk uploads, acknowledgements and cancellations change data too, but are idempotent
    /// by their content (a repeat is recognised as one), so they spend no outcome record.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Operation::PdsCreate { .. }
                | Operation::PdsLoad { .. }
                | Operation::PdsUpdate { .. }
                | Operation::PdsDeathNotification { .. }
                | Operation::ScrUpdate { .. }
                | Operation::ScrSetPermission { .. }
                | Operation::EpsCreate { .. }
                | Operation::EpsUpdate { .. }
                | Operation::ErsPublishService { .. }
                | Operation::ErsPublishSlots { .. }
                | Operation::ErsCreateReferral { .. }
                | Operation::ErsBook { .. }
                | Operation::ErsUpdateReferral { .. }
                | Operation::Gp2gpStart { .. }
        )
    }
}

/// The value a service's home shard is found by: its id, set apart from NHS numbers and
/// UBRNs (which never reach 2^40) so that services do not all share their patients' shards.
pub fn service_home_value(service: ServiceId) -> u64 {
    1 << 40 | u64::from(service.0)
}

/// One patient a search found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// How well it matched, in thousandths (1000: exact).
    pub score: Score,
    /// The record as it may be disclosed.
    pub patient: Patient,
}

/// What a successful request returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The patient's record as it may be disclosed (retrieve, create, load, update, death).
    Patient(Patient),
    /// Search results, best first.
    Matches(Vec<SearchMatch>),
    /// Audit events.
    AuditEvents(Vec<AuditEvent>),
    /// A Summary Care Record (view, update, consent change).
    Scr(SummaryCareRecord),
    /// Summary Care Record versions, newest first.
    ScrVersions(Vec<SummaryCareRecord>),
    /// A prescription (create, update).
    Prescription(Prescription),
    /// Prescriptions (a nominated release).
    Prescriptions(Vec<Prescription>),
    /// An e-RS service (published).
    Service(Service),
    /// Slots as published, with their ids.
    Slots(Vec<Slot>),
    /// Free slots a search found, soonest first.
    FreeSlots(Vec<FreeSlot>),
    /// A referral (created, read, booked or changed).
    Referral(Referral),
    /// A GP2GP transfer and the chunks it still needs.
    Transfer(TransferStatus),
    /// One chunk of a transfer's document.
    Chunk {
        /// Which.
        index: u32,
        /// Its bytes.
        // Encoded as one byte string (the same bytes on the wire as a sequence of u8),
        // copied whole instead of one element at a time.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The server's shards and the one whose core serves this connection.
    Route(ConnectionRoute),
}

/// How a server is sharded, as one connection sees it. A request's home shard is
/// [`crate::routing::shard_of`] of its operation's [`Operation::home_value`] over `shards`; sent
/// over a connection whose `local_shard` it is, it never leaves that core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRoute {
    /// Shards the server has.
    pub shards: u32,
    /// The shard whose core serves this connection.
    pub local_shard: u32,
}

/// The error codes a refusal carries (PDS codes where the specification has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The system, user or role may not do this, or no legitimate relationship.
    AccessDenied,
    /// No patient has that NHS number.
    ResourceNotFound,
    /// The record changed since the version the request was made against.
    ResourceVersionMismatch,
    /// The change is not allowed (for example a date of death already set).
    ForbiddenUpdate,
    /// A value breaks the rules (record fields, NHS number in use, and the like).
    InvalidValue,
    /// The search breaks the specification's rules.
    InvalidSearchData,
    /// More patients match than the search may return.
    TooManyMatches,
    /// Create: the person is already registered, once.
    SingleMatch,
    /// Create: the person appears to be registered more than once.
    MultipleMatches,
    /// A request id used before for a different request.
    RequestIdReused,
    /// The engine cannot take the request now (overloaded, stopping, or its storage failed).
    ServiceUnavailable,
    /// The request's bytes are not a request of this protocol version.
    MalformedRequest,
    /// A frame larger than the server accepts.
    FrameTooLarge,
    /// More requests in flight on one connection than the server accepts.
    TooManyStreams,
    /// The connecting system sent more requests than its rate allows.
    RateLimited,
    /// The request was not answered within its deadline.
    DeadlineExceeded,
    /// The patient has opted out of the Summary Care Record: none is kept or shown.
    NoPatientConsent,
    /// No prescription has that id.
    PrescriptionNotFound,
    /// The prescription's status does not allow the action.
    PrescriptionInvalidStateTransition,
    /// Another pharmacy holds the prescription.
    PrescriptionWithAnotherDispenser,
    /// A dispense notification names an item the prescription does not have.
    ItemNotFound,
    /// No referral, slot, service or GP2GP transfer has that id.
    ReferenceNotFound,
    /// The referral's state does not allow the step (booking a cancelled referral, say).
    InvalidRequestState,
    /// The slot is booked already (another referral got there first).
    SlotNotAvailable,
    /// The slot belongs to another service than the booking names.
    InappropriateSlot,
    /// A deferral to a provider while its service still has free slots.
    SlotsCurrentlyAvailable,
    /// The service is not on the referral's shortlist.
    ServiceNotOnShortlist,
    /// Different bytes for a GP2GP chunk the Spine already holds.
    ChunkConflict,
    /// A GP2GP step that needs every chunk before all are held.
    DocumentIncomplete,
    /// The chunks, or what the receiver reassembled, are not the declared document.
    DocumentHashMismatch,
    /// The shard's storage failed (a full disk or an I/O error): it accepts no write, nor any
    /// read that must be audited, until an operator has made room or mended the disk and
    /// restarted the server. Not worth retrying before then.
    WritesStopped,
    /// An identifier that cannot be one: an NHS number whose check digit fails or that is out
    /// of range, a prescription id, UBRN or transfer id of the wrong form.
    InvalidResourceId,
}

impl ErrorCode {
    /// Every code, in the order they are declared (their index on the wire).
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::AccessDenied,
        ErrorCode::ResourceNotFound,
        ErrorCode::ResourceVersionMismatch,
        ErrorCode::ForbiddenUpdate,
        ErrorCode::InvalidValue,
        ErrorCode::InvalidSearchData,
        ErrorCode::TooManyMatches,
        ErrorCode::SingleMatch,
        ErrorCode::MultipleMatches,
        ErrorCode::RequestIdReused,
        ErrorCode::ServiceUnavailable,
        ErrorCode::MalformedRequest,
        ErrorCode::FrameTooLarge,
        ErrorCode::TooManyStreams,
        ErrorCode::RateLimited,
        ErrorCode::DeadlineExceeded,
        ErrorCode::NoPatientConsent,
        ErrorCode::PrescriptionNotFound,
        ErrorCode::PrescriptionInvalidStateTransition,
        ErrorCode::PrescriptionWithAnotherDispenser,
        ErrorCode::ItemNotFound,
        ErrorCode::ReferenceNotFound,
        ErrorCode::InvalidRequestState,
        ErrorCode::SlotNotAvailable,
        ErrorCode::InappropriateSlot,
        ErrorCode::SlotsCurrentlyAvailable,
        ErrorCode::ServiceNotOnShortlist,
        ErrorCode::ChunkConflict,
        ErrorCode::DocumentIncomplete,
        ErrorCode::DocumentHashMismatch,
        ErrorCode::WritesStopped,
        ErrorCode::InvalidResourceId,
    ];

    /// The code as it is written on the wire and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AccessDenied => "ACCESS_DENIED",
            ErrorCode::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorCode::ResourceVersionMismatch => "RESOURCE_VERSION_MISMATCH",
            ErrorCode::ForbiddenUpdate => "FORBIDDEN_UPDATE",
            ErrorCode::InvalidValue => "INVALID_VALUE",
            ErrorCode::InvalidSearchData => "INVALID_SEARCH_DATA",
            ErrorCode::TooManyMatches => "TOO_MANY_MATCHES",
            ErrorCode::SingleMatch => "SINGLE_MATCH",
            ErrorCode::MultipleMatches => "MULTIPLE_MATCHES",
            ErrorCode::RequestIdReused => "REQUEST_ID_REUSED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::MalformedRequest => "MALFORMED_REQUEST",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::TooManyStreams => "TOO_MANY_STREAMS",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::NoPatientConsent => "NO_PATIENT_CONSENT",
            ErrorCode::PrescriptionNotFound => "PRESCRIPTION_NOT_FOUND",
            ErrorCode::PrescriptionInvalidStateTransition => {
                "PRESCRIPTION_INVALID_STATE_TRANSITION"
            }
            ErrorCode::PrescriptionWithAnotherDispenser => "PRESCRIPTION_WITH_ANOTHER_DISPENSER",
            ErrorCode::ItemNotFound => "ITEM_NOT_FOUND",
            ErrorCode::ReferenceNotFound => "REFERENCE_NOT_FOUND",
            ErrorCode::InvalidRequestState => "INVALID_REQUEST_STATE",
            ErrorCode::SlotNotAvailable => "SLOT_NOT_AVAILABLE",
            ErrorCode::InappropriateSlot => "INAPPROPRIATE_SLOT",
            ErrorCode::SlotsCurrentlyAvailable => "SLOTS_CURRENTLY_AVAILABLE",
            ErrorCode::ServiceNotOnShortlist => "SERVICE_NOT_ON_SHORTLIST",
            ErrorCode::ChunkConflict => "CHUNK_CONFLICT",
            ErrorCode::DocumentIncomplete => "DOCUMENT_INCOMPLETE",
            ErrorCode::DocumentHashMismatch => "DOCUMENT_HASH_MISMATCH",
            ErrorCode::WritesStopped => "WRITES_STOPPED",
            ErrorCode::InvalidResourceId => "INVALID_RESOURCE_ID",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: the code and a message saying exactly why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// The specific reason.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }
}

/// A booking step's refusal as the wire carries it: the e-RS code where the wire has one,
/// `INVALID_VALUE` for a malformed value, `INVALID_REQUEST_STATE` for a step out of turn.
impl From<BookingRefusal> for Refusal {
    fn from(refusal: BookingRefusal) -> Self {
        let code = match refusal.code() {
            ErsErrorCode::InvalidValue
            | ErsErrorCode::InvalidCode
            | ErsErrorCode::MissingValue
            | ErsErrorCode::TooManyItems
            | ErsErrorCode::DuplicateService => ErrorCode::InvalidValue,
            ErsErrorCode::ReferenceNotFound => ErrorCode::ReferenceNotFound,
            ErsErrorCode::InvalidRequestState
            | ErsErrorCode::InvalidState
            | ErsErrorCode::BookingMismatch => ErrorCode::InvalidRequestState,
            ErsErrorCode::SlotNotAvailable => ErrorCode::SlotNotAvailable,
            ErsErrorCode::InappropriateSlot => ErrorCode::InappropriateSlot,
            ErsErrorCode::SlotsCurrentlyAvailable => ErrorCode::SlotsCurrentlyAvailable,
            ErsErrorCode::ServiceNotOnShortlist => ErrorCode::ServiceNotOnShortlist,
        };
        Refusal::new(code, refusal)
    }
}

/// A transfer step's refusal as the wire carries it.
impl From<TransferRefusal> for Refusal {
    fn from(refusal: TransferRefusal) -> Self {
        let code = match refusal.code() {
            Gp2gpErrorCode::InvalidValue
            | Gp2gpErrorCode::DocumentEmpty
            | Gp2gpErrorCode::DocumentTooLarge
            | Gp2gpErrorCode::SamePractice
            | Gp2gpErrorCode::ChunkIndexOutOfRange
            | Gp2gpErrorCode::ChunkLengthMismatch => ErrorCode::InvalidValue,
            Gp2gpErrorCode::NotParticipant => ErrorCode::AccessDenied,
            Gp2gpErrorCode::InvalidState | Gp2gpErrorCode::TransferNotIdle => {
                ErrorCode::InvalidRequestState
            }
            Gp2gpErrorCode::ChunkConflict => ErrorCode::ChunkConflict,
            Gp2gpErrorCode::DocumentIncomplete => ErrorCode::DocumentIncomplete,
            Gp2gpErrorCode::DocumentHashMismatch => ErrorCode::DocumentHashMismatch,
        };
        Refusal::new(code, refusal)
    }
}

/// The answer to a request.
pub type Response = Result<Reply, Refusal>;
