//! GP2GP in the simulation: patients who moved from Hillview to the demo practice (in the
//! set-up), whose records Hillview sends and the demo practice receives. The steps are sent in
//! any order, repeated with new ids and retried with their own, racing each other and the
//! crashes. Every answer is checked as it arrives: the start is one transfer (its retries name
//! the same one), no transfer is ever `Failed` (only the declared bytes are sent), and a chunk
//! downloaded is the bytes uploaded. Answers of one moment may arrive in any order, so what
//! needs order is checked once things settle (after each restart, and at the end), by a status
//! asked after every earlier answer is in: a chunk acknowledged is held (whatever crashed), the
//! state is no earlier than any answer showed (`Sending`, `Complete`, `Delivered`), and once an
//! acknowledgement was answered it is `Delivered`.
//!
//! Each document is one chunk (a few KiB): the simulated logs keep their records small so
//! that they roll segments often; chunking is the core's unit and end-to-end tests' concern.

use spine_core::NhsNumber;
use spine_core::access::directory_file::demo_ids;
use spine_core::gp2gp::{Sha256Hash, TransferId, TransferState};
use spine_core::pds::synthetic::SplitMix64;
use spine_core::request::{Operation, Reply, Request, Response, TransferStatus};

use crate::model::{Violation, violation};
use crate::workload::request;

/// Patients the set-up moves, each with a transfer to make.
pub const MOVERS: usize = 2;
/// A document's size at most (one chunk).
const DOCUMENT_BYTES_MAX: u64 = 12 * 1024;

/// What the answers say of one transfer.
#[derive(Debug)]
pub struct TransferModel {
    /// Whose record.
    pub patient: NhsNumber,
    bytes: Vec<u8>,
    sha256: Sha256Hash,
    /// The start, kept to be retried with its id until answered.
    start: Request,
    /// The transfer, once a start was answered.
    pub id: Option<TransferId>,
    /// An upload of the chunk was answered `Ok`.
    chunk_acknowledged: bool,
    /// The furthest state an answer showed (`Sending` 0, `Complete` 1, `Delivered` 2).
    furthest: u8,
    /// An acknowledgement was answered `Ok`.
    delivered: bool,
}

/// Every transfer of a seed.
#[derive(Debug, Default)]
pub struct Transfers {
    /// In the order the set-up made them.
    pub list: Vec<TransferModel>,
}

fn progress(state: &TransferState) -> Option<u8> {
    match state {
        TransferState::Sending => Some(0),
        TransferState::Complete => Some(1),
        TransferState::Delivered => Some(2),
        _ => None,
    }
}

impl Transfers {
    /// Adds the transfer of `patient`'s record, with a document drawn from `random`.
    pub fn add(&mut self, random: &mut SplitMix64, patient: NhsNumber) {
        let size = 1 + random.below(DOCUMENT_BYTES_MAX) as usize;
        let bytes: Vec<u8> = (0..size).map(|_| random.next_u64() as u8).collect();
        let sha256 = Sha256Hash::of(&bytes);
        let start = request(
            random,
            demo_ids::SECOND_GP,
            Operation::Gp2gpStart {
                patient,
                document_size: size as u64,
                document_sha256: sha256,
            },
        );
        self.list.push(TransferModel {
            patient,
            bytes,
            sha256,
            start,
            id: None,
            chunk_acknowledged: false,
            furthest: 0,
            delivered: false,
        });
    }

    /// A step of some transfer: its start (with its id) until that is answered, then mostly
    /// the step its answers so far make next (upload, download, acknowledge), otherwise any
    /// step (a status among them); `None` with no transfers.
    pub fn next(&self, random: &mut SplitMix64) -> Option<Request> {
        if self.list.is_empty() {
            return None;
        }
        let transfer = &self.list[random.below(self.list.len() as u64) as usize];
        let Some(id) = transfer.id else {
            return Some(transfer.start.clone());
        };
        let next_step = if !transfer.chunk_acknowledged {
            0
        } else if transfer.furthest < 2 {
            4 + random.below(2)
        } else {
            random.below(6)
        };
        let step = if random.below(3) == 0 {
            random.below(6)
        } else {
            next_step
        };
        let (user, operation) = match step {
            0 | 1 => (
                demo_ids::SECOND_GP,
                Operation::Gp2gpSendChunk {
                    transfer: id,
                    index: 0,
                    bytes: transfer.bytes.clone(),
                },
            ),
            2 => (demo_ids::SECOND_GP, Operation::Gp2gpStatus { transfer: id }),
            3 => (demo_ids::GP, Operation::Gp2gpStatus { transfer: id }),
            4 => (
                demo_ids::GP,
                Operation::Gp2gpFetchChunk {
                    transfer: id,
                    index: 0,
                },
            ),
            _ => (
                demo_ids::GP,
                Operation::Gp2gpAcknowledge {
                    transfer: id,
                    document_sha256: transfer.sha256,
                },
            ),
        };
        Some(request(random, user, operation))
    }

    /// A status request for every transfer started, as the demo practice (to check after a
    /// restart and at the end).
    pub fn statuses(&self, random: &mut SplitMix64) -> Vec<Request> {
        self.list
            .iter()
            .filter_map(|transfer| transfer.id)
            .map(|id| {
                request(
                    random,
                    demo_ids::GP,
                    Operation::Gp2gpStatus { transfer: id },
                )
            })
            .collect()
    }

    /// Checks the first answer to a GP2GP request, and learns from it.
    pub fn answered(&mut self, request: &Request, response: &Response) -> Result<(), Violation> {
        let transfer = match &request.operation {
            Operation::Gp2gpStart { patient, .. } => {
                self.list.iter_mut().find(|known| known.patient == *patient)
            }
            Operation::Gp2gpSendChunk { transfer, .. }
            | Operation::Gp2gpStatus { transfer }
            | Operation::Gp2gpFetchChunk { transfer, .. }
            | Operation::Gp2gpAcknowledge { transfer, .. }
            | Operation::Gp2gpCancel { transfer } => self
                .list
                .iter_mut()
                .find(|known| known.id == Some(*transfer)),
            _ => return Ok(()),
        };
        let Some(transfer) = transfer else {
            return violation!("an answer about a transfer never started: {request:?}");
        };
        match (&request.operation, response) {
            (Operation::Gp2gpStart { .. }, Ok(Reply::Transfer(status))) => {
                let id = status.transfer.id();
                if transfer.id.is_some_and(|known| known != id) {
                    return violation!(
                        "patient {}'s one start made two transfers: {:?} and {id:?}",
                        transfer.patient,
                        transfer.id
                    );
                }
                transfer.id = Some(id);
                transfer.learn(status)
            }
            (Operation::Gp2gpSendChunk { .. }, Ok(Reply::Transfer(status))) => {
                transfer.chunk_acknowledged = true;
                transfer.learn(status)
            }
            (Operation::Gp2gpAcknowledge { .. }, Ok(Reply::Transfer(status))) => {
                transfer.delivered = true;
                transfer.learn(status)
            }
            (_, Ok(Reply::Transfer(status))) => transfer.learn(status),
            (Operation::Gp2gpFetchChunk { .. }, Ok(Reply::Chunk { index, bytes })) => {
                if *index != 0 || *bytes != transfer.bytes {
                    return violation!(
                        "transfer {:?} gave chunk {index} as {} bytes that are not the {} \
                         uploaded",
                        transfer.id,
                        bytes.len(),
                        transfer.bytes.len()
                    );
                }
                transfer.furthest = transfer.furthest.max(1);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl TransferModel {
    /// What any answer must show, in any order: never `Failed` nor cancelled.
    fn learn(&mut self, status: &TransferStatus) -> Result<(), Violation> {
        let state = status.transfer.state();
        let Some(at) = progress(&state) else {
            return violation!(
                "transfer {:?} of patient {} is {state:?}: only its declared bytes were sent",
                self.id,
                self.patient
            );
        };
        self.furthest = self.furthest.max(at);
        Ok(())
    }

    /// What a status asked after every earlier answer must show.
    fn settled(&self, status: &TransferStatus) -> Result<(), Violation> {
        let state = status.transfer.state();
        if self.chunk_acknowledged && status.missing.contains(&0) {
            return violation!(
                "transfer {:?} lost the chunk it acknowledged: {status:?}",
                self.id
            );
        }
        let at = progress(&state).unwrap_or(0);
        if at < self.furthest || (self.delivered && state != TransferState::Delivered) {
            return violation!(
                "transfer {:?} is {state:?}, though an earlier answer showed it further on \
                 (delivered: {})",
                self.id,
                self.delivered
            );
        }
        Ok(())
    }
}

impl Transfers {
    /// Transfers an answer showed delivered.
    pub fn delivered(&self) -> usize {
        self.list
            .iter()
            .filter(|transfer| transfer.furthest == 2)
            .count()
    }

    /// Checks a status asked after every earlier answer was in (see the module's comment).
    pub fn settled(&self, status: &TransferStatus) -> Result<(), Violation> {
        let id = status.transfer.id();
        match self.list.iter().find(|known| known.id == Some(id)) {
            Some(transfer) => transfer.settled(status),
            None => violation!("a status of transfer {id:?}, never started"),
        }
    }
}
