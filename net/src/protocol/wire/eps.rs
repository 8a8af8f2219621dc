//! The Electronic Prescription Service's messages: a new prescription and the actions on one.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::eps::{self, DmdCode, PrescriptionId};

use super::InvalidField;
use super::invalid_field::Checked;
use super::invalid_field::{Within, each, optional};
use super::list::List;
use super::values::{self, text};

/// A prescription's short-form id, as its text (any case).
pub(super) fn prescription_id(raw: Cow<'_, str>) -> Checked<PrescriptionId> {
    raw.parse()
        .map_err(|error| InvalidField::id("prescription_id", error))
}

/// `NewPrescription`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct NewPrescription<'a> {
    patient: u64,
    nominated_pharmacy: Option<Cow<'a, str>>,
    items: List<'a, eps::NewLineItem, NewLineItem<'a>>,
}

/// `NewLineItem`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NewLineItem<'a> {
    code: u64,
    description: Cow<'a, str>,
    quantity: u32,
    unit: Cow<'a, str>,
    dosage: Cow<'a, str>,
}

impl<'a> From<&'a eps::NewPrescription> for NewPrescription<'a> {
    fn from(prescription: &'a eps::NewPrescription) -> Self {
        Self {
            patient: prescription.patient.value(),
            nominated_pharmacy: prescription.nominated_pharmacy.as_ref().map(text),
            items: List::Domain(&prescription.items),
        }
    }
}

impl NewPrescription<'_> {
    pub(super) fn into_domain(self) -> Checked<eps::NewPrescription> {
        Ok(eps::NewPrescription {
            patient: values::nhs_number(self.patient).at("patient")?,
            nominated_pharmacy: optional(self.nominated_pharmacy, values::ods_code)
                .at("nominated_pharmacy")?,
            items: self.items.into_domain("items", NewLineItem::into_domain)?,
        })
    }
}

impl<'a> From<&'a eps::NewLineItem> for NewLineItem<'a> {
    fn from(item: &'a eps::NewLineItem) -> Self {
        Self {
            code: item.code.value(),
            description: text(&item.description),
            quantity: item.quantity,
            unit: text(&item.unit),
            dosage: text(&item.dosage),
        }
    }
}

impl NewLineItem<'_> {
    fn into_domain(self) -> Checked<eps::NewLineItem> {
        let code =
            DmdCode::try_from(self.code).map_err(|error| InvalidField::value("dmd_code", error));
        Ok(eps::NewLineItem {
            code: code.at("code")?,
            description: self.description.into_owned(),
            quantity: self.quantity,
            unit: self.unit.into_owned(),
            dosage: self.dosage.into_owned(),
        })
    }
}

/// `EpsAction`: what a prescriber or pharmacy asks of a prescription.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum EpsAction<'a> {
    Cancel {
        organisation: Cow<'a, str>,
    },
    Release {
        pharmacy: Cow<'a, str>,
    },
    Return {
        pharmacy: Cow<'a, str>,
    },
    Dispense {
        pharmacy: Cow<'a, str>,
        lines: Vec<(u64, u32)>,
    },
    NotDispensed {
        pharmacy: Cow<'a, str>,
    },
    Withdraw {
        pharmacy: Cow<'a, str>,
    },
    Claim {
        pharmacy: Cow<'a, str>,
    },
}

impl<'a> From<&'a eps::EpsAction> for EpsAction<'a> {
    fn from(action: &'a eps::EpsAction) -> Self {
        use eps::EpsAction as Domain;
        match action {
            Domain::Cancel { organisation } => Self::Cancel {
                organisation: text(organisation),
            },
            Domain::Release { pharmacy } => Self::Release {
                pharmacy: text(pharmacy),
            },
            Domain::Return { pharmacy } => Self::Return {
                pharmacy: text(pharmacy),
            },
            Domain::Dispense { pharmacy, lines } => Self::Dispense {
                pharmacy: text(pharmacy),
                lines: lines
                    .iter()
                    .map(|&(item, quantity)| (item as u64, quantity))
                    .collect(),
            },
            Domain::NotDispensed { pharmacy } => Self::NotDispensed {
                pharmacy: text(pharmacy),
            },
            Domain::Withdraw { pharmacy } => Self::Withdraw {
                pharmacy: text(pharmacy),
            },
            Domain::Claim { pharmacy } => Self::Claim {
                pharmacy: text(pharmacy),
            },
        }
    }
}

impl EpsAction<'_> {
    pub(super) fn into_domain(self) -> Checked<eps::EpsAction> {
        use eps::EpsAction as Domain;
        let pharmacy = |code| values::ods_code(code).at("pharmacy");
        Ok(match self {
            Self::Cancel { organisation } => Domain::Cancel {
                organisation: values::ods_code(organisation).at("organisation")?,
            },
            Self::Release { pharmacy: code } => Domain::Release {
                pharmacy: pharmacy(code)?,
            },
            Self::Return { pharmacy: code } => Domain::Return {
                pharmacy: pharmacy(code)?,
            },
            Self::Dispense {
                pharmacy: code,
                lines,
            } => Domain::Dispense {
                pharmacy: pharmacy(code)?,
                lines: each(lines, "lines", |(item, quantity)| {
                    let item = usize::try_from(item).map_err(|_| {
                        InvalidField::value("item_index", format_args!("{item} is no item's index"))
                    });
                    Ok((item?, quantity))
                })?,
            },
            Self::NotDispensed { pharmacy: code } => Domain::NotDispensed {
                pharmacy: pharmacy(code)?,
            },
            Self::Withdraw { pharmacy: code } => Domain::Withdraw {
                pharmacy: pharmacy(code)?,
            },
            Self::Claim { pharmacy: code } => Domain::Claim {
                pharmacy: pharmacy(code)?,
            },
        })
    }
}
