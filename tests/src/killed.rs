//! Running a child process until a SIGKILL at a chosen moment, collecting what it acknowledged
//! on stdout: the part the crash tests share.
//!
//! The child prints `ready` once it works, then one line per acknowledgement. A line is only
//! counted when complete: the kill can cut the last one short.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread;
use std::time::Duration;

const SIGKILL: i32 = 9;

/// Starts `command`; once it printed `ready` (within `ready_timeout`) lets it run for
/// `run_for`, then SIGKILLs it. Every other complete stdout line goes to `parse`. Returns what
/// `parse` gathered, or `Err` with the child's stderr if it never became ready, ended by itself
/// or printed a line `parse` refused.
pub fn run_until_killed<T: Default + Send + 'static>(
    mut command: Command,
    ready_timeout: Duration,
    run_for: Duration,
    parse: fn(&mut T, &str) -> Result<(), String>,
) -> Result<T, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("starting {command:?}: {error}"))?;
    // Both pipes are drained by threads while the child runs, so it never blocks on them.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let (ready_sender, ready) = sync_channel(1);
    let reader = thread::spawn(move || read_lines(stdout, ready_sender, parse));
    let became_ready = ready.recv_timeout(ready_timeout).is_ok();
    if became_ready {
        thread::sleep(run_for);
    }
    let status = kill(&mut child)?;
    let lines = reader
        .join()
        .map_err(|_| "the stdout reader panicked".to_owned())?;
    let stderr = stderr.join().unwrap_or_default();
    if !became_ready {
        return Err(format!(
            "not ready within {ready_timeout:?} ({status}): {stderr}"
        ));
    }
    // Any other end means the child stopped by itself, that is, something failed.
    if status.signal() != Some(SIGKILL) {
        return Err(format!("ended before it was killed ({status}):\n{stderr}"));
    }
    lines.map_err(|error| format!("{error}\nchild stderr:\n{stderr}"))
}

fn kill(child: &mut Child) -> Result<std::process::ExitStatus, String> {
    // A child that already ended cannot be killed; its status says how it ended.
    let _ = child.kill();
    child
        .wait()
        .map_err(|error| format!("waiting for the child: {error}"))
}

/// Reads stdout to its end: signals `ready`, hands every other complete line to `parse`.
fn read_lines<T: Default>(
    stdout: ChildStdout,
    ready: SyncSender<()>,
    parse: fn(&mut T, &str) -> Result<(), String>,
) -> Result<T, String> {
    let mut stdout = BufReader::new(stdout);
    let mut gathered = T::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        stdout
            .read_until(b'\n', &mut line)
            .map_err(|error| format!("reading the child's stdout: {error}"))?;
        let Some(text) = line.strip_suffix(b"\n") else {
            return Ok(gathered);
        };
        let text = String::from_utf8_lossy(text);
        if text == "ready" {
            let _ = ready.try_send(());
        } else {
            parse(&mut gathered, &text)?;
        }
    }
}
