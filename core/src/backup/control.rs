//! The serving core's control socket: a Unix socket `control.sock` in the data directory,
//! readable and writable by its owner only (the operator who runs the core) from the moment it
//! appears, through which `spine backup` asks a serving core for a cut.
//!
//! One connection at a time, one request each: the client writes `cut` and a newline; the
//! core holds every shard's log writer, reads where each log ends, lets them go, and answers
//! one line of JSON, then closes:
//!
//! ```json
//! {"held_us":412,"shards":[{"term":1,"index":48211,"segments":[{"file":
//!   "00000000000000000001.seg","first_index":1,"size":67108864,"used_bytes":5337728}]}]}
//! ```
//!
//! `held_us`: how long the writers were held, in microseconds (from asking for the first hold
//! to letting the last go: the pause the core's writes saw). `shards` in shard order; per segment its file name in the shard's log directory, its first
//! record's index, its size and the bytes that hold records at the cut. A request that is not
//! `cut` (or longer than [`REQUEST_BYTES_MAX`], or slower than [`REQUEST_TIMEOUT`]) is
//! answered `{"error":"..."}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Err(error) = answer(stream, engine) {
                    tracing::warn!(%error, "a control socket client");
                }
            }
            Err(error) => tracing::warn!(%error, "accepting on the control socket"),
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(stream: UnixStream, engine: &EngineHandle) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .take(REQUEST_BYTES_MAX as u64)
        .read_until(b'\n', &mut line)?;
    let answer = match line.as_slice() {
        b"cut\n" => match timed(|| engine.backup_cut()) {
            (Ok(cut), held) => serde_json::to_string(&cut_answer(&cut, held)),
            (Err(error), _) => serde_json::to_string(&ErrorAnswer {
                error: error.to_string(),
            }),
        },
        _ => serde_json::to_string(&ErrorAnswer {
            error: format!(
                "unknown request {:?}: the only request is \"cut\" and a newline",
                String::from_utf8_lossy(&line)
            ),
        }),
    }
    .expect("answers always serialise");
    let mut stream = stream;
    stream.write_all(answer.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.flush()
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
    stream.write_all(b"cut\n").map_err(io)?;
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
    Ok(Some(ServedCut { extents, held }))
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
