//! Completion: once every chunk is held, the chunks are read back in order and the whole
//! document's SHA-256 is compared with the one the sender declared.
//!
//! Reading back checks each chunk against the digest recorded when it was accepted, so two
//! different faults are told apart:
//! - a chunk whose stored bytes are not the bytes accepted is damage to the Spine's own log
//!   ([`CompletionError::ChunkDamaged`]): nothing changes, and the engine treats it as a storage
//!   failure, not as the sender's fault;
//! - chunks that are each what the sender sent, but together not the declared document, are
//!   the sender's fault ([`Completion::HashMismatch`]): it sent bytes from another document
//!   (perhaps resuming from an export made after the record changed), cut it wrongly, or
//!   declared the wrong digest. The transfer goes to `Failed`, for good. It cannot return to
//!   `Sending`: accepted chunks never change, the Spine cannot tell which chunks are wrong, and
//!   reopening would let a late resend of an old chunk pass as a duplicate. The sender starts a
//!   new transfer, with a new id, and the engine may remove the failed one's chunks.
//!
//! [`DocumentCheck`] reads chunk by chunk, so the engine never holds a whole document (up to
//! 100 MiB) in memory and keeps its own error handling for reads; [`complete`] wraps it for
//! chunks at hand.

use super::hash::Sha256Stream;
use super::refusal::TransferRefusal;
use super::transfer::{Transfer, TransferId, TransferState};

/// What completion decided. Either way the engine stores the transfer it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The chunks are the declared document: the transfer is `Complete`, and the receiving
    /// practice may download it.
    Complete(Transfer),
    /// The chunks are not the declared document: the transfer is `Failed`. The sending practice
    /// is told `DOCUMENT_HASH_MISMATCH` ([`Completion::refusal`]) and must start again.
    HashMismatch(Transfer),
}

impl Completion {
    /// The transfer to store.
    pub fn transfer(&self) -> &Transfer {
        match self {
            Completion::Complete(transfer) | Completion::HashMismatch(transfer) => transfer,
        }
    }

    /// The refusal to report to the sending practice, if completion failed.
    pub fn refusal(&self) -> Option<TransferRefusal> {
        match self {
            Completion::Complete(_) => None,
            Completion::HashMismatch(transfer) => Some(TransferRefusal::DocumentHashMismatch {
                transfer: transfer.id(),
            }),
        }
    }
}

/// Why completion could not decide. Nothing changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompletionError {
    /// The transfer does not await completion: not `Sending`, or chunks missing.
    #[error(transparent)]
    Refused(#[from] TransferRefusal),
    /// A stored chunk is not the one accepted (its length or digest differs): the log is
    /// damaged. The engine's fault, not the sender's.
    #[error("transfer {transfer}: stored chunk {index} is not the chunk accepted")]
    ChunkDamaged {
        /// The transfer.
        transfer: TransferId,
        /// The chunk.
        index: u32,
    },
    /// More chunks were given than the document has.
    #[error("transfer {transfer} has {count} chunks; more were given")]
    TooManyChunks {
        /// The transfer.
        transfer: TransferId,
        /// Chunks in the document.
        count: u32,
    },
    /// Fewer chunks were given than the document has.
    #[error("transfer {transfer} has {count} chunks; only {given} were given")]
    TooFewChunks {
        /// The transfer.
        transfer: TransferId,
        /// Chunks given.
        given: u32,
        /// Chunks in the document.
        count: u32,
    },
}

/// A completion in progress: feed it every chunk, in index order, then [`DocumentCheck::finish`].
pub struct DocumentCheck<'t> {
    transfer: &'t Transfer,
    digest: Sha256Stream,
    next_index: u32,
}

impl<'t> DocumentCheck<'t> {
    /// Begins completing `transfer`, which must [await completion](Transfer::awaits_completion).
    pub fn new(transfer: &'t Transfer) -> Result<Self, TransferRefusal> {
        const ACTION: &str = "complete";
        if transfer.state() != TransferState::Sending {
            return Err(transfer.invalid_state(ACTION));
        }
        let missing = transfer.chunk_count() - transfer.held_count();
        if missing > 0 {
            return Err(TransferRefusal::DocumentIncomplete {
                transfer: transfer.id(),
                action: ACTION,
                missing,
            });
        }
        assert!(transfer.awaits_completion());
        Ok(Self {
            transfer,
            digest: Sha256Stream::default(),
            next_index: 0,
        })
    }

    /// The chunk to read next, or `None` once all have been given.
    pub fn next_index(&self) -> Option<u32> {
        (self.next_index < self.transfer.chunk_count()).then_some(self.next_index)
    }

    /// Adds the stored bytes of chunk [`DocumentCheck::next_index`]. A chunk that is not the
    /// one accepted is refused and not counted, so the engine may read it again.
    pub fn add_chunk(&mut self, bytes: &[u8]) -> Result<(), CompletionError> {
        let transfer = self.transfer.id();
        let index = self.next_index().ok_or(CompletionError::TooManyChunks {
            transfer,
            count: self.transfer.chunk_count(),
        })?;
        let accepted = self
            .transfer
            .chunk_sha256(index)
            .expect("a transfer awaiting completion holds every chunk");
        let size = super::chunk::chunk_size(self.transfer.document_size(), index)
            .expect("the index is below the chunk count");
        let mut digest = Sha256Stream::default();
        digest.update(bytes);
        if bytes.len() != size as usize || digest.finish() != accepted {
            return Err(CompletionError::ChunkDamaged { transfer, index });
        }
        self.digest.update(bytes);
        self.next_index += 1;
        Ok(())
    }

    /// Compares the whole document's digest with the declared one, once every chunk is given.
    pub fn finish(self, now_ms: u64) -> Result<Completion, CompletionError> {
        let count = self.transfer.chunk_count();
        if self.next_index != count {
            return Err(CompletionError::TooFewChunks {
                transfer: self.transfer.id(),
                given: self.next_index,
                count,
            });
        }
        let matches = self.digest.finish() == self.transfer.document_sha256();
        let mut next = self.transfer.touched(now_ms);
        if matches {
            next.state = TransferState::Complete;
            Ok(Completion::Complete(next))
        } else {
            next.state = TransferState::Failed;
            Ok(Completion::HashMismatch(next))
        }
    }
}

/// Completes `transfer` from its chunks' stored bytes, in index order: a [`DocumentCheck`] for
/// chunks already at hand (tests, small documents).
pub fn complete<I>(
    transfer: &Transfer,
    chunks: I,
    now_ms: u64,
) -> Result<Completion, CompletionError>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut check = DocumentCheck::new(transfer)?;
    for chunk in chunks {
        check.add_chunk(chunk.as_ref())?;
    }
    check.finish(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gp2gp::chunk::CHUNK_BYTES;
    use crate::gp2gp::hash::Sha256Hash;
    use crate::gp2gp::steps::{ChunkOutcome, accept_chunk};
    use crate::gp2gp::transfer::tests::{practice, sample};

    /// A transfer of `document` with every chunk of `sent` accepted (the same length).
    fn all_held(document: &[u8], sent: &[u8]) -> Transfer {
        let mut transfer = sample(document.len() as u64);
        transfer.document_sha256 = Sha256Hash::of(document);
        for (index, chunk) in sent.chunks(CHUNK_BYTES as usize).enumerate() {
            let outcome =
                accept_chunk(&transfer, &practice("A81001"), index as u32, chunk, 2_000).unwrap();
            let ChunkOutcome::Accepted(next) = outcome else {
                panic!("{outcome:?}")
            };
            transfer = next;
        }
        assert!(transfer.awaits_completion());
        transfer
    }

    fn document() -> Vec<u8> {
        (0..CHUNK_BYTES as usize + 100)
            .map(|i| (i % 251) as u8)
            .collect()
    }

    #[test]
    fn the_declared_document_completes() {
        let document = document();
        let transfer = all_held(&document, &document);
        let chunks: Vec<&[u8]> = document.chunks(CHUNK_BYTES as usize).collect();
        let completion = complete(&transfer, chunks, 3_000).unwrap();
        assert_eq!(completion.refusal(), None);
        let Completion::Complete(done) = completion else {
            panic!("{completion:?}")
        };
        assert_eq!(done.state(), TransferState::Complete);
        assert_eq!(done.updated_ms(), 3_000);
        // Completing twice is refused: the engine completes only what awaits completion.
        assert_eq!(
            complete(&done, [&document[..1]], 4_000)
                .unwrap_err()
                .to_string(),
            "cannot complete transfer 7: it is COMPLETE"
        );
    }

    #[test]
    fn other_chunks_than_the_declared_document_fail_the_transfer() {
        let document = document();
        let mut other = document.clone();
        other[5] ^= 1;
        let transfer = all_held(&document, &other);
        let chunks: Vec<&[u8]> = other.chunks(CHUNK_BYTES as usize).collect();
        let completion = complete(&transfer, chunks, 3_000).unwrap();
        assert_eq!(completion.transfer().state(), TransferState::Failed);
        assert_eq!(
            completion.refusal().map(|refusal| refusal.code().as_str()),
            Some("DOCUMENT_HASH_MISMATCH")
        );
    }

    #[test]
    fn damaged_or_miscounted_chunks_change_nothing() {
        let document = document();
        let transfer = all_held(&document, &document);
        let mut check = DocumentCheck::new(&transfer).unwrap();
        assert_eq!(check.next_index(), Some(0));
        let mut damaged = document[..CHUNK_BYTES as usize].to_vec();
        damaged[0] ^= 1;
        let error = CompletionError::ChunkDamaged {
            transfer: transfer.id(),
            index: 0,
        };
        assert_eq!(check.add_chunk(&damaged), Err(error.clone()));
        assert_eq!(check.add_chunk(&damaged[1..]), Err(error));
        // Read again, right this time.
        check.add_chunk(&document[..CHUNK_BYTES as usize]).unwrap();
        assert_eq!(check.next_index(), Some(1));
        assert_eq!(
            check.finish(3_000).unwrap_err().to_string(),
            "transfer 7 has 2 chunks; only 1 were given"
        );
        let three = [
            &document[..CHUNK_BYTES as usize],
            &document[CHUNK_BYTES as usize..],
            &[],
        ];
        assert_eq!(
            complete(&transfer, three, 3_000).unwrap_err().to_string(),
            "transfer 7 has 2 chunks; more were given"
        );
    }

    #[test]
    fn a_transfer_with_chunks_missing_cannot_complete() {
        let transfer = sample(10);
        let error = DocumentCheck::new(&transfer).err().unwrap();
        assert_eq!(error.code().as_str(), "DOCUMENT_INCOMPLETE");
        assert_eq!(
            error.to_string(),
            "cannot complete transfer 7: 1 of its chunks are not yet held"
        );
    }
}
