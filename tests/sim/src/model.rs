//! The reference model: what every request sent so far must have done, from the answers the
//! clients got, and the checks of each answer as it arrives.
//!
//! An answer is the only thing a client can rely on, so the model is built from answers alone:
//! a request answered `Ok` happened exactly once; a request whose answer a crash cut off
//! (unknown) happened once or not at all, and its retry (same id) settles which.

use std::collections::{BTreeMap, BTreeSet};

use spine_core::eps::{EpsAction, Prescription, PrescriptionId};
use spine_core::ers::{Slot, Ubrn};
use spine_core::request::{Operation, Reply, Request, Response};
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

use crate::gp2gp::Transfers;

/// A broken promise, found by a check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

macro_rules! violation {
    ($($arg:tt)*) => {
        Err(Violation(format!($($arg)*)))
    };
}
pub(crate) use violation;

/// What the model knows of one patient.
#[derive(Debug)]
pub struct PatientModel {
    /// The record as the newest answer showed it.
    pub latest: Patient,
    /// The version the record was loaded or created at.
    pub base_version: u32,
    /// Whether the record is restricted (its address, telecom and practice never leave).
    pub restricted: bool,
    /// Updates answered `Ok`, by request id.
    pub updates_applied: BTreeSet<Uuid>,
    /// Reads answered `Ok` (each a disclosure that must be in the trail).
    pub reads_disclosed: u32,
    /// Summary Care Record updates answered `Ok`, by request id (each makes one version).
    pub scr_updates_applied: BTreeSet<Uuid>,
    /// The newest Summary Care Record version an answer showed (0: none yet).
    pub scr_version: u32,
}

/// One request sent, and what became of it.
#[derive(Debug)]
pub struct Sent {
    /// The request, kept to retry it with its id.
    pub request: Request,
    /// Its first answer; `None` while unknown.
    pub answer: Option<Response>,
}

/// Everything sent and answered in one seed.
#[derive(Debug, Default)]
pub struct Model {
    /// Patients by NHS number.
    pub patients: BTreeMap<NhsNumber, PatientModel>,
    /// Requests by id, and the order they were first sent in.
    pub sent: BTreeMap<Uuid, Sent>,
    order: Vec<Uuid>,
    /// Referrals that may be booked.
    pub referrals: Vec<Ubrn>,
    /// Slots that may be booked.
    pub slots: Vec<Slot>,
    /// Prescriptions that may be acted on.
    pub prescriptions: Vec<PrescriptionId>,
    /// GP2GP transfers of the patients who moved.
    pub transfers: Transfers,
    /// Each prescription's versions as answers showed them, with the action that made each.
    versions: BTreeMap<PrescriptionId, BTreeMap<u32, (Prescription, Option<EpsAction>)>>,
    /// Answers checked.
    pub answers: u64,
    /// Prescription versions checked against the state machine.
    pub transitions_checked: u64,
}

/// The pharmacy a nominated release releases to (the demo pharmacist's).
pub const NOMINATED_PHARMACY: &str = "FY001";

impl Model {
    /// Notes that `request` was sent (again, for a retry).
    pub fn sent(&mut self, request: &Request) {
        if !self.sent.contains_key(&request.id) {
            self.order.push(request.id);
            self.sent.insert(
                request.id,
                Sent {
                    request: request.clone(),
                    answer: None,
                },
            );
        }
    }

    /// Requests sent whose answer nobody got, oldest first.
    pub fn unknown(&self) -> Vec<Request> {
        self.order
            .iter()
            .filter_map(|id| self.sent.get(id))
            .filter(|sent| sent.answer.is_none())
            .map(|sent| sent.request.clone())
            .collect()
    }

    /// Writes answered so far whose retry must give the first answer again, oldest first.
    pub fn answered_writes(&self) -> Vec<Request> {
        self.order
            .iter()
            .filter_map(|id| self.sent.get(id))
            .filter(|sent| sent.answer.is_some() && replays_first_answer(&sent.request))
            .map(|sent| sent.request.clone())
            .collect()
    }

    /// Adds a patient the set-up loaded.
    pub fn add_patient(&mut self, patient: Patient) {
        self.patients.insert(
            patient.nhs_number,
            PatientModel {
                base_version: patient.version,
                restricted: patient.restricted,
                latest: patient,
                updates_applied: BTreeSet::new(),
                reads_disclosed: 0,
                scr_updates_applied: BTreeSet::new(),
                scr_version: 0,
            },
        );
    }

    /// Checks `response` to `request` and learns from it.
    pub fn answered(&mut self, request: &Request, response: &Response) -> Result<(), Violation> {
        self.answers += 1;
        self.check_disclosure(response)?;
        let sent = self
            .sent
            .get_mut(&request.id)
            .expect("every request is noted before it is sent");
        if let Some(first) = &sent.answer {
            if replays_first_answer(request) && first != response {
                return violation!(
                    "request {} was answered twice differently: first {first:?}, then \
                     {response:?}",
                    request.id
                );
            }
            return Ok(());
        }
        sent.answer = Some(response.clone());
        self.transfers.answered(request, response)?;
        match (&request.operation, response) {
            (Operation::PdsUpdate { patient, .. }, Ok(Reply::Patient(updated))) => {
                let known = self.patient_mut(patient.nhs_number)?;
                known.updates_applied.insert(request.id);
                if updated.version > known.latest.version {
                    known.latest = updated.clone();
                }
            }
            (Operation::ScrUpdate { nhs_number, .. }, Ok(Reply::Scr(record))) => {
                let known = self.patient_mut(*nhs_number)?;
                known.scr_updates_applied.insert(request.id);
                known.scr_version = known.scr_version.max(record.version);
            }
            (Operation::ScrView { nhs_number, .. }, Ok(Reply::Scr(record))) => {
                let known = self.patient_mut(*nhs_number)?;
                known.scr_version = known.scr_version.max(record.version);
            }
            (Operation::PdsRetrieve { nhs_number }, Ok(Reply::Patient(_))) => {
                self.patient_mut(*nhs_number)?.reads_disclosed += 1;
            }
            (Operation::EpsCreate { .. }, Ok(Reply::Prescription(created))) => {
                self.prescriptions.push(created.id);
                self.prescription_version(created, None)?;
            }
            (Operation::EpsUpdate { action, .. }, Ok(Reply::Prescription(updated))) => {
                self.prescription_version(updated, Some(action.clone()))?;
            }
            (Operation::EpsReleaseNominated { .. }, Ok(Reply::Prescriptions(released))) => {
                let pharmacy = NOMINATED_PHARMACY.parse().expect("a valid code");
                for prescription in released {
                    let action = EpsAction::Release {
                        pharmacy: Clone::clone(&pharmacy),
                    };
                    self.prescription_version(prescription, Some(action))?;
                }
            }
            (Operation::PdsCreate { patient }, Ok(Reply::Patient(created))) => {
                if self.patients.contains_key(&created.nhs_number) {
                    return violation!(
                        "a create was given {}, a number already in use",
                        created.nhs_number
                    );
                }
                let mut created = created.clone();
                // The answer withholds a restricted patient's fields; the model keeps the
                // record as sent, to update it later.
                created.restricted = patient.restricted;
                self.add_patient(created);
            }
            _ => {}
        }
        Ok(())
    }

    /// Learns one version of a prescription: no two answers may show one version differently
    /// (an update applied over a version another already replaced), and each version must be
    /// what the state machine makes of the one before with the action that made it.
    fn prescription_version(
        &mut self,
        prescription: &Prescription,
        action: Option<EpsAction>,
    ) -> Result<(), Violation> {
        let versions = self.versions.entry(prescription.id).or_default();
        let version = prescription.version;
        if let Some((known, _)) = versions.get(&version) {
            if known != prescription {
                return violation!(
                    "prescription {} has two versions {version}: {known:?} and {prescription:?}",
                    prescription.id
                );
            }
            return Ok(());
        }
        versions.insert(version, (prescription.clone(), action));
        for later in [version, version + 1] {
            let (Some((before, _)), Some((after, Some(action)))) =
                (versions.get(&(later - 1)), versions.get(&later))
            else {
                continue;
            };
            let at_ms = after.history.last().map_or(0, |change| change.at_ms);
            match spine_core::eps::apply(before, action, at_ms) {
                Ok(expected) if &expected == after => self.transitions_checked += 1,
                outcome => {
                    return violation!(
                        "prescription {} version {later} is not what {action:?} makes of \
                         version {}: the state machine says {outcome:?}, the answer {after:?}",
                        after.id,
                        later - 1
                    );
                }
            }
        }
        Ok(())
    }

    fn patient_mut(&mut self, nhs_number: NhsNumber) -> Result<&mut PatientModel, Violation> {
        match self.patients.get_mut(&nhs_number) {
            Some(patient) => Ok(patient),
            None => violation!("an answer names {nhs_number}, a patient never loaded"),
        }
    }

    /// A restricted patient's address, telecom and practice are in no answer.
    fn check_disclosure(&self, response: &Response) -> Result<(), Violation> {
        let patients: Vec<&Patient> = match response {
            Ok(Reply::Patient(patient)) => vec![patient],
            Ok(Reply::Matches(matches)) => matches.iter().map(|found| &found.patient).collect(),
            _ => Vec::new(),
        };
        for patient in patients {
            let restricted = self
                .patients
                .get(&patient.nhs_number)
                .is_some_and(|known| known.restricted);
            if restricted
                && (!patient.addresses.is_empty()
                    || !patient.telecom.is_empty()
                    || patient.general_practitioner.is_some())
            {
                return violation!(
                    "restricted patient {} disclosed with address, telecom or practice: \
                     {patient:?}",
                    patient.nhs_number
                );
            }
        }
        Ok(())
    }
}

/// Whether a retry of `request` must get its first answer back (the shard keeps the outcome
/// of these writes under the request id).
pub fn replays_first_answer(request: &Request) -> bool {
    matches!(
        request.operation,
        Operation::PdsUpdate { .. }
            | Operation::PdsCreate { .. }
            | Operation::PdsLoad { .. }
            | Operation::ErsCreateReferral { .. }
            | Operation::EpsCreate { .. }
            | Operation::ScrUpdate { .. }
            | Operation::Gp2gpStart { .. }
    )
}
