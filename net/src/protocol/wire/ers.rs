//! e-Referrals' messages: services, slots, slot searches, referrals and their actions.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::ers::{self, ClinicType, ServiceId, SlotStart, Specialty, Ubrn};

use super::InvalidField;
use super::codes::{CodeList, FromWireIndex};
use super::invalid_field::Checked;
use super::invalid_field::{Within, each, optional};
use super::values::{self, Date, text};

/// A referral's UBRN, as its integer.
pub(super) fn ubrn(raw: u64) -> Checked<Ubrn> {
    Ubrn::try_from(raw).map_err(|error| InvalidField::id("ubrn", error))
}

fn specialty(raw: Cow<'_, str>) -> Checked<Specialty> {
    Specialty::try_from(raw.into_owned()).map_err(|error| InvalidField::value("specialty", error))
}

fn clinic_type(raw: Cow<'_, str>) -> Checked<ClinicType> {
    ClinicType::try_from(raw.into_owned())
        .map_err(|error| InvalidField::value("clinic_type", error))
}

/// `Service`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Service<'a> {
    id: u32,
    name: Cow<'a, str>,
    provider: Cow<'a, str>,
    specialty: Cow<'a, str>,
    clinic_type: Cow<'a, str>,
}

impl<'a> From<&'a ers::Service> for Service<'a> {
    fn from(service: &'a ers::Service) -> Self {
        Self {
            id: service.id.0,
            name: text(&service.name),
            provider: text(&service.provider),
            specialty: text(service.specialty.as_str()),
            clinic_type: text(service.clinic_type.as_str()),
        }
    }
}

impl Service<'_> {
    pub(super) fn into_domain(self) -> Checked<ers::Service> {
        Ok(ers::Service {
            id: ServiceId(self.id),
            name: self.name.into_owned(),
            provider: values::ods_code(self.provider).at("provider")?,
            specialty: specialty(self.specialty).at("specialty")?,
            clinic_type: clinic_type(self.clinic_type).at("clinic_type")?,
        })
    }
}

/// `NewSlot`: its start, `(Date, u16 minute)`, and its length.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct NewSlot {
    start: (Date, u16),
    duration_minutes: u16,
}

impl From<&ers::NewSlot> for NewSlot {
    fn from(slot: &ers::NewSlot) -> Self {
        Self {
            start: (slot.start.date().into(), slot.start.minute()),
            duration_minutes: slot.duration_minutes,
        }
    }
}

impl NewSlot {
    pub(super) fn into_domain(self) -> Checked<ers::NewSlot> {
        let (date, minute) = self.start;
        let date = date.into_domain().at("start")?;
        let start = SlotStart::new(date, minute)
            .map_err(|error| InvalidField::value("slot_start", error))
            .at("start")?;
        Ok(ers::NewSlot {
            start,
            duration_minutes: self.duration_minutes,
        })
    }
}

/// `SlotQuery`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SlotQuery<'a> {
    specialty: Cow<'a, str>,
    clinic_type: Option<Cow<'a, str>>,
    from: Date,
    to: Date,
    provider: Option<Cow<'a, str>>,
    limit: u32,
}

impl<'a> From<&'a ers::SlotQuery> for SlotQuery<'a> {
    fn from(query: &'a ers::SlotQuery) -> Self {
        Self {
            specialty: text(query.specialty.as_str()),
            clinic_type: query.clinic_type.as_ref().map(|code| text(code.as_str())),
            from: query.from.into(),
            to: query.to.into(),
            provider: query.provider.as_ref().map(text),
            limit: query.limit,
        }
    }
}

impl SlotQuery<'_> {
    pub(super) fn into_domain(self) -> Checked<ers::SlotQuery> {
        Ok(ers::SlotQuery {
            specialty: specialty(self.specialty).at("specialty")?,
            clinic_type: optional(self.clinic_type, clinic_type).at("clinic_type")?,
            from: self.from.into_domain().at("from")?,
            to: self.to.into_domain().at("to")?,
            provider: optional(self.provider, values::ods_code).at("provider")?,
            limit: self.limit,
        })
    }
}

/// `NewReferral`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct NewReferral<'a> {
    patient: u64,
    specialty: Cow<'a, str>,
    priority: u32,
    shortlist: Vec<u32>,
}

impl<'a> From<&'a ers::NewReferral> for NewReferral<'a> {
    fn from(referral: &'a ers::NewReferral) -> Self {
        Self {
            patient: referral.patient.value(),
            specialty: text(referral.specialty.as_str()),
            priority: referral.priority.index(),
            shortlist: referral.shortlist.iter().map(|service| service.0).collect(),
        }
    }
}

impl NewReferral<'_> {
    pub(super) fn into_domain(self) -> Checked<ers::NewReferral> {
        Ok(ers::NewReferral {
            patient: values::nhs_number(self.patient).at("patient")?,
            specialty: specialty(self.specialty).at("specialty")?,
            priority: ers::Priority::from_index(self.priority).at("priority")?,
            shortlist: each(self.shortlist, "shortlist", |id| Ok(ServiceId(id)))?,
        })
    }
}

/// `ReferralAction`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) enum ReferralAction {
    CancelBooking,
    DeferToProvider { service: u32 },
    Cancel,
}

impl From<ers::ReferralAction> for ReferralAction {
    fn from(action: ers::ReferralAction) -> Self {
        match action {
            ers::ReferralAction::CancelBooking => Self::CancelBooking,
            ers::ReferralAction::DeferToProvider { service } => {
                Self::DeferToProvider { service: service.0 }
            }
            ers::ReferralAction::Cancel => Self::Cancel,
        }
    }
}

impl From<ReferralAction> for ers::ReferralAction {
    fn from(action: ReferralAction) -> Self {
        match action {
            ReferralAction::CancelBooking => Self::CancelBooking,
            ReferralAction::DeferToProvider { service } => Self::DeferToProvider {
                service: ServiceId(service),
            },
            ReferralAction::Cancel => Self::Cancel,
        }
    }
}
