//! `Operation`: what a request asks, one variant per operation, in the order of
//! `net/PROTOCOL.md` (the variant's index is its number on the wire).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::gp2gp::{Sha256Hash, TransferId};
use spine_domain::request::Operation as Domain;

use super::InvalidField;
use super::codes::{CodeList, FromWireIndex};
use super::eps::{self, EpsAction, NewPrescription};
use super::ers::{self, NewReferral, NewSlot, ReferralAction, Service, SlotQuery};
use super::invalid_field::Checked;
use super::invalid_field::Within;
use super::list::List;
use super::pds::{Death, Patient, SearchQuery};
use super::scr::ScrContent;
use super::values::{self, text};

/// An operation as it travels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Operation<'a> {
    PdsCreate {
        patient: Patient<'a>,
    },
    PdsLoad {
        patient: Patient<'a>,
    },
    PdsRetrieve {
        nhs_number: u64,
    },
    PdsUpdate {
        patient: Patient<'a>,
        expected_version: u32,
    },
    PdsDeathNotification {
        nhs_number: u64,
        expected_version: u32,
        death: Death,
    },
    PdsSearch {
        query: SearchQuery<'a>,
    },
    AuditTrail {
        nhs_number: u64,
        limit: u32,
    },
    PrivacyAlerts {
        organisation: Cow<'a, str>,
        limit: u32,
    },
    ScrView {
        nhs_number: u64,
        permission_to_view: bool,
    },
    ScrHistory {
        nhs_number: u64,
        permission_to_view: bool,
        limit: u32,
    },
    ScrUpdate {
        nhs_number: u64,
        expected_version: u32,
        content: ScrContent<'a>,
    },
    ScrSetPermission {
        nhs_number: u64,
        permission: u32,
    },
    EpsCreate {
        prescription: NewPrescription<'a>,
    },
    EpsUpdate {
        id: Cow<'a, str>,
        action: EpsAction<'a>,
    },
    EpsReleaseNominated {
        limit: u8,
    },
    ErsPublishService {
        service: Service<'a>,
    },
    ErsPublishSlots {
        service: u32,
        slots: List<'a, spine_domain::ers::NewSlot, NewSlot>,
    },
    ErsSearchSlots {
        query: SlotQuery<'a>,
    },
    ErsCreateReferral {
        referral: NewReferral<'a>,
    },
    ErsRetrieveReferral {
        ubrn: u64,
    },
    ErsBook {
        ubrn: u64,
        slot: u64,
        service: u32,
    },
    ErsUpdateReferral {
        ubrn: u64,
        action: ReferralAction,
    },
    Gp2gpStart {
        patient: u64,
        document_size: u64,
        document_sha256: [u8; 32],
    },
    Gp2gpSendChunk {
        transfer: u64,
        index: u32,
        #[serde(with = "byte_string")]
        bytes: Cow<'a, [u8]>,
    },
    Gp2gpStatus {
        transfer: u64,
    },
    Gp2gpFetchChunk {
        transfer: u64,
        index: u32,
    },
    Gp2gpAcknowledge {
        transfer: u64,
        document_sha256: [u8; 32],
    },
    Gp2gpCancel {
        transfer: u64,
    },
    ConnectionRoute,
}

/// A chunk's bytes as one byte string, copied whole instead of one element at a time (the
/// same bytes on the wire as a sequence of `u8`).
mod byte_string {
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], out: S) -> Result<S::Ok, S::Error> {
        out.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, 'a, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Cow<'a, [u8]>, D::Error> {
        serde_bytes::ByteBuf::deserialize(input).map(|bytes| Cow::Owned(bytes.into_vec()))
    }
}

fn transfer_id(raw: u64) -> Checked<TransferId> {
    TransferId::try_from(raw).map_err(|error| InvalidField::id("transfer_id", error))
}

impl<'a> From<&'a Domain> for Operation<'a> {
    fn from(operation: &'a Domain) -> Self {
        match operation {
            Domain::PdsCreate { .. }
            | Domain::PdsLoad { .. }
            | Domain::PdsRetrieve { .. }
            | Domain::PdsUpdate { .. }
            | Domain::PdsDeathNotification { .. }
            | Domain::PdsSearch { .. }
            | Domain::AuditTrail { .. }
            | Domain::PrivacyAlerts { .. } => pds_to_wire(operation),
            Domain::ScrView { .. }
            | Domain::ScrHistory { .. }
            | Domain::ScrUpdate { .. }
            | Domain::ScrSetPermission { .. }
            | Domain::EpsCreate { .. }
            | Domain::EpsUpdate { .. }
            | Domain::EpsReleaseNominated { .. } => scr_eps_to_wire(operation),
            Domain::ErsPublishService { .. }
            | Domain::ErsPublishSlots { .. }
            | Domain::ErsSearchSlots { .. }
            | Domain::ErsCreateReferral { .. }
            | Domain::ErsRetrieveReferral { .. }
            | Domain::ErsBook { .. }
            | Domain::ErsUpdateReferral { .. } => ers_to_wire(operation),
            Domain::Gp2gpStart { .. }
            | Domain::Gp2gpSendChunk { .. }
            | Domain::Gp2gpStatus { .. }
            | Domain::Gp2gpFetchChunk { .. }
            | Domain::Gp2gpAcknowledge { .. }
            | Domain::Gp2gpCancel { .. }
            | Domain::ConnectionRoute => gp2gp_to_wire(operation),
        }
    }
}

impl Operation<'_> {
    /// The domain's operation, every value checked in the order it travels; the first refused
    /// names its path below `operation`.
    pub(super) fn into_domain(self) -> Checked<Domain> {
        match self {
            Self::PdsCreate { .. }
            | Self::PdsLoad { .. }
            | Self::PdsRetrieve { .. }
            | Self::PdsUpdate { .. }
            | Self::PdsDeathNotification { .. }
            | Self::PdsSearch { .. }
            | Self::AuditTrail { .. }
            | Self::PrivacyAlerts { .. } => pds_into_domain(self),
            Self::ScrView { .. }
            | Self::ScrHistory { .. }
            | Self::ScrUpdate { .. }
            | Self::ScrSetPermission { .. }
            | Self::EpsCreate { .. }
            | Self::EpsUpdate { .. }
            | Self::EpsReleaseNominated { .. } => scr_eps_into_domain(self),
            Self::ErsPublishService { .. }
            | Self::ErsPublishSlots { .. }
            | Self::ErsSearchSlots { .. }
            | Self::ErsCreateReferral { .. }
            | Self::ErsRetrieveReferral { .. }
            | Self::ErsBook { .. }
            | Self::ErsUpdateReferral { .. } => ers_into_domain(self),
            Self::Gp2gpStart { .. }
            | Self::Gp2gpSendChunk { .. }
            | Self::Gp2gpStatus { .. }
            | Self::Gp2gpFetchChunk { .. }
            | Self::Gp2gpAcknowledge { .. }
            | Self::Gp2gpCancel { .. }
            | Self::ConnectionRoute => gp2gp_into_domain(self),
        }
    }
}

/// The wire form of PDS and audit operations.
fn pds_to_wire(operation: &Domain) -> Operation<'_> {
    match operation {
        Domain::PdsCreate { patient } => Operation::PdsCreate {
            patient: patient.into(),
        },
        Domain::PdsLoad { patient } => Operation::PdsLoad {
            patient: patient.into(),
        },
        Domain::PdsRetrieve { nhs_number } => Operation::PdsRetrieve {
            nhs_number: nhs_number.value(),
        },
        Domain::PdsUpdate {
            patient,
            expected_version,
        } => Operation::PdsUpdate {
            patient: patient.into(),
            expected_version: *expected_version,
        },
        Domain::PdsDeathNotification {
            nhs_number,
            expected_version,
            death,
        } => Operation::PdsDeathNotification {
            nhs_number: nhs_number.value(),
            expected_version: *expected_version,
            death: (*death).into(),
        },
        Domain::PdsSearch { query } => Operation::PdsSearch {
            query: query.into(),
        },
        Domain::AuditTrail { nhs_number, limit } => Operation::AuditTrail {
            nhs_number: nhs_number.value(),
            limit: *limit,
        },
        Domain::PrivacyAlerts {
            organisation,
            limit,
        } => Operation::PrivacyAlerts {
            organisation: text(organisation),
            limit: *limit,
        },
        other => unreachable!("not a PDS and audit operation: {other:?}"),
    }
}

/// PDS and audit operations in the domain's types.
fn pds_into_domain(operation: Operation<'_>) -> Checked<Domain> {
    use values::nhs_number;
    Ok(match operation {
        Operation::PdsCreate { patient } => Domain::PdsCreate {
            patient: patient.into_domain().at("patient")?,
        },
        Operation::PdsLoad { patient } => Domain::PdsLoad {
            patient: patient.into_domain().at("patient")?,
        },
        Operation::PdsRetrieve { nhs_number: raw } => Domain::PdsRetrieve {
            nhs_number: nhs_number(raw).at("nhs_number")?,
        },
        Operation::PdsUpdate {
            patient,
            expected_version,
        } => Domain::PdsUpdate {
            patient: patient.into_domain().at("patient")?,
            expected_version,
        },
        Operation::PdsDeathNotification {
            nhs_number: raw,
            expected_version,
            death,
        } => Domain::PdsDeathNotification {
            nhs_number: nhs_number(raw).at("nhs_number")?,
            expected_version,
            death: death.into_domain().at("death")?,
        },
        Operation::PdsSearch { query } => Domain::PdsSearch {
            query: query.into_domain().at("query")?,
        },
        Operation::AuditTrail {
            nhs_number: raw,
            limit,
        } => Domain::AuditTrail {
            nhs_number: nhs_number(raw).at("nhs_number")?,
            limit,
        },
        Operation::PrivacyAlerts {
            organisation,
            limit,
        } => Domain::PrivacyAlerts {
            organisation: values::ods_code(organisation).at("organisation")?,
            limit,
        },
        other => unreachable!("not a PDS and audit operation: {other:?}"),
    })
}

/// The wire form of SCR and EPS operations.
fn scr_eps_to_wire(operation: &Domain) -> Operation<'_> {
    match operation {
        Domain::ScrView {
            nhs_number,
            permission_to_view,
        } => Operation::ScrView {
            nhs_number: nhs_number.value(),
            permission_to_view: *permission_to_view,
        },
        Domain::ScrHistory {
            nhs_number,
            permission_to_view,
            limit,
        } => Operation::ScrHistory {
            nhs_number: nhs_number.value(),
            permission_to_view: *permission_to_view,
            limit: *limit,
        },
        Domain::ScrUpdate {
            nhs_number,
            expected_version,
            content,
        } => Operation::ScrUpdate {
            nhs_number: nhs_number.value(),
            expected_version: *expected_version,
            content: content.into(),
        },
        Domain::ScrSetPermission {
            nhs_number,
            permission,
        } => Operation::ScrSetPermission {
            nhs_number: nhs_number.value(),
            permission: permission.index(),
        },
        Domain::EpsCreate { prescription } => Operation::EpsCreate {
            prescription: prescription.into(),
        },
        Domain::EpsUpdate { id, action } => Operation::EpsUpdate {
            id: Cow::Owned(id.to_string()),
            action: action.into(),
        },
        Domain::EpsReleaseNominated { limit } => Operation::EpsReleaseNominated { limit: *limit },
        other => unreachable!("not a SCR and EPS operation: {other:?}"),
    }
}

/// SCR and EPS operations in the domain's types.
fn scr_eps_into_domain(operation: Operation<'_>) -> Checked<Domain> {
    use values::nhs_number;
    Ok(match operation {
        Operation::ScrView {
            nhs_number: raw,
            permission_to_view,
        } => Domain::ScrView {
            nhs_number: nhs_number(raw).at("nhs_number")?,
            permission_to_view,
        },
        Operation::ScrHistory {
            nhs_number: raw,
            permission_to_view,
            limit,
        } => Domain::ScrHistory {
            nhs_number: nhs_number(raw).at("nhs_number")?,
            permission_to_view,
            limit,
        },
        Operation::ScrUpdate {
            nhs_number: raw,
            expected_version,
            content,
        } => Domain::ScrUpdate {
            nhs_number: nhs_number(raw).at("nhs_number")?,
            expected_version,
            content: content.into_domain().at("content")?,
        },
        Operation::ScrSetPermission {
            nhs_number: raw,
            permission,
        } => Domain::ScrSetPermission {
            nhs_number: nhs_number(raw).at("nhs_number")?,
            permission: FromWireIndex::from_index(permission).at("permission")?,
        },
        Operation::EpsCreate { prescription } => Domain::EpsCreate {
            prescription: prescription.into_domain().at("prescription")?,
        },
        Operation::EpsUpdate { id, action } => Domain::EpsUpdate {
            id: eps::prescription_id(id).at("id")?,
            action: action.into_domain().at("action")?,
        },
        Operation::EpsReleaseNominated { limit } => Domain::EpsReleaseNominated { limit },
        other => unreachable!("not a SCR and EPS operation: {other:?}"),
    })
}

/// The wire form of e-RS operations.
fn ers_to_wire(operation: &Domain) -> Operation<'_> {
    match operation {
        Domain::ErsPublishService { service } => Operation::ErsPublishService {
            service: service.into(),
        },
        Domain::ErsPublishSlots { service, slots } => Operation::ErsPublishSlots {
            service: service.0,
            slots: List::Domain(slots),
        },
        Domain::ErsSearchSlots { query } => Operation::ErsSearchSlots {
            query: query.into(),
        },
        Domain::ErsCreateReferral { referral } => Operation::ErsCreateReferral {
            referral: referral.into(),
        },
        Domain::ErsRetrieveReferral { ubrn } => {
            Operation::ErsRetrieveReferral { ubrn: ubrn.value() }
        }
        Domain::ErsBook {
            ubrn,
            slot,
            service,
        } => Operation::ErsBook {
            ubrn: ubrn.value(),
            slot: slot.0,
            service: service.0,
        },
        Domain::ErsUpdateReferral { ubrn, action } => Operation::ErsUpdateReferral {
            ubrn: ubrn.value(),
            action: (*action).into(),
        },
        other => unreachable!("not a e-RS operation: {other:?}"),
    }
}

/// e-RS operations in the domain's types.
fn ers_into_domain(operation: Operation<'_>) -> Checked<Domain> {
    Ok(match operation {
        Operation::ErsPublishService { service } => Domain::ErsPublishService {
            service: service.into_domain().at("service")?,
        },
        Operation::ErsPublishSlots { service, slots } => Domain::ErsPublishSlots {
            service: spine_domain::ers::ServiceId(service),
            slots: slots.into_domain("slots", NewSlot::into_domain)?,
        },
        Operation::ErsSearchSlots { query } => Domain::ErsSearchSlots {
            query: query.into_domain().at("query")?,
        },
        Operation::ErsCreateReferral { referral } => Domain::ErsCreateReferral {
            referral: referral.into_domain().at("referral")?,
        },
        Operation::ErsRetrieveReferral { ubrn } => Domain::ErsRetrieveReferral {
            ubrn: ers::ubrn(ubrn).at("ubrn")?,
        },
        Operation::ErsBook {
            ubrn,
            slot,
            service,
        } => Domain::ErsBook {
            ubrn: ers::ubrn(ubrn).at("ubrn")?,
            slot: spine_domain::ers::SlotId(slot),
            service: spine_domain::ers::ServiceId(service),
        },
        Operation::ErsUpdateReferral { ubrn, action } => Domain::ErsUpdateReferral {
            ubrn: ers::ubrn(ubrn).at("ubrn")?,
            action: action.into(),
        },
        other => unreachable!("not a e-RS operation: {other:?}"),
    })
}

/// The wire form of GP2GP and the connection's route operations.
fn gp2gp_to_wire(operation: &Domain) -> Operation<'_> {
    match operation {
        Domain::Gp2gpStart {
            patient,
            document_size,
            document_sha256,
        } => Operation::Gp2gpStart {
            patient: patient.value(),
            document_size: *document_size,
            document_sha256: *document_sha256.as_bytes(),
        },
        Domain::Gp2gpSendChunk {
            transfer,
            index,
            bytes,
        } => Operation::Gp2gpSendChunk {
            transfer: transfer.get(),
            index: *index,
            bytes: Cow::Borrowed(bytes),
        },
        Domain::Gp2gpStatus { transfer } => Operation::Gp2gpStatus {
            transfer: transfer.get(),
        },
        Domain::Gp2gpFetchChunk { transfer, index } => Operation::Gp2gpFetchChunk {
            transfer: transfer.get(),
            index: *index,
        },
        Domain::Gp2gpAcknowledge {
            transfer,
            document_sha256,
        } => Operation::Gp2gpAcknowledge {
            transfer: transfer.get(),
            document_sha256: *document_sha256.as_bytes(),
        },
        Domain::Gp2gpCancel { transfer } => Operation::Gp2gpCancel {
            transfer: transfer.get(),
        },
        Domain::ConnectionRoute => Operation::ConnectionRoute,

        other => unreachable!("not a GP2GP and the connection's route operation: {other:?}"),
    }
}

/// GP2GP and the connection's route operations in the domain's types.
fn gp2gp_into_domain(operation: Operation<'_>) -> Checked<Domain> {
    use values::nhs_number;
    Ok(match operation {
        Operation::Gp2gpStart {
            patient,
            document_size,
            document_sha256,
        } => Domain::Gp2gpStart {
            patient: nhs_number(patient).at("patient")?,
            document_size,
            document_sha256: Sha256Hash::from_bytes(document_sha256),
        },
        Operation::Gp2gpSendChunk {
            transfer,
            index,
            bytes,
        } => Domain::Gp2gpSendChunk {
            transfer: transfer_id(transfer).at("transfer")?,
            index,
            bytes: bytes.into_owned(),
        },
        Operation::Gp2gpStatus { transfer } => Domain::Gp2gpStatus {
            transfer: transfer_id(transfer).at("transfer")?,
        },
        Operation::Gp2gpFetchChunk { transfer, index } => Domain::Gp2gpFetchChunk {
            transfer: transfer_id(transfer).at("transfer")?,
            index,
        },
        Operation::Gp2gpAcknowledge {
            transfer,
            document_sha256,
        } => Domain::Gp2gpAcknowledge {
            transfer: transfer_id(transfer).at("transfer")?,
            document_sha256: Sha256Hash::from_bytes(document_sha256),
        },
        Operation::Gp2gpCancel { transfer } => Domain::Gp2gpCancel {
            transfer: transfer_id(transfer).at("transfer")?,
        },
        Operation::ConnectionRoute => Domain::ConnectionRoute,

        other => unreachable!("not a GP2GP and the connection's route operation: {other:?}"),
    })
}
