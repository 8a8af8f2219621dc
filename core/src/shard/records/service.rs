//! Kind 8, an e-RS service with its slot counter: the payload's types at version 1, field for
//! field as `core/RECORDS.md` gives them, and their conversions to and from the shard's
//! [`ServiceRecord`] (which holds the domain's [`Service`]).

use std::borrow::Cow;
use std::ops::Range;

use super::versioned;
use serde::{Deserialize, Serialize};

use super::{MalformedRecord, read};
use crate::ers::slot::SLOTS_PER_SERVICE_MAX;
use crate::ers::{ClinicType, Service, ServiceId, Specialty};
use crate::pds::values::OdsCode;
use crate::shard::ers::ServiceRecord;
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(record: &ServiceRecord) -> Vec<u8> {
    ServiceRecordPayload::from(record).encode()
}

/// The record in `payload`: the service checked as a published one is (a name of 1 to 200
/// characters, no control character), and its last publication within the slots published,
/// themselves at most [`SLOTS_PER_SERVICE_MAX`].
pub fn decode(payload: &[u8]) -> Result<ServiceRecord, MalformedRecord> {
    read(
        RecordKind::Service,
        PAYLOAD_VERSION,
        payload,
        ServiceRecordPayload::into_domain,
        validate,
    )
}

fn validate(record: &ServiceRecord) -> Result<(), String> {
    record
        .service
        .validate()
        .map_err(|error| error.to_string())?;
    if record.last_publication.end > record.slots_published
        || record.slots_published > SLOTS_PER_SERVICE_MAX
    {
        return Err(format!(
            "publication {:?} with {} slots published",
            record.last_publication, record.slots_published
        ));
    }
    Ok(())
}

/// `ServiceRecord`, the payload after its version byte.
#[derive(Serialize, Deserialize)]
#[serde(rename = "ServiceRecord")]
pub struct ServiceRecordPayload<'a> {
    service: ServicePayload<'a>,
    slots_published: u32,
    last_publication: Range<u32>,
}

impl<'a> From<&'a ServiceRecord> for ServiceRecordPayload<'a> {
    fn from(record: &'a ServiceRecord) -> Self {
        let service = &record.service;
        Self {
            service: ServicePayload {
                id: service.id,
                name: Cow::Borrowed(&service.name),
                provider: Cow::Borrowed(&service.provider),
                specialty: Cow::Borrowed(&service.specialty),
                clinic_type: Cow::Borrowed(&service.clinic_type),
            },
            slots_published: record.slots_published,
            last_publication: record.last_publication.clone(),
        }
    }
}

impl ServiceRecordPayload<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }

    fn into_domain(self) -> Result<ServiceRecord, String> {
        let service = self.service;
        Ok(ServiceRecord {
            service: Service {
                id: service.id,
                name: service.name.into_owned(),
                provider: service.provider.into_owned(),
                specialty: service.specialty.into_owned(),
                clinic_type: service.clinic_type.into_owned(),
            },
            slots_published: self.slots_published,
            last_publication: self.last_publication,
        })
    }
}

/// `Service`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Service")]
struct ServicePayload<'a> {
    id: ServiceId,
    name: Cow<'a, str>,
    provider: Cow<'a, OdsCode>,
    specialty: Cow<'a, Specialty>,
    clinic_type: Cow<'a, ClinicType>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ServiceRecord {
        ServiceRecord {
            service: Service {
                id: ServiceId(11_000),
                name: "City General Cardiology".into(),
                provider: "Y9H01".parse().expect("a code"),
                specialty: "CARDIOLOGY".parse().expect("a specialty"),
                clinic_type: "GENERAL".parse().expect("a clinic type"),
            },
            slots_published: 12,
            last_publication: 4..12,
        }
    }

    #[test]
    fn a_service_round_trips() {
        let payload = encode(&record());
        assert_eq!(payload[0], PAYLOAD_VERSION);
        assert_eq!(decode(&payload), Ok(record()));
    }

    #[test]
    fn damage_is_refused_and_named() {
        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        assert_eq!(message(&[]), "stored service record is malformed: empty");
        let mut longer = encode(&record());
        longer.push(0);
        assert_eq!(
            message(&longer),
            "stored service record is malformed: 1 bytes after the record"
        );
        let mut unnamed = record();
        unnamed.service.name = String::new();
        assert_eq!(
            message(&encode(&unnamed)),
            "stored service record is malformed: service.name must not be empty"
        );
        let mut overrun = record();
        overrun.last_publication = 4..13;
        assert_eq!(
            message(&encode(&overrun)),
            "stored service record is malformed: publication 4..13 with 12 slots published"
        );
    }
}
