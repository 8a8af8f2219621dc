//! What the simulated clients ask: a set-up (patients, e-RS services, slots and referrals,
//! prescriptions, patients who moved practice), then a seeded mix of every kind of PDS
//! request, SCR updates, EPS actions, e-RS bookings racing for few slots and GP2GP steps,
//! with retries that keep their request ids.

use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::eps::{EpsAction, NewLineItem, NewPrescription};
use spine_core::ers::{NewReferral, NewSlot, Priority, Service, ServiceId, SlotStart};
use spine_core::pds::patient::{ContactPoint, ContactSystem, ContactUse, Period};
use spine_core::pds::synthetic::{Population, SplitMix64, exact_trace, patient_at};
use spine_core::request::{Operation, Request};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

use crate::model::{Model, NOMINATED_PHARMACY};

/// Patients loaded by the set-up; one in four is restricted.
pub const PATIENTS: usize = 12;
/// e-RS services, each with [`SLOTS_PER_SERVICE`] slots: fewer slots than referrals, so
/// bookings race.
const SERVICES: u32 = 2;
const SLOTS_PER_SERVICE: u16 = 3;
/// Referrals made by the set-up.
pub const REFERRALS: usize = 8;
const FIRST_SERVICE: u32 = 31_000;

/// A request from `user` with an id drawn from `random`.
pub fn request(random: &mut SplitMix64, user: Uuid, operation: Operation) -> Request {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&random.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&random.next_u64().to_le_bytes());
    Request {
        id: uuid::Builder::from_random_bytes(bytes).into_uuid(),
        caller: demo_caller(user),
        justification: Justification::None,
        operation,
    }
}

/// The patients the set-up loads, registered at the demo GP's practice.
pub fn patients(seed: u64) -> Vec<Patient> {
    Population::new(seed)
        .take(PATIENTS)
        .enumerate()
        .map(|(index, mut patient)| {
            patient.general_practitioner = Some(practice());
            patient.restricted = index % 4 == 3;
            patient
        })
        .collect()
}

pub fn practice() -> spine_core::pds::values::OdsCode {
    demo_ids::RIVERSIDE
        .parse()
        .expect("the demo practice's code is valid")
}

/// The services the set-up publishes.
pub fn services() -> Vec<Service> {
    (0..SERVICES)
        .map(|number| Service {
            id: ServiceId(FIRST_SERVICE + number),
            name: format!("Simulated cardiology clinic {number}"),
            provider: "Y9H01".parse().expect("a valid provider code"),
            specialty: "CARDIOLOGY".parse().expect("a valid specialty"),
            clinic_type: "GENERAL".parse().expect("a valid clinic type"),
        })
        .collect()
}

/// The slots published for `service`.
pub fn slots(service: ServiceId) -> Operation {
    let date = "2031-03-03".parse().expect("a valid date");
    let slots = (0..SLOTS_PER_SERVICE)
        .map(|hour| NewSlot {
            start: SlotStart::new(date, 8 * 60 + 30 * hour).expect("a time of day"),
            duration_minutes: 20,
        })
        .collect();
    Operation::ErsPublishSlots { service, slots }
}

/// A referral of `patient` to the simulated services.
pub fn referral(patient: NhsNumber) -> Operation {
    Operation::ErsCreateReferral {
        referral: NewReferral {
            patient,
            specialty: "CARDIOLOGY".parse().expect("a valid specialty"),
            priority: Priority::Routine,
            shortlist: services().iter().map(|service| service.id).collect(),
        },
    }
}

/// Prescriptions issued by the set-up, alternately nominated and not.
pub const PRESCRIPTIONS: usize = 6;

/// A prescription for `patient`, nominated to the demo pharmacist's pharmacy or not.
pub fn prescription(patient: NhsNumber, nominated: bool) -> Operation {
    Operation::EpsCreate {
        prescription: NewPrescription {
            patient,
            nominated_pharmacy: nominated
                .then(|| NOMINATED_PHARMACY.parse().expect("a valid code")),
            items: vec![NewLineItem {
                code: "317972000".parse().expect("a valid dm+d code"),
                description: "Amoxicillin 250mg capsules".into(),
                quantity: 21,
                unit: "capsule".into(),
                dosage: "One capsule three times a day".into(),
            }],
        },
    }
}

/// An action on a prescription by one of the two demo pharmacists (or a cancellation by the
/// prescriber): most are refused in most states, which is the point.
fn prescription_action(random: &mut SplitMix64, model: &Model) -> Request {
    let id = model.prescriptions[random.below(model.prescriptions.len() as u64) as usize];
    let (user, pharmacy) = if random.below(3) == 0 {
        (demo_ids::SECOND_PHARMACIST, "FY002")
    } else {
        (demo_ids::PHARMACIST, NOMINATED_PHARMACY)
    };
    let pharmacy: spine_core::pds::values::OdsCode = pharmacy.parse().expect("a valid code");
    let (user, action) = match random.below(8) {
        0 | 1 => (user, EpsAction::Release { pharmacy }),
        2 | 3 => {
            let quantity = 1 + random.below(21) as u32;
            let lines = vec![(0, quantity)];
            (user, EpsAction::Dispense { pharmacy, lines })
        }
        4 => (user, EpsAction::Return { pharmacy }),
        5 => (user, EpsAction::NotDispensed { pharmacy }),
        6 => (user, EpsAction::Claim { pharmacy }),
        _ => (
            demo_ids::GP,
            EpsAction::Cancel {
                organisation: practice(),
            },
        ),
    };
    request(random, user, Operation::EpsUpdate { id, action })
}

/// The next request of the mix, or a retry of one sent before.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn next(random: &mut SplitMix64, model: &Model, seed: u64, created: &mut u64) -> Request {
    let numbers: Vec<NhsNumber> = model.patients.keys().copied().collect();
    let any_patient =
        |random: &mut SplitMix64| numbers[random.below(numbers.len() as u64) as usize];
    match random.below(100) {
        0..25 => {
            let nhs_number = any_patient(random);
            request(random, demo_ids::GP, Operation::PdsRetrieve { nhs_number })
        }
        25..35 if !model.prescriptions.is_empty() => prescription_action(random, model),
        35..38 => {
            let limit = 1 + random.below(3) as u8;
            request(
                random,
                demo_ids::PHARMACIST,
                Operation::EpsReleaseNominated { limit },
            )
        }
        38..52 => {
            let known = &model.patients[&any_patient(random)];
            let mut patient = known.latest.clone();
            patient.restricted = known.restricted;
            if known.restricted {
                // The answers withhold these; an update must send them again.
                patient.general_practitioner = Some(practice());
            }
            patient.telecom = vec![ContactPoint {
                system: ContactSystem::Phone,
                value: format!("07700 9{:05}", random.below(100_000)),
                contact_use: ContactUse::Mobile,
                period: Period::default(),
            }];
            let expected_version = patient.version;
            request(
                random,
                demo_ids::GP,
                Operation::PdsUpdate {
                    patient,
                    expected_version,
                },
            )
        }
        56..60 if !model.transfers.list.is_empty() => {
            model.transfers.next(random).expect("there are transfers")
        }
        60..64 => {
            let known = &model.patients[&any_patient(random)];
            let query = exact_trace(&known.latest);
            request(random, demo_ids::GP, Operation::PdsSearch { query })
        }
        64..68 => {
            let nhs_number = any_patient(random);
            let expected_version = model.patients[&nhs_number].scr_version;
            let allergy = ScrEntryInput {
                code: None,
                text: format!("Allergy {}", random.below(1000)),
            };
            let content = ScrContent {
                allergies: vec![allergy],
                ..ScrContent::default()
            };
            let operation = Operation::ScrUpdate {
                nhs_number,
                expected_version,
                content,
            };
            request(random, demo_ids::GP, operation)
        }
        68..86 if !model.referrals.is_empty() && !model.slots.is_empty() => {
            let ubrn = model.referrals[random.below(model.referrals.len() as u64) as usize];
            let slot = &model.slots[random.below(model.slots.len() as u64) as usize];
            request(
                random,
                demo_ids::GP,
                Operation::ErsBook {
                    ubrn,
                    slot: slot.id(),
                    service: slot.service(),
                },
            )
        }
        86..91 => {
            // Another population's people, so the trace rarely finds them.
            let mut patient = patient_at(seed ^ 0x5EED, *created, any_patient(random));
            *created += 1;
            patient.general_practitioner = Some(practice());
            request(random, demo_ids::GP, Operation::PdsCreate { patient })
        }
        _ => {
            let writes = model.answered_writes();
            if writes.is_empty() {
                let nhs_number = any_patient(random);
                return request(random, demo_ids::GP, Operation::PdsRetrieve { nhs_number });
            }
            writes[random.below(writes.len() as u64) as usize].clone()
        }
    }
}
