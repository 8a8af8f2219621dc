//! How a shard lays its data out in its log: record kinds and the payload version each is
//! written at, key namespaces (the top byte of the 64-bit key) and the secondary indexes
//! derived from records. `core/RECORDS.md` documents it field by field.

use spine_storage::{Key, RecordView, SecondaryKey, SecondaryKeys};

use sha2::{Digest, Sha256};

use crate::eps::{PrescriptionId, PrescriptionStatus};
use crate::ers::{ServiceId, SlotId, SlotStart, Specialty, Ubrn};
use crate::gp2gp::{TransferId, chunk_key_value};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::search;

/// What a record holds: the log header's kind byte (`core/RECORDS.md` documents each kind's key
/// and payload field by field). A kind's number never changes and is never reused; a new kind
/// takes the next number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// A patient's demographic record, keyed by [`patient_key`].
    Patient = 1,
    /// An audit event; keyed by [`audit_key`] when it concerns a patient (the key then finds
    /// that patient's latest event, which links to the one before), unkeyed otherwise.
    Audit = 2,
    /// A privacy alert, keyed by [`alert_key`]; indexed by the user's organisation.
    Alert = 3,
    /// The outcome of a write, for idempotent retries, keyed by [`outcome_key`] (a ring of
    /// slots).
    Outcome = 4,
    /// The shard's counters and audit chain head, keyed by [`META_KEY`]; one per turn that
    /// writes, and always a turn's last record.
    Meta = 5,
    /// A patient's Summary Care Record at one version, keyed by [`scr_key`]; each links to the
    /// log index of the version before.
    Scr = 6,
    /// A prescription, keyed by [`prescription_key`]; indexed by nominated pharmacy while it
    /// waits to be dispensed.
    Prescription = 7,
    /// An e-RS service with its slot counter, keyed by [`service_key`] on the service's shard;
    /// indexed by specialty.
    Service = 8,
    /// An appointment slot, keyed by [`slot_key`] on its service's shard; indexed by service
    /// and start while free.
    Slot = 9,
    /// A referral with the slot releases it still owes, keyed by [`referral_key`] on its
    /// patient's shard; indexed while a booking is pending or a release owed.
    Referral = 10,
    /// A GP2GP transfer, keyed by [`transfer_key`] on its patient's shard (the id is allocated
    /// so).
    Transfer = 11,
    /// One chunk of a transfer's document (its bytes), keyed by [`chunk_key`].
    Chunk = 12,
    /// The practice a patient was registered at before their current one, keyed by
    /// [`registration_key`] (see [`super::registrations`]).
    Registration = 13,
}

impl RecordKind {
    /// Every kind, by number.
    pub const ALL: [Self; 13] = [
        Self::Patient,
        Self::Audit,
        Self::Alert,
        Self::Outcome,
        Self::Meta,
        Self::Scr,
        Self::Prescription,
        Self::Service,
        Self::Slot,
        Self::Referral,
        Self::Transfer,
        Self::Chunk,
        Self::Registration,
    ];

    /// The kind a header's byte names; `None` for a number no kind has.
    pub fn from_u8(kind: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|known| *known as u8 == kind)
    }

    /// The kind's name, as `core/RECORDS.md` and `spine stats` give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Audit => "audit",
            Self::Alert => "alert",
            Self::Outcome => "outcome",
            Self::Meta => "meta",
            Self::Scr => "scr",
            Self::Prescription => "prescription",
            Self::Service => "service",
            Self::Slot => "slot",
            Self::Referral => "referral",
            Self::Transfer => "transfer",
            Self::Chunk => "chunk",
            Self::Registration => "registration",
        }
    }

    /// The payload version this code writes: the payload's first byte (for an audit event,
    /// the event's first byte, after the 80-byte chain link). `None` for a chunk, whose
    /// payload is the document's bytes as sent.
    pub fn payload_version(self) -> Option<u8> {
        Some(match self {
            Self::Patient => super::records::patient::PAYLOAD_VERSION,
            Self::Audit => crate::audit::event::EVENT_VERSION,
            Self::Alert => super::alerts::ENCODING_VERSION,
            Self::Outcome => super::records::outcome::PAYLOAD_VERSION,
            Self::Meta => super::meta::ENCODING_VERSION,
            Self::Scr => super::records::scr::PAYLOAD_VERSION,
            Self::Prescription => super::records::prescription::PAYLOAD_VERSION,
            Self::Service => super::records::service::PAYLOAD_VERSION,
            Self::Slot => super::records::slot::PAYLOAD_VERSION,
            Self::Referral => super::records::referral::PAYLOAD_VERSION,
            Self::Transfer => super::records::transfer::PAYLOAD_VERSION,
            Self::Chunk => return None,
            Self::Registration => super::registrations::ENCODING_VERSION,
        })
    }
}

// The header byte of each kind, for matching on a record's kind.
/// [`RecordKind::Patient`]'s byte.
pub const KIND_PATIENT: u8 = RecordKind::Patient as u8;
/// [`RecordKind::Audit`]'s byte.
pub const KIND_AUDIT: u8 = RecordKind::Audit as u8;
/// [`RecordKind::Alert`]'s byte.
pub const KIND_ALERT: u8 = RecordKind::Alert as u8;
/// [`RecordKind::Outcome`]'s byte.
pub const KIND_OUTCOME: u8 = RecordKind::Outcome as u8;
/// [`RecordKind::Meta`]'s byte.
pub const KIND_META: u8 = RecordKind::Meta as u8;
/// [`RecordKind::Scr`]'s byte.
pub const KIND_SCR: u8 = RecordKind::Scr as u8;
/// [`RecordKind::Prescription`]'s byte.
pub const KIND_PRESCRIPTION: u8 = RecordKind::Prescription as u8;
/// [`RecordKind::Service`]'s byte.
pub const KIND_SERVICE: u8 = RecordKind::Service as u8;
/// [`RecordKind::Slot`]'s byte.
pub const KIND_SLOT: u8 = RecordKind::Slot as u8;
/// [`RecordKind::Referral`]'s byte.
pub const KIND_REFERRAL: u8 = RecordKind::Referral as u8;
/// [`RecordKind::Transfer`]'s byte.
pub const KIND_TRANSFER: u8 = RecordKind::Transfer as u8;
/// [`RecordKind::Chunk`]'s byte.
pub const KIND_CHUNK: u8 = RecordKind::Chunk as u8;
/// [`RecordKind::Registration`]'s byte.
pub const KIND_REGISTRATION: u8 = RecordKind::Registration as u8;

const NAMESPACE_SHIFT: u32 = 56;
// Each kind's records are keyed in the namespace of its own number (`core/RECORDS.md`).
const NAMESPACE_PATIENT: u64 = RecordKind::Patient as u64;
const NAMESPACE_AUDIT: u64 = RecordKind::Audit as u64;
const NAMESPACE_ALERT: u64 = RecordKind::Alert as u64;
const NAMESPACE_OUTCOME: u64 = RecordKind::Outcome as u64;
const NAMESPACE_META: u64 = RecordKind::Meta as u64;
const NAMESPACE_SCR: u64 = RecordKind::Scr as u64;
const NAMESPACE_PRESCRIPTION: u64 = RecordKind::Prescription as u64;
const NAMESPACE_SERVICE: u64 = RecordKind::Service as u64;
const NAMESPACE_SLOT: u64 = RecordKind::Slot as u64;
const NAMESPACE_REFERRAL: u64 = RecordKind::Referral as u64;
const NAMESPACE_TRANSFER: u64 = RecordKind::Transfer as u64;
const NAMESPACE_CHUNK: u64 = RecordKind::Chunk as u64;
const NAMESPACE_REGISTRATION: u64 = RecordKind::Registration as u64;

fn namespaced(namespace: u64, value: u64) -> Key {
    assert!(
        value < 1 << NAMESPACE_SHIFT,
        "value {value} overflows into the namespace byte"
    );
    Key::new(namespace << NAMESPACE_SHIFT | value).expect("a namespace is never zero")
}

/// The key of a patient's record.
pub fn patient_key(nhs_number: NhsNumber) -> Key {
    namespaced(NAMESPACE_PATIENT, nhs_number.value())
}

/// The key of a patient's latest audit event.
pub fn audit_key(nhs_number: NhsNumber) -> Key {
    namespaced(NAMESPACE_AUDIT, nhs_number.value())
}

/// The key of a patient's Summary Care Record.
pub fn scr_key(nhs_number: NhsNumber) -> Key {
    namespaced(NAMESPACE_SCR, nhs_number.value())
}

/// The key of the record of a patient's previous practice.
pub fn registration_key(nhs_number: NhsNumber) -> Key {
    namespaced(NAMESPACE_REGISTRATION, nhs_number.value())
}

/// The key of a prescription: its id's random part and serial (allocated unique by the shard).
pub fn prescription_key(id: PrescriptionId) -> Key {
    namespaced(NAMESPACE_PRESCRIPTION, id.key_value())
}

/// The key of an e-RS service.
pub fn service_key(service: ServiceId) -> Key {
    namespaced(NAMESPACE_SERVICE, u64::from(service.0))
}

/// The key of a slot (an id this server published fits 56 bits; see [`SlotId::of_service`]).
/// `None` for an id no published slot can have.
pub fn slot_key(slot: SlotId) -> Option<Key> {
    (slot.0 < 1 << NAMESPACE_SHIFT).then(|| namespaced(NAMESPACE_SLOT, slot.0))
}

/// The key of a referral.
pub fn referral_key(ubrn: Ubrn) -> Key {
    namespaced(NAMESPACE_REFERRAL, ubrn.value())
}

/// The key of a GP2GP transfer.
pub fn transfer_key(transfer: TransferId) -> Key {
    namespaced(NAMESPACE_TRANSFER, transfer.get())
}

/// The key of one chunk of a transfer's document.
pub fn chunk_key(transfer: TransferId, index: u32) -> Key {
    namespaced(NAMESPACE_CHUNK, chunk_key_value(transfer, index))
}

/// The key of the shard's `sequence`th alert.
pub fn alert_key(sequence: u64) -> Key {
    namespaced(NAMESPACE_ALERT, sequence)
}

/// The key of outcome slot `slot`.
pub fn outcome_key(slot: u64) -> Key {
    namespaced(NAMESPACE_OUTCOME, slot)
}

/// The key of the shard's metadata record.
pub const META_KEY: Key = match Key::new(NAMESPACE_META << NAMESPACE_SHIFT | 1) {
    Some(key) => key,
    None => panic!("non-zero"),
};

/// Secondary index of patients by name Soundex and birth date (see [`search`]).
pub const INDEX_NAME_BIRTH: u8 = 0;
/// Secondary index of alerts by the organisation of the user who raised them.
pub const INDEX_ALERTS_BY_ORGANISATION: u8 = 1;
/// Secondary index of prescriptions waiting (`0001`) for the pharmacy nominated, by its code.
pub const INDEX_NOMINATED: u8 = 2;
/// Secondary index of e-RS services by specialty ([`specialty_index_key`]).
pub const INDEX_SERVICES_BY_SPECIALTY: u8 = 3;
/// Secondary index of free slots by service and start ([`free_slot_index_key`]).
pub const INDEX_FREE_SLOTS: u8 = 4;
/// Secondary index of referrals with a booking pending or a slot release owed, all under
/// [`REPAIR_INDEX_KEY`]: what a restart completes.
pub const INDEX_REFERRALS_TO_REPAIR: u8 = 5;
/// How many secondary indexes a shard's log has.
pub const INDEX_COUNT: usize = 6;

/// The one key of [`INDEX_REFERRALS_TO_REPAIR`].
pub const REPAIR_INDEX_KEY: &[u8] = &[1];

/// The services index's key for a specialty: the first 8 bytes of its code's SHA-256 (codes
/// run to 64 bytes, index keys to 15; a collision only costs reading a service that the
/// search then checks and skips).
pub fn specialty_index_key(specialty: &Specialty) -> [u8; 8] {
    let digest = Sha256::digest(specialty.as_str().as_bytes());
    digest[..8].try_into().expect("8 bytes")
}

/// The free slot index's key: the service id, the day (days since 1970, offset to sort
/// unsigned) and the minute, big-endian so that keys sort by service, then time.
pub fn free_slot_index_key(service: ServiceId, day: i64, minute: u16) -> [u8; 10] {
    let day = u32::try_from(day + (1 << 31)).expect("slot dates lie within years 1000 to 2999");
    let mut key = [0u8; 10];
    key[..4].copy_from_slice(&service.0.to_be_bytes());
    key[4..8].copy_from_slice(&day.to_be_bytes());
    key[8..].copy_from_slice(&minute.to_be_bytes());
    key
}

/// A key past every free slot index key of `service` (no day reaches `u32::MAX`).
pub fn free_slot_index_end(service: ServiceId) -> [u8; 10] {
    let mut key = [0xFF; 10];
    key[..4].copy_from_slice(&service.0.to_be_bytes());
    key
}

/// The free slot index's key for a slot's start.
pub fn free_slot_key_of(service: ServiceId, start: SlotStart) -> [u8; 10] {
    free_slot_index_key(service, start.day_number(), start.minute())
}

/// The alert index's key for an organisation: its code and a terminator, so that `Y9` does not
/// find `Y90001`'s alerts.
pub fn organisation_index_key(code: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(code.len() + 1);
    key.extend_from_slice(code.as_bytes());
    key.push(0);
    key
}

/// The range of an organisation's entries in an index keyed by [`organisation_index_key`]:
/// its key, and the key just past it (the terminator plus one).
pub fn organisation_index_range(code: &str) -> (Vec<u8>, Vec<u8>) {
    let from = organisation_index_key(code);
    let mut to = from.clone();
    *to.last_mut().expect("the key ends with its terminator") += 1;
    (from, to)
}

/// Derives the secondary keys of one record (the same function serves the log and the
/// in-memory store of the tests).
pub fn secondary_keys(kind: u8, payload: &[u8], out: &mut Vec<SecondaryKey>) {
    match kind {
        KIND_PATIENT => {
            // A record that does not decode was never written by this code: it has no keys,
            // and reading it reports the damage.
            if let Ok(patient) = super::records::patient::decode(payload) {
                out.extend(
                    search::index_keys(&patient)
                        .into_iter()
                        .map(|key| SecondaryKey {
                            index: INDEX_NAME_BIRTH,
                            key: key.to_vec(),
                        }),
                );
            }
        }
        KIND_PRESCRIPTION => {
            if let Ok(prescription) = super::records::prescription::decode(payload)
                && prescription.status == PrescriptionStatus::ToBeDispensed
                && let Some(pharmacy) = &prescription.nominated_pharmacy
            {
                out.push(SecondaryKey {
                    index: INDEX_NOMINATED,
                    key: organisation_index_key(pharmacy.as_str()),
                });
            }
        }
        KIND_SERVICE => {
            if let Ok(record) = super::records::service::decode(payload) {
                out.push(SecondaryKey {
                    index: INDEX_SERVICES_BY_SPECIALTY,
                    key: specialty_index_key(&record.service.specialty).to_vec(),
                });
            }
        }
        KIND_SLOT => {
            if let Ok(slot) = super::records::slot::decode(payload)
                && slot.is_free()
            {
                out.push(SecondaryKey {
                    index: INDEX_FREE_SLOTS,
                    key: free_slot_key_of(slot.service(), slot.start()).to_vec(),
                });
            }
        }
        KIND_REFERRAL => {
            if let Ok(record) = super::records::referral::decode(payload)
                && record.needs_repair()
            {
                out.push(SecondaryKey {
                    index: INDEX_REFERRALS_TO_REPAIR,
                    key: REPAIR_INDEX_KEY.to_vec(),
                });
            }
        }
        KIND_ALERT => {
            if let Some(organisation) = super::alerts::organisation_of(payload) {
                out.push(SecondaryKey {
                    index: INDEX_ALERTS_BY_ORGANISATION,
                    key: organisation_index_key(organisation),
                });
            }
        }
        _ => {}
    }
}

/// The shard's secondary indexes, for the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardIndexes;

impl SecondaryKeys for ShardIndexes {
    fn index_count(&self) -> usize {
        INDEX_COUNT
    }

    fn may_have_keys(&self, key: u64) -> bool {
        matches!(
            key >> NAMESPACE_SHIFT,
            NAMESPACE_PATIENT
                | NAMESPACE_ALERT
                | NAMESPACE_PRESCRIPTION
                | NAMESPACE_SERVICE
                | NAMESPACE_SLOT
                | NAMESPACE_REFERRAL
        )
    }

    fn extract(&self, record: &RecordView<'_>, out: &mut Vec<SecondaryKey>) {
        secondary_keys(record.kind(), record.payload(), out);
    }
}
