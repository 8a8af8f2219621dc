//! One audit event: who did what to which patient's record, with what outcome, why and when;
//! and its byte encoding, which is what the chain hashes, so it must be deterministic.

use uuid::Uuid;

use crate::pds::nhs_number::NhsNumber;

/// Version byte at the start of every encoded event.
pub const EVENT_VERSION: u8 = 1;
/// Longest text field (role profile, organisation, system, reason, refusal code), in bytes.
pub const TEXT_BYTES_MAX: usize = 1024;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum AuditAction {
    /// A patient's demographic record was read.
    PdsRetrieve,
    /// A patient was returned by a search (one event per patient returned).
    PdsSearchResult,
    /// A patient record was created.
    PdsCreate,
    /// A patient record was updated.
    PdsUpdate,
    /// A death was notified.
    PdsDeathNotification,
    /// A search that disclosed no patient (refused, too many matches, or none found).
    PdsSearch,
    /// A privacy officer read the audit trail of a patient or the alerts of an organisation.
    AuditQuery,
    /// A Summary Care Record (or its history) was viewed.
    ScrView,
    /// A Summary Care Record was changed.
    ScrUpdate,
    /// A patient's consent preference for their Summary Care Record was recorded.
    ScrConsent,
    /// A prescription was issued.
    EpsPrescribe,
    /// A prescription was cancelled (or its cancellation marked pending).
    EpsCancel,
    /// A prescription was released to a pharmacy.
    EpsRelease,
    /// A pharmacy returned a prescription undispensed.
    EpsReturn,
    /// A dispense notification (full or partial).
    EpsDispense,
    /// A pharmacy closed a prescription without supplying it.
    EpsNotDispensed,
    /// A pharmacy withdrew its dispense notifications.
    EpsWithdraw,
    /// A pharmacy claimed for a prescription.
    EpsClaim,
    /// A provider published an e-RS service or slots.
    ErsPublish,
    /// A patient was referred (a referral created).
    ErsRefer,
    /// A referral was read.
    ErsView,
    /// A booking (or rebooking) was begun, confirmed or aborted.
    ErsBook,
    /// A booked appointment was cancelled.
    ErsCancelBooking,
    /// A referral was deferred to a provider.
    ErsDefer,
    /// A referral was cancelled.
    ErsCancelReferral,
    /// A GP2GP transfer of a patient's record was started.
    Gp2gpStart,
    /// A transfer's document was complete and checked (or failed its check).
    Gp2gpComplete,
    /// The receiving practice downloaded a chunk of a patient's record.
    Gp2gpFetch,
    /// The receiving practice acknowledged delivery.
    Gp2gpDeliver,
    /// A transfer was cancelled.
    Gp2gpCancel,
}

impl AuditAction {
    const ALL: [AuditAction; 30] = [
        AuditAction::PdsRetrieve,
        AuditAction::PdsSearchResult,
        AuditAction::PdsCreate,
        AuditAction::PdsUpdate,
        AuditAction::PdsDeathNotification,
        AuditAction::PdsSearch,
        AuditAction::AuditQuery,
        AuditAction::ScrView,
        AuditAction::ScrUpdate,
        AuditAction::ScrConsent,
        AuditAction::EpsPrescribe,
        AuditAction::EpsCancel,
        AuditAction::EpsRelease,
        AuditAction::EpsReturn,
        AuditAction::EpsDispense,
        AuditAction::EpsNotDispensed,
        AuditAction::EpsWithdraw,
        AuditAction::EpsClaim,
        AuditAction::ErsPublish,
        AuditAction::ErsRefer,
        AuditAction::ErsView,
        AuditAction::ErsBook,
        AuditAction::ErsCancelBooking,
        AuditAction::ErsDefer,
        AuditAction::ErsCancelReferral,
        AuditAction::Gp2gpStart,
        AuditAction::Gp2gpComplete,
        AuditAction::Gp2gpFetch,
        AuditAction::Gp2gpDeliver,
        AuditAction::Gp2gpCancel,
    ];

    fn code(self) -> u8 {
        match self {
            AuditAction::PdsRetrieve => 1,
            AuditAction::PdsSearchResult => 2,
            AuditAction::PdsCreate => 3,
            AuditAction::PdsUpdate => 4,
            AuditAction::PdsDeathNotification => 5,
            AuditAction::PdsSearch => 6,
            AuditAction::AuditQuery => 7,
            AuditAction::ScrView => 8,
            AuditAction::ScrUpdate => 9,
            AuditAction::ScrConsent => 10,
            AuditAction::EpsPrescribe => 11,
            AuditAction::EpsCancel => 12,
            AuditAction::EpsRelease => 13,
            AuditAction::EpsReturn => 14,
            AuditAction::EpsDispense => 15,
            AuditAction::EpsNotDispensed => 16,
            AuditAction::EpsWithdraw => 17,
            AuditAction::EpsClaim => 18,
            AuditAction::ErsPublish => 19,
            AuditAction::ErsRefer => 20,
            AuditAction::ErsView => 21,
            AuditAction::ErsBook => 22,
            AuditAction::ErsCancelBooking => 23,
            AuditAction::ErsDefer => 24,
            AuditAction::ErsCancelReferral => 25,
            AuditAction::Gp2gpStart => 26,
            AuditAction::Gp2gpComplete => 27,
            AuditAction::Gp2gpFetch => 28,
            AuditAction::Gp2gpDeliver => 29,
            AuditAction::Gp2gpCancel => 30,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.code() == code)
    }
}

/// How the request ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AuditOutcome {
    /// Patient data was disclosed or changed.
    Allowed,
    /// The request was refused; the code says why (for example `ACCESS_DENIED`).
    Refused {
        /// The error code the requester got.
        code: String,
    },
}

/// Why access was allowed outside the usual rules; a privacy officer is alerted to each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AccessAlert {
    /// Emergency access, with the stated reason in [`AuditEvent::reason`].
    EmergencyAccess,
    /// A legitimate relationship the user claimed themselves.
    SelfClaimedRelationship,
}

/// One audited access.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The end user.
    pub user: Uuid,
    /// The user's role profile.
    pub role_profile: String,
    /// The user's organisation (ODS code).
    pub organisation: String,
    /// The connecting system (ASID).
    pub system: String,
    /// What was done.
    pub action: AuditAction,
    /// Whose record, if one was identified.
    pub patient: Option<NhsNumber>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The reason given (emergency access, legitimate relationship), if any.
    pub reason: Option<String>,
    /// Whether the access raises a privacy-officer alert.
    pub alert: Option<AccessAlert>,
}

/// Why bytes are not an encoded event, or an event cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventCodecError {
    /// A text field is longer than [`TEXT_BYTES_MAX`].
    #[error("audit field {field} is {bytes} bytes; at most {TEXT_BYTES_MAX} are allowed")]
    TextTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        bytes: usize,
    },
    /// The bytes end early, hold an unknown code, or go on after the event.
    #[error("malformed audit event: {0}")]
    Malformed(&'static str),
}

fn put_text(out: &mut Vec<u8>, field: &'static str, text: &str) -> Result<(), EventCodecError> {
    if text.len() > TEXT_BYTES_MAX {
        return Err(EventCodecError::TextTooLong {
            field,
            bytes: text.len(),
        });
    }
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

impl AuditEvent {
    /// The event's bytes: version, time, user, texts (u16 length + UTF-8), codes; little-endian.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EventCodecError> {
        out.push(EVENT_VERSION);
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        out.extend_from_slice(self.user.as_bytes());
        put_text(out, "role_profile", &self.role_profile)?;
        put_text(out, "organisation", &self.organisation)?;
        put_text(out, "system", &self.system)?;
        out.push(self.action.code());
        out.extend_from_slice(&self.patient.map_or(0, NhsNumber::value).to_le_bytes());
        match &self.outcome {
            AuditOutcome::Allowed => out.push(0),
            AuditOutcome::Refused { code } => {
                out.push(1);
                put_text(out, "refusal code", code)?;
            }
        }
        match &self.reason {
            None => out.push(0),
            Some(reason) => {
                out.push(1);
                put_text(out, "reason", reason)?;
            }
        }
        out.push(match self.alert {
            None => 0,
            Some(AccessAlert::EmergencyAccess) => 1,
            Some(AccessAlert::SelfClaimedRelationship) => 2,
        });
        Ok(())
    }

    /// Reads an event written by [`AuditEvent::encode`]; all of `bytes` must be the event.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventCodecError> {
        let mut reader = Reader { bytes };
        if reader.u8()? != EVENT_VERSION {
            return Err(EventCodecError::Malformed("unknown event version"));
        }
        let time_ms = reader.u64()?;
        let user = Uuid::from_bytes(
            reader
                .take(16)?
                .try_into()
                .map_err(|_| EventCodecError::Malformed("user"))?,
        );
        let role_profile = reader.text()?;
        let organisation = reader.text()?;
        let system = reader.text()?;
        let action = AuditAction::from_code(reader.u8()?)
            .ok_or(EventCodecError::Malformed("unknown action"))?;
        let patient = match reader.u64()? {
            0 => None,
            value => Some(
                NhsNumber::try_from(value).map_err(|_| EventCodecError::Malformed("patient"))?,
            ),
        };
        let outcome = match reader.u8()? {
            0 => AuditOutcome::Allowed,
            1 => AuditOutcome::Refused {
                code: reader.text()?,
            },
            _ => return Err(EventCodecError::Malformed("unknown outcome")),
        };
        let reason = match reader.u8()? {
            0 => None,
            1 => Some(reader.text()?),
            _ => return Err(EventCodecError::Malformed("reason flag")),
        };
        let alert = match reader.u8()? {
            0 => None,
            1 => Some(AccessAlert::EmergencyAccess),
            2 => Some(AccessAlert::SelfClaimedRelationship),
            _ => return Err(EventCodecError::Malformed("unknown alert")),
        };
        if !reader.bytes.is_empty() {
            return Err(EventCodecError::Malformed("bytes after the event"));
        }
        Ok(Self {
            time_ms,
            user,
            role_profile,
            organisation,
            system,
            action,
            patient,
            outcome,
            reason,
            alert,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], EventCodecError> {
        if self.bytes.len() < count {
            return Err(EventCodecError::Malformed("ends early"));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, EventCodecError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, EventCodecError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    fn text(&mut self) -> Result<String, EventCodecError> {
        let mut length = [0u8; 2];
        length.copy_from_slice(self.take(2)?);
        let length = usize::from(u16::from_le_bytes(length));
        if length > TEXT_BYTES_MAX {
            return Err(EventCodecError::Malformed("text longer than allowed"));
        }
        String::from_utf8(self.take(length)?.to_vec())
            .map_err(|_| EventCodecError::Malformed("text is not UTF-8"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A realistic event for tests: a GP practice user reading a synthetic patient's record.
    pub(crate) fn sample(time_ms: u64) -> AuditEvent {
        AuditEvent {
            time_ms,
            user: Uuid::from_u128(0x5f0e_8c4d_0a6b_4c49_9d2e_1a3b_4c5d_6e7f),
            role_profile: "R8000".into(),
            organisation: "A81001".into(),
            system: "200000000001".into(),
            action: AuditAction::PdsRetrieve,
            patient: Some("9000000009".parse().unwrap()),
            outcome: AuditOutcome::Allowed,
            reason: None,
            alert: None,
        }
    }

    #[test]
    fn round_trips_every_variant() {
        let mut events = vec![sample(1)];
        let mut refused = sample(2);
        refused.outcome = AuditOutcome::Refused {
            code: "ACCESS_DENIED".into(),
        };
        refused.patient = None;
        events.push(refused);
        let mut emergency = sample(3);
        emergency.action = AuditAction::PdsUpdate;
        emergency.reason = Some("patient unconscious in A&E".into());
        emergency.alert = Some(AccessAlert::EmergencyAccess);
        events.push(emergency);
        for action in AuditAction::ALL {
            let mut event = sample(4);
            event.action = action;
            event.alert = Some(AccessAlert::SelfClaimedRelationship);
            events.push(event);
        }
        for event in events {
            let mut bytes = Vec::new();
            event.encode(&mut bytes).unwrap();
            assert_eq!(AuditEvent::decode(&bytes), Ok(event));
        }
    }

    #[test]
    fn limits_and_damage_give_specific_errors() {
        let mut long = sample(1);
        long.reason = Some("x".repeat(TEXT_BYTES_MAX + 1));
        assert_eq!(
            long.encode(&mut Vec::new()),
            Err(EventCodecError::TextTooLong {
                field: "reason",
                bytes: TEXT_BYTES_MAX + 1
            })
        );
        let mut bytes = Vec::new();
        sample(1).encode(&mut bytes).unwrap();
        assert!(AuditEvent::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert_eq!(
            AuditEvent::decode(&bytes),
            Err(EventCodecError::Malformed("bytes after the event"))
        );
    }
}
