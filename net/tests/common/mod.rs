//! What the end-to-end tests share: the real `spine serve` process, its client identities and
//! the requests they send.

#![allow(dead_code, unreachable_pub)] // Each test file uses its own part of this.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use spine_core::Patient;
use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::request::{Operation, Reply, Response};
use spine_net::client::{Client, ClientError, ClientIdentity, Transport, tls_client_config};
use spine_net::pki::Pki;
use spine_net::protocol::message::WireRequest;
use uuid::Uuid;

/// Runs the `spine` binary with `args` to its end.
pub fn spine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spine"))
        .args(args)
        .output()
        .expect("the spine binary runs")
}

/// A path as an argument (the tests' temporary paths are UTF-8).
pub fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// What a run printed, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `spine` with `args` and SIGKILLs it after `after`; whether it had finished already.
pub fn killed_after(args: &[&str], after: std::time::Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spine"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the spine binary starts");
    std::thread::sleep(after);
    let finished = child.try_wait().expect("the child's status").is_some();
    let _ = child.kill();
    child.wait().expect("the killed child is reaped");
    finished
}

/// A running `spine serve`; killed when dropped.
pub struct Spine {
    pub child: Child,
    pub addr: SocketAddr,
    pub quic: SocketAddr,
    pub metrics: SocketAddr,
    /// What it printed up to `ready`, line by line.
    pub printed: Vec<String>,
}

impl Spine {
    /// Starts `spine serve` on `dir` and waits until it is ready.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    /// Starts `spine serve` on `dir` with more flags and waits until it is ready.
    pub fn start_with(dir: &Path, flags: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_spine"))
            .args([
                "serve",
                "--tls-addr",
                "127.0.0.1:0",
                "--quic-addr",
                "127.0.0.1:0",
            ])
            .args(["--shards", "2", "--metrics-addr", "127.0.0.1:0"])
            .args(flags)
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Owned by the guard from here, so a failed start does not leave a server running.
        let mut spine = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            quic: SocketAddr::from(([0, 0, 0, 0], 0)),
            metrics: SocketAddr::from(([0, 0, 0, 0], 0)),
            printed: Vec::new(),
        };
        let stdout = BufReader::new(spine.child.stdout.take().unwrap());
        let (mut addr, mut quic, mut metrics) = (None, None, None);
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("tls: ") {
                addr = Some(rest.split(' ').next().unwrap().parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("quic: ") {
                quic = Some(rest.split(' ').next().unwrap().parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("metrics: http://") {
                metrics = Some(rest.trim_end_matches("/metrics").parse().unwrap());
            }
            if line == "ready" {
                break;
            }
            spine.printed.push(line);
        }
        spine.addr = addr.expect("the server printed its TLS address");
        spine.quic = quic.expect("the server printed its QUIC address");
        spine.metrics = metrics.expect("the server printed its metrics address");
        spine
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Spine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn identity(dir: &Path, name: &str) -> ClientIdentity {
    let pki = Pki::at(dir);
    ClientIdentity {
        ca: pki.ca_cert(),
        cert: pki.client_files(name).unwrap(),
    }
}

pub async fn connect(addr: SocketAddr, identity: &ClientIdentity) -> Result<Client, ClientError> {
    let config = Arc::new(tls_client_config(identity)?);
    Client::connect(Transport::Tls, addr, "localhost", config).await
}

pub fn request(operation: Operation) -> WireRequest {
    WireRequest {
        id: Uuid::new_v4(),
        user: demo_ids::GP,
        role_profile: "gp-riverside".into(),
        organisation: "Y90001".parse().unwrap(),
        justification: Justification::None,
        deadline_ms: 0,
        operation,
    }
}

pub fn patient(response: Response) -> Patient {
    match response {
        Ok(Reply::Patient(patient)) => patient,
        other => panic!("expected a patient, got {other:?}"),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path, bytes);
            }
        }
    }
    files
}

/// Loads `person` on `client`, expecting the record back.
pub async fn load(client: &Client, person: &Patient) -> Patient {
    let loaded = patient(
        client
            .call(request(Operation::PdsLoad {
                patient: person.clone(),
            }))
            .await
            .unwrap(),
    );
    assert_eq!(loaded.nhs_number, person.nhs_number);
    loaded
}
