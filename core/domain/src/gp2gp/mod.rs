//! GP2GP: the transfer of a patient's whole electronic GP record from the previous practice to
//! the new one when the patient's registration moves in PDS, through the Spine. Pure rules: the
//! engine keeps the records on the patient's shard and carries the messages; this module
//! decides every step.
//!
//! # The protocol
//!
//! The Spine holds the transfer durably in two kinds of log record: one [`Transfer`] record
//! (which chunks are held, each one's SHA-256, the state), and one record per chunk holding its
//! bytes under [`chunk_key_value`]. A document of up to [`DOCUMENT_BYTES_MAX`] (100 MiB) is cut
//! into chunks of [`CHUNK_BYTES`] (256 KiB; the last may be shorter), at most
//! [`CHUNK_COUNT_MAX`] (400).
//!
//! | state | entered by | next |
//! | --- | --- | --- |
//! | `Sending` | [`start`] (the sending practice declares size and SHA-256) | chunks uploaded ([`accept_chunk`]); when all are held, [`complete`] |
//! | `Complete` | [`complete`]: the chunks are the declared document | the receiving practice downloads ([`check_download`]), then [`acknowledge`]s |
//! | `Delivered` | [`acknowledge`], once | final |
//! | `Failed` | [`complete`]: the chunks are not the declared document | final; the sender starts a new transfer |
//! | `Cancelled` | [`cancel`] by either practice, or [`expire`] after [`TRANSFER_IDLE_MS_MAX`] | final |
//!
//! Who does what: the sending (previous) practice starts the transfer and uploads the chunks;
//! the receiving (new) practice downloads them and acknowledges delivery; either may cancel
//! before delivery; the engine completes the transfer and sweeps idle ones. The steps check the
//! practice (see [`Party`]), so a practice can take only its own steps.
//!
//! # Why every step may be repeated
//!
//! Connections break and servers restart, so every request may arrive twice, and every answer
//! may be lost. Every step is safe to repeat:
//! - [`start`] is a create: the engine's request ids make a retry return the first outcome.
//! - [`accept_chunk`] with bytes already held is [`ChunkOutcome::AlreadyHeld`], a success that
//!   writes nothing; a chunk, once accepted, never changes, so other bytes for it are refused
//!   (`CHUNK_CONFLICT`) rather than silently replacing what may already have been checked.
//! - [`complete`] runs only on a transfer that [awaits completion](Transfer::awaits_completion),
//!   and moves it out of that condition.
//! - [`check_download`] only reads, and may repeat while the transfer is `Complete`.
//! - [`acknowledge`] moves `Complete` to `Delivered` once; a repeat is
//!   [`Acknowledgement::AlreadyDelivered`], so the document is delivered exactly once.
//! - [`cancel`] of a cancelled transfer is [`Cancellation::AlreadyCancelled`].
//!
//! # Resuming
//!
//! The engine acknowledges a chunk only once its records are durable, and writes each chunk's
//! record with the transfer record that names it, so a chunk acknowledged is never lost and a
//! chunk the transfer names is always stored. After a broken connection or a restart of either
//! side, the sending practice asks for [`missing_chunks`] and uploads those: chunks written but
//! not acknowledged come back as [`ChunkOutcome::AlreadyHeld`], and chunks lost in a crash before
//! they were durable are missing again. If a crash came between the last chunk and completion,
//! the transfer still [awaits completion](Transfer::awaits_completion), and the engine completes
//! it the next time it reads it. The receiving practice resumes by downloading the chunks it
//! lacks, checking the SHA-256 of what it reassembled, and acknowledging with it.
//!
//! Steps on one transfer are applied one at a time by its shard, each to the transfer as last
//! written, so the steps need no locking of their own.
//!
//! # Files
//!
//! - [`chunk`]: cutting a document into chunks, and each chunk's key value.
//! - [`hash`]: SHA-256 digests.
//! - [`transfer`]: transfer ids, states, the transfer record and its encoding.
//! - [`steps`]: start, upload, resume, download, acknowledge, cancel and expire.
//! - [`completion`]: checking the whole document once every chunk is held.
//! - [`refusal`]: why a step is refused, and the code for the wire.

pub mod chunk;
pub mod completion;
pub mod hash;
pub mod refusal;
pub mod steps;
pub mod transfer;

pub use chunk::{
    CHUNK_BYTES, CHUNK_COUNT_MAX, DOCUMENT_BYTES_MAX, chunk_count, chunk_key_value, chunk_offset,
    chunk_size,
};
pub use completion::{Completion, CompletionError, DocumentCheck, complete};
pub use hash::{Sha256Hash, Sha256HashError};
pub use refusal::{Gp2gpErrorCode, TransferRefusal};
pub use steps::{
    Acknowledgement, Cancellation, ChunkDownload, ChunkOutcome, TRANSFER_IDLE_MS_MAX, accept_chunk,
    acknowledge, cancel, check_download, expire, missing_chunks, start,
};
pub use transfer::{
    CancelledBy, NewTransfer, Party, Transfer, TransferId, TransferIdError, TransferParts,
    TransferState,
};
