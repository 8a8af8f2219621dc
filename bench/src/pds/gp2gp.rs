//! GP2GP's part of the benchmark: the records the previous practice (Hillview, Y90002) sends
//! for patients now registered at the demo GP's practice (Y90001), and one whole transfer of
//! the largest record the Spine takes, timed end to end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use spine_core::NhsNumber;
use spine_core::access::directory_file::demo_ids;
use spine_core::engine::EngineHandle;
use spine_core::gp2gp::{CHUNK_BYTES, Sha256Hash, TransferId, TransferState, chunk_count};
use spine_core::pds::synthetic::SplitMix64;
use spine_core::request::{Operation, Reply};

use super::driver::{Measured, Population, RUNS, Verdict, benchmark_patient, request, request_id};

/// One patient in this many moved to the demo practice from Hillview (patient 0 did): only
/// Hillview, their previous practice, may send their records.
const MOVED_EVERY: usize = 50;
/// Moves in flight at once while the set-up makes them.
const MOVES_IN_FLIGHT: usize = 256;

/// Whether patient `index` moved to the demo practice from Hillview.
pub fn moved(index: usize) -> bool {
    index.is_multiple_of(MOVED_EVERY)
}

/// Makes the moves of the patients who moved, once per engine and untimed: the demo GP
/// registers each at Hillview, then Hillview's GP registers them back at the demo practice,
/// leaving Hillview their previous practice. Each patient's version goes up by two.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn register_movers(engine: &EngineHandle, population: &Arc<Population>) -> Result<()> {
    if population.movers_registered.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    let started = Instant::now();
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let movers: Vec<usize> = (0..population.numbers.len())
        .filter(|&index| moved(index))
        .collect();
    let count = movers.len();
    let versions: Vec<u32> = {
        let known = population
            .versions
            .lock()
            .expect("no task panics holding it");
        movers
            .iter()
            .map(|&index| {
                let number = population.numbers[index];
                known.get(&number).copied().unwrap_or(1)
            })
            .collect()
    };
    let (engine, population) = (engine.clone(), Arc::clone(population));
    let runtime = engine.runtime(0).clone();
    let task = runtime.spawn(async move {
        let moves = movers
            .into_iter()
            .zip(versions)
            .enumerate()
            .map(|(n, (index, version))| {
                let (engine, population) = (&engine, &population);
                async move {
                    let at_home = benchmark_patient(population, index);
                    let mut away = at_home.clone();
                    away.general_practitioner =
                        Some(demo_ids::HILLVIEW.parse().expect("Hillview's code"));
                    let steps = [
                        (demo_ids::GP, away, version),
                        (demo_ids::SECOND_GP, at_home, version + 1),
                    ];
                    for (step, (user, patient, expected_version)) in steps.into_iter().enumerate() {
                        let id = request_id(run, 0, 2 * n + step);
                        let update = Operation::PdsUpdate {
                            patient,
                            expected_version,
                        };
                        match engine.submit(request(id, user, update)).await {
                            Ok(Reply::Patient(_)) => {}
                            other => {
                                return Err(anyhow::anyhow!(
                                    "moving patient {index} (step {step}): {other:?}"
                                ));
                            }
                        }
                    }
                    Ok((population.numbers[index], version + 2))
                }
            });
        let mut moves = futures_util::stream::iter(moves).buffer_unordered(MOVES_IN_FLIGHT);
        let mut moved = Vec::with_capacity(count);
        while let Some(result) = moves.next().await {
            moved.push(result?);
        }
        population
            .versions
            .lock()
            .expect("no task panics holding it")
            .extend(moved);
        Ok::<_, anyhow::Error>(())
    });
    pollster::block_on(task).context("the movers' task panicked")??;
    eprintln!(
        "set-up: {count} patients moved to the demo practice from Hillview in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A record's size in the upload and download cases: four chunks, as the load generator's
/// national mix sends, so every fourth upload is a transfer's last and pays for the check of
/// the whole document.
pub const RECORD_BYTES: usize = 4 * CHUNK_BYTES as usize;

/// Distinct records the transfers carry (each transfer one of them), so that not every
/// transfer sends the same bytes.
const DOCUMENTS: u64 = 4;

/// Chunks of the whole transfer in flight at once: a practice's system sends a few at a time,
/// as the end-to-end test of an interrupted transfer does, not hundreds.
pub const UPLOADS_IN_FLIGHT: usize = 8;

/// A GP record to transfer: random bytes (so nothing along the way can compress them) and
/// their SHA-256, as the sending practice declares it.
pub struct Document {
    bytes: Vec<u8>,
    sha256: Sha256Hash,
}

impl Document {
    /// `size` random bytes from `seed`.
    pub fn random(seed: u64, size: usize) -> Self {
        let mut random = SplitMix64::new(seed);
        let mut bytes: Vec<u8> = std::iter::repeat_with(|| random.next_u64().to_le_bytes())
            .take(size.div_ceil(8))
            .flatten()
            .collect();
        bytes.truncate(size);
        let sha256 = Sha256Hash::of(&bytes);
        Self { bytes, sha256 }
    }

    pub fn sha256(&self) -> Sha256Hash {
        self.sha256
    }

    /// Its chunks: 256 KiB each, the last may be shorter.
    pub fn chunks(&self) -> u32 {
        chunk_count(self.bytes.len() as u64)
    }

    /// Chunk `index`'s bytes (empty past the end).
    pub fn chunk(&self, index: u32) -> &[u8] {
        let start = (index as usize * CHUNK_BYTES as usize).min(self.bytes.len());
        let end = (start + CHUNK_BYTES as usize).min(self.bytes.len());
        &self.bytes[start..end]
    }

    /// The previous practice starts sending it as `patient`'s record.
    pub fn start(&self, patient: NhsNumber) -> Operation {
        Operation::Gp2gpStart {
            patient,
            document_size: self.bytes.len() as u64,
            document_sha256: self.sha256,
        }
    }

    /// The previous practice uploads chunk `index` of it in `transfer`.
    pub fn send(&self, transfer: TransferId, index: u32) -> Operation {
        Operation::Gp2gpSendChunk {
            transfer,
            index,
            bytes: self.chunk(index).to_vec(),
        }
    }
}

/// The records of the upload and download cases, from the population's seed.
pub fn documents(seed: u64) -> Vec<Arc<Document>> {
    (0..DOCUMENTS)
        .map(|number| Arc::new(Document::random(seed << 8 | number, RECORD_BYTES)))
        .collect()
}

/// A transfer started, and the record it carries.
#[derive(Clone)]
pub struct Upload {
    pub transfer: TransferId,
    pub document: Arc<Document>,
}

/// One transfer of `document` for `patient`, timed from the start to the answer that
/// completes it: the previous practice starts it, then uploads every chunk with
/// [`UPLOADS_IN_FLIGHT`] in flight; the last chunk's answer comes once the shard has checked
/// the whole document. Request latencies are of the start and each upload; `elapsed` is the
/// whole transfer's time; the bytes, the document's.
pub fn whole_transfer(
    engine: &EngineHandle,
    patient: NhsNumber,
    document: Arc<Document>,
    run: u64,
) -> Result<Measured> {
    let runtime = engine.runtime(0).clone();
    let engine = engine.clone();
    let task = runtime.spawn(async move {
        let mut measured = Measured::new();
        let started = Instant::now();
        let send = |sequence: u32, operation: Operation| {
            let engine = &engine;
            async move {
                let id = request_id(run, 0, sequence as usize);
                let sent = Instant::now();
                let response = engine
                    .submit(request(id, demo_ids::SECOND_GP, operation))
                    .await;
                (response, sent.elapsed())
            }
        };
        let (response, took) = send(0, document.start(patient)).await;
        let transfer = match response {
            Ok(Reply::Transfer(status)) => {
                measured.count(took, Verdict::Done, 0);
                status.transfer.id()
            }
            other => {
                measured.count(took, Verdict::failed(&other), 0);
                measured.elapsed = started.elapsed();
                return measured;
            }
        };
        let mut completed = false;
        let mut uploads = futures_util::stream::iter(0..document.chunks())
            .map(|index| {
                let bytes = document.chunk(index).len();
                let answer = send(1 + index, document.send(transfer, index));
                async move { (answer.await, bytes) }
            })
            .buffer_unordered(UPLOADS_IN_FLIGHT);
        while let Some(((response, took), bytes)) = uploads.next().await {
            match response {
                Ok(Reply::Transfer(status)) => {
                    completed |= status.transfer.state() == TransferState::Complete;
                    measured.count(took, Verdict::Done, bytes);
                }
                other => measured.count(took, Verdict::failed(&other), 0),
            }
        }
        drop(uploads);
        measured.elapsed = started.elapsed();
        if !completed && measured.errors == 0 {
            measured.count(
                std::time::Duration::ZERO,
                Verdict::Failed(
                    "every chunk was accepted, but no answer completed the transfer".into(),
                ),
                0,
            );
        }
        measured
    });
    pollster::block_on(task).context("the whole transfer's task panicked")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

    use super::*;

    #[test]
    fn documents_are_cut_into_their_chunks() {
        let documents = documents(1);
        assert_eq!(documents.len() as u64, DOCUMENTS);
        let first = &documents[0];
        assert_eq!(first.bytes.len(), RECORD_BYTES);
        assert_eq!(first.chunks(), 4);
        assert_ne!(first.sha256(), documents[1].sha256());
        let odd = Document::random(5, 2 * CHUNK_BYTES as usize + 1001);
        assert_eq!(odd.chunks(), 3);
        let joined: Vec<u8> = (0..odd.chunks())
            .flat_map(|index| odd.chunk(index).to_vec())
            .collect();
        assert_eq!(joined.len(), odd.bytes.len());
        assert_eq!(Sha256Hash::of(&joined), odd.sha256());
        assert_eq!(odd.chunk(2).len(), 1001);
        assert!(odd.chunk(3).is_empty());
    }
}
