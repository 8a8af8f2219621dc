//! A prescription's business status: the codes of `https://fhir.nhs.uk/CodeSystem/EPS-task-business-status`
//! that a one-off (acute) prescription passes through. Future-dated and repeat-dispensing
//! instances (`9000`, `9001`, `9005`) are not modelled.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a prescription stands. See [`super::state`] for the moves between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PrescriptionStatus {
    /// `0001`: issued, waiting for a pharmacy to download it.
    ToBeDispensed,
    /// `0002`: downloaded (released) to a pharmacy, nothing supplied yet.
    WithDispenser,
    /// `0003`: the pharmacy has supplied some of the items.
    WithDispenserActive,
    /// `0004`: not dispensed in time.
    Expired,
    /// `0005`: cancelled by the prescriber.
    Cancelled,
    /// `0006`: every item supplied in full.
    Dispensed,
    /// `0007`: the pharmacy supplied nothing and closed it.
    NotDispensed,
    /// `0008`: dispensed, and the pharmacy has claimed payment.
    Claimed,
    /// `0009`: not dispensed, and the pharmacy has sent its (empty) claim.
    NotClaimed,
}

impl PrescriptionStatus {
    /// Every status, in code order.
    pub const ALL: [Self; 9] = [
        Self::ToBeDispensed,
        Self::WithDispenser,
        Self::WithDispenserActive,
        Self::Expired,
        Self::Cancelled,
        Self::Dispensed,
        Self::NotDispensed,
        Self::Claimed,
        Self::NotClaimed,
    ];

    /// The four-digit code (`0001` to `0009`).
    pub fn code(self) -> &'static str {
        match self {
            Self::ToBeDispensed => "0001",
            Self::WithDispenser => "0002",
            Self::WithDispenserActive => "0003",
            Self::Expired => "0004",
            Self::Cancelled => "0005",
            Self::Dispensed => "0006",
            Self::NotDispensed => "0007",
            Self::Claimed => "0008",
            Self::NotClaimed => "0009",
        }
    }

    /// The code's display text. `0002`, `0003` and `0004`–`0007` are as the EPS specification
    /// spells them; `0001`, `0008` and `0009` (which it does not list) as NHS England's own EPS
    /// code spells them, `0009` being "No-Claimed" there.
    pub fn display(self) -> &'static str {
        match self {
            Self::ToBeDispensed => "To Be Dispensed",
            Self::WithDispenser => "With Dispenser",
            Self::WithDispenserActive => "With Dispenser - Active",
            Self::Expired => "Expired",
            Self::Cancelled => "Cancelled",
            Self::Dispensed => "Dispensed",
            Self::NotDispensed => "Not Dispensed",
            Self::Claimed => "Claimed",
            Self::NotClaimed => "No-Claimed",
        }
    }

    /// The status with this code, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.code() == code)
    }

    /// Whether nothing more can happen: expired, cancelled, claimed or not claimed.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::Cancelled | Self::Claimed | Self::NotClaimed
        )
    }

    /// Whether a pharmacy holds the prescription and may still act on it (`0002`, `0003`,
    /// `0006`, `0007`): other pharmacies are refused as "with another dispenser".
    pub fn is_held_by_dispenser(self) -> bool {
        matches!(
            self,
            Self::WithDispenser | Self::WithDispenserActive | Self::Dispensed | Self::NotDispensed
        )
    }

    /// Whether the prescription names a dispenser in this status: those held by one, and
    /// the two claimed ones (the claim stays with the pharmacy that made it).
    pub fn has_dispenser(self) -> bool {
        self.is_held_by_dispenser() || matches!(self, Self::Claimed | Self::NotClaimed)
    }
}

impl fmt::Display for PrescriptionStatus {
    /// The code and its display text, as `0006 Dispensed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_in_order_and_round_trip() {
        for (index, status) in PrescriptionStatus::ALL.into_iter().enumerate() {
            assert_eq!(status.code(), format!("{:04}", index + 1));
            assert_eq!(PrescriptionStatus::from_code(status.code()), Some(status));
        }
        assert_eq!(PrescriptionStatus::from_code("0010"), None);
        assert_eq!(
            PrescriptionStatus::WithDispenserActive.to_string(),
            "0003 With Dispenser - Active"
        );
    }
}
