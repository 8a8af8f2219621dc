//! The serving core's control socket: a Unix socket `control.sock` in the data directory,
//! readable and writable by its owner only (the operator who runs the core) from the moment it
//! appears, through which `spine backup` asks a serving core for a cut.
//!
//! One connection at a time, one request each: the client writes `cut` (or `hold`) and a
//! newline; the core holds every shard's log writer, reads where each log ends, lets them go,
//! and answers one line of JSON, then closes (after `cut`):
//!
//! ```json
//! {"held_us":412,"shards":[{"term":1,"index":48211,"segments":[{"file":
//!   "00000000000000000001.seg","first_index":1,"size":67108864,"used_bytes":5337728}]}]}
//! ```
//!
//! `held_us`: how long the writers were held, in microseconds (from asking for the first hold
//! to letting the last go: the pause the core's writes saw). `shards` in shard order; per segment its file name in the shard's log directory, its first
//! record's index, its size and the bytes that hold records at the cut. After `hold` the same
//! answer comes, but the connection stays open and every shard's log files stay pinned
//! (no compaction removes or replaces a segment the cut names) until the client closes it, or
//! for [`HOLD_MAX`] at most; `spine backup` holds its cut this way while it copies. At most
//! [`HOLDS_MAX`] holds at once. A request that is neither (or longer than
//! [`REQUEST_BYTES_MAX`], or slower than [`REQUEST_TIMEOUT`]) is answered `{"error":"..."}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spine_storage::{LogExtent, Position, SegmentExtent};

use super::BackupError;
use crate::engine::{EngineConfig, EngineHandle};

/// The socket's file name in the data directory.
pub const SOCKET_FILE_NAME: &str = "control.sock";
/// The private directory the socket is made in before it is renamed into place, and the
/// process id after it (left behind only by a core killed at that moment).
pub const PRIVATE_DIR_PREFIX: &str = ".control-";
/// The longest request line read, newline included.
pub const REQUEST_BYTES_MAX: usize = 64;
/// How long a client may take to send its request, and to read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `hold` keeps the files pinned at most, if its client neither closes nor dies.
pub const HOLD_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// Holds at once, at most (each is a thread waiting for its client to close).
pub const HOLDS_MAX: usize = 8;
/// The longest answer a client reads: a cut of many shards with thousands of segments each.
const ANSWER_BYTES_MAX: u64 = 64 << 20;

/// The answer to `cut`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CutAnswer {
    held_us: u64,
    shards: Vec<ShardCut>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardCut {
    term: u64,
    index: u64,
    segments: Vec<SegmentCut>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentCut {
    file: String,
    first_index: u64,
    size: u64,
    used_bytes: u64,
}

/// An answer that is a refusal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorAnswer {
    error: String,
}

/// The control socket of a serving core; closed (and its file removed) when dropped.
pub struct ControlSocket {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlSocket {
    /// Listens on the data directory's control socket for `engine` (whose process holds the
    /// directory's lock, so a socket file found there is a dead process's, and replaced).
    pub fn start(data_dir: &Path, engine: EngineHandle) -> Result<Self, BackupError> {
        let path = data_dir.join(SOCKET_FILE_NAME);
        let listener = bind_owner_only(data_dir, &path)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("spine-control".into())
                .spawn(move || serve(&listener, &engine, &stopping))
                .map_err(BackupError::io(&path))?
        };
        Ok(Self {
            path,
            stopping,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wakes the accept; a failure means the thread is gone already.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A listener at `path` that only the owner can connect to, from the moment anyone can
/// reach it: bound inside a private directory (mode 0700) of `data_dir`, made 0600 there, then
/// renamed into place (over a dead process's socket, if one is left).
fn bind_owner_only(data_dir: &Path, path: &Path) -> Result<UnixListener, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    let private = data_dir.join(format!("{PRIVATE_DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(BackupError::io(&private))?;
    let inside = private.join(SOCKET_FILE_NAME);
    let bound = UnixListener::bind(&inside)
        .map_err(BackupError::io(path))
        .and_then(|listener| {
            std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))
                .and_then(|()| std::fs::rename(&inside, path))
                .map_err(BackupError::io(path))?;
            Ok(listener)
        });
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Answers connections one at a time until `stopping`.
fn serve(listener: &UnixListener, engine: &EngineHandle, stopping: &AtomicBool) {
    let holds = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Err(error) = answer(stream, engine, &holds) {
                    tracing::warn!(%error, "a control socket client");
                }
            }
            Err(error) => tracing::warn!(%error, "accepting on the control socket"),
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(
    stream: UnixStream,
    engine: &EngineHandle,
    holds: &Arc<AtomicUsize>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .take(REQUEST_BYTES_MAX as u64)
        .read_until(b'\n', &mut line)?;
    let refusal = |error: String| serde_json::to_string(&ErrorAnswer { error });
    let mut pins = None;
    let answer = match line.as_slice() {
        b"cut\n" => cut_or_refusal(engine),
        b"hold\n" if holds.load(Ordering::Acquire) >= HOLDS_MAX => refusal(format!(
            "{HOLDS_MAX} backups hold cuts already: try again once one has finished"
        )),
        b"hold\n" => {
            // Pinned before the cut, so no compaction commits between the two.
            pins = Some(engine.pin_files());
            cut_or_refusal(engine)
        }
        _ => refusal(format!(
            "unknown request {:?}: the requests are \"cut\" and \"hold\", each with a newline",
            String::from_utf8_lossy(&line)
        )),
    }
    .expect("answers always serialise");
    let mut stream = stream;
    stream.write_all(answer.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.flush()?;
    if let Some(pins) = pins {
        holds.fetch_add(1, Ordering::AcqRel);
        let holds = Arc::clone(holds);
        let spawned = std::thread::Builder::new()
            .name("spine-backup-hold".into())
            .spawn(move || {
                wait_for_close(&stream);
                drop(pins);
                holds.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(error) = spawned {
            // The pins went with the closure; the backup's copy may then fail, and says so.
            tracing::error!(%error, "could not start a thread to hold a backup's cut");
        }
    }
    Ok(())
}

/// The answer to a cut: the cut, or why there is none.
fn cut_or_refusal(engine: &EngineHandle) -> serde_json::Result<String> {
    match timed(|| engine.backup_cut()) {
        (Ok(cut), held) => serde_json::to_string(&cut_answer(&cut, held)),
        (Err(error), _) => serde_json::to_string(&ErrorAnswer {
            error: error.to_string(),
        }),
    }
}

/// Returns once the client closes `stream` (or dies), or after [`HOLD_MAX`].
fn wait_for_close(stream: &UnixStream) {
    if stream.set_read_timeout(Some(HOLD_MAX)).is_err() {
        return;
    }
    let mut reader = stream;
    let mut scrap = [0u8; 64];
    while matches!(reader.read(&mut scrap), Ok(read) if read > 0) {}
}

/// What `work` returns, and how long it took.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = std::time::Instant::now();
    let value = work();
    (value, started.elapsed())
}

fn cut_answer(cut: &[LogExtent], held: Duration) -> CutAnswer {
    CutAnswer {
        held_us: held.as_micros() as u64,
        shards: cut
            .iter()
            .map(|extent| ShardCut {
                term: extent.last.term,
                index: extent.last.index,
                segments: extent
                    .segments
                    .iter()
                    .map(|segment| SegmentCut {
                        file: segment
                            .path
                            .file_name()
                            .map(|name| name.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        first_index: segment.first_index,
                        size: segment.size,
                        used_bytes: segment.used_bytes,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A cut a serving core gave.
#[derive(Debug)]
pub struct ServedCut {
    /// Every shard's extent, in shard order.
    pub extents: Vec<LogExtent>,
    /// How long the core held its writers for it.
    pub held: Duration,
    /// The connection that keeps the core's files pinned until this is dropped.
    _hold: UnixStream,
}

/// Asks the core serving `data_dir` (with `shards` shards) for a cut; `Ok(None)` when no
/// core listens there.
pub fn request_cut(data_dir: &Path, shards: usize) -> Result<Option<ServedCut>, BackupError> {
    let path = data_dir.join(SOCKET_FILE_NAME);
    let failed = |reason: String| BackupError::Control {
        path: path.clone(),
        reason,
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(error) if error.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(failed(
                "the path is longer than a Unix socket's (107 bytes), so the core serving this \
                 directory has none: stop it and back the directory up offline"
                    .to_owned(),
            ));
        }
        Err(error) => return Err(failed(error.to_string())),
    };
    let io = |error: std::io::Error| failed(error.to_string());
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io)?;
    stream.write_all(b"hold\n").map_err(io)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .take(ANSWER_BYTES_MAX)
        .read_line(&mut line)
        .map_err(io)?;
    if let Ok(refused) = serde_json::from_str::<ErrorAnswer>(&line) {
        return Err(failed(refused.error));
    }
    let answer: CutAnswer = serde_json::from_str(&line)
        .map_err(|error| failed(format!("an answer that is not a cut: {error}")))?;
    if answer.shards.len() != shards {
        return Err(failed(format!(
            "a cut of {} shards; the data directory records {shards}",
            answer.shards.len()
        )));
    }
    let held = Duration::from_micros(answer.held_us);
    let extents = extents_of(answer, data_dir, shards).map_err(failed)?;
    Ok(Some(ServedCut {
        extents,
        held,
        _hold: stream,
    }))
}

/// The extents a cut answer names, each segment under its shard's log directory in
/// `data_dir`; or what is wrong with the answer.
fn extents_of(answer: CutAnswer, data_dir: &Path, shards: usize) -> Result<Vec<LogExtent>, String> {
    let plain_name = |name: &str| {
        (name.ends_with(".seg") || name.ends_with(".cseg"))
            && !name.contains('/')
            && !name.starts_with('.')
    };
    if let Some(odd) = answer
        .shards
        .iter()
        .flat_map(|cut| &cut.segments)
        .find(|segment| !plain_name(&segment.file))
    {
        return Err(format!("a segment named {:?}", odd.file));
    }
    let mut config = EngineConfig::new(data_dir);
    config.shards = shards;
    Ok(answer
        .shards
        .into_iter()
        .enumerate()
        .map(|(shard, cut)| LogExtent {
            last: Position {
                term: cut.term,
                index: cut.index,
            },
            segments: cut
                .segments
                .into_iter()
                .map(|segment| SegmentExtent {
                    path: config.log_config(shard).dir.join(segment.file),
                    first_index: segment.first_index,
                    size: segment.size,
                    used_bytes: segment.used_bytes,
                })
                .collect(),
        })
        .collect())
}
