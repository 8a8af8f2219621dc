//! The generator's client threads: each runs a single-threaded runtime with connections of its
//! own and its share of the schedule (a Poisson process at the rate over the thread count; the
//! threads' together are a Poisson process at the whole rate). Nothing on a thread waits for
//! another: a request, its connection's reads and writes and its answer stay on one thread,
//! with no cross-thread wake-ups. The threads send what ended, in batches, to the caller's
//! thread, which measures the run and shows its progress.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use indicatif::ProgressBar;
use spine_net::client::Transport;
use spine_net::client_set::ClientSet;

use crate::measure::Measurement;
use crate::runner::{self, Ended, NetworkDriver, RunConfig, Tally};
use crate::workload::{LoadError, Workload, load_population};

/// Operations a thread gathers before sending them on.
const BATCH_OPERATIONS: usize = 512;
/// How long a thread keeps what ended before sending it on, at most.
const BATCH_AGE_MAX: Duration = Duration::from_millis(50);
/// Batches on their way to the measuring thread, at most, per client thread: a thread that
/// gets this far ahead waits (and its wait shows as latency).
const BATCHES_IN_FLIGHT_MAX: usize = 256;
/// Delay before a run's common start, so every thread has its job when the schedule begins.
const START_DELAY: Duration = Duration::from_millis(20);

/// What the threads are asked to do.
enum Job {
    /// Load the population (the first thread only).
    Load {
        progress: ProgressBar,
        reply: Sender<Result<u64, LoadError>>,
    },
    /// Run a share of a schedule from a common start.
    Run { config: RunConfig, start: Instant },
}

/// What a thread sends back while it runs.
struct Batch {
    offered: u64,
    dropped: u64,
    ended: Vec<Ended>,
    /// The thread's share of the run is over (this is its last batch).
    finished: bool,
}

impl Batch {
    fn empty() -> Self {
        Self {
            offered: 0,
            dropped: 0,
            ended: Vec::with_capacity(BATCH_OPERATIONS),
            finished: false,
        }
    }
}

/// Counts on a client thread, sent on to the measuring thread in batches.
struct Batching {
    batch: Batch,
    since: Instant,
    results: Sender<Batch>,
}

impl Batching {
    fn new(results: Sender<Batch>) -> Self {
        Self {
            batch: Batch::empty(),
            since: Instant::now(),
            results,
        }
    }

    fn send(&mut self, finished: bool) {
        let batch = Batch {
            finished,
            ..std::mem::replace(&mut self.batch, Batch::empty())
        };
        self.since = Instant::now();
        // The measuring thread only goes away when the whole run is abandoned.
        let _ = self.results.send(batch);
    }

    fn maybe_send(&mut self) {
        if self.batch.ended.len() >= BATCH_OPERATIONS || self.since.elapsed() >= BATCH_AGE_MAX {
            self.send(false);
        }
    }
}

impl Tally for Batching {
    fn offered(&mut self) {
        self.batch.offered += 1;
        self.maybe_send();
    }

    fn dropped(&mut self) {
        self.batch.dropped += 1;
    }

    fn ended(&mut self, ended: Ended) {
        self.batch.ended.push(ended);
        self.maybe_send();
    }
}

/// Client threads with their connections, ready to load and run.
pub struct ClientPool {
    jobs: Vec<Sender<Job>>,
    results: Receiver<Batch>,
    threads: Vec<JoinHandle<()>>,
    /// Per thread, its connections by the shard whose core serves them.
    routes: Vec<Vec<usize>>,
}

impl ClientPool {
    /// Starts `threads` client threads, each connecting to `addr` over `transport` with its
    /// share of `configs` (one per connection asked for; at least one each).
    pub fn start(
        threads: usize,
        transport: Transport,
        addr: std::net::SocketAddr,
        configs: Vec<Arc<rustls::ClientConfig>>,
        workload: &Arc<Workload>,
    ) -> Result<Self> {
        anyhow::ensure!(threads > 0, "at least one client thread");
        anyhow::ensure!(
            configs.len() >= threads,
            "{} connections cannot be spread over {threads} client threads: at least one each",
            configs.len()
        );
        let (results_sender, results) = bounded(BATCHES_IN_FLIGHT_MAX * threads);
        let mut pool = Self {
            jobs: Vec::new(),
            results,
            threads: Vec::new(),
            routes: Vec::new(),
        };
        for thread in 0..threads {
            let mine: Vec<_> = configs
                .iter()
                .skip(thread)
                .step_by(threads)
                .map(Arc::clone)
                .collect();
            let (jobs_sender, jobs) = bounded::<Job>(1);
            let (ready_sender, ready) = bounded::<Result<Vec<usize>, String>>(1);
            let (workload, results) = (Arc::clone(workload), results_sender.clone());
            let handle = std::thread::Builder::new()
                .name(format!("spine-client-{thread}"))
                .spawn(move || {
                    client_thread(transport, addr, mine, workload, jobs, results, ready_sender);
                })
                .context("starting a client thread")?;
            pool.jobs.push(jobs_sender);
            pool.threads.push(handle);
            let routes = ready
                .recv()
                .map_err(|_| anyhow!("client thread {thread} stopped while connecting"))?
                .map_err(|error| anyhow!("client thread {thread}: {error}"))?;
            pool.routes.push(routes);
        }
        Ok(pool)
    }

    /// Per thread, how many of its connections each shard's core serves.
    pub fn routes(&self) -> &[Vec<usize>] {
        &self.routes
    }

    /// Loads the population (and the e-RS set-up) over the first thread's connections;
    /// returns the requests sent.
    pub fn load(&self, progress: &ProgressBar) -> Result<u64> {
        let (reply, answer) = bounded(1);
        self.jobs[0]
            .send(Job::Load {
                progress: progress.clone(),
                reply,
            })
            .map_err(|_| anyhow!("the first client thread stopped"))?;
        let sent = answer
            .recv()
            .map_err(|_| anyhow!("the first client thread stopped while loading"))??;
        Ok(sent)
    }

    /// Runs `config` over every thread, each at its share of the rate, and measures it,
    /// showing progress on `progress`.
    pub fn run(&self, config: &RunConfig, progress: &ProgressBar) -> Result<Measurement> {
        let threads = self.jobs.len();
        let start = Instant::now() + START_DELAY;
        for (thread, jobs) in self.jobs.iter().enumerate() {
            jobs.send(Job::Run {
                config: share(config, thread, threads),
                start,
            })
            .map_err(|_| anyhow!("client thread {thread} stopped"))?;
        }
        let mut measurement = Measurement::default();
        let mut finished = 0;
        let mut shown = Instant::now();
        while finished < threads {
            match self.results.recv_timeout(Duration::from_millis(250)) {
                Ok(batch) => {
                    measurement.offered += batch.offered;
                    measurement.dropped += batch.dropped;
                    for ended in batch.ended {
                        measurement.ended(ended);
                    }
                    finished += usize::from(batch.finished);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(anyhow!("the client threads stopped during the run"));
                }
            }
            if shown.elapsed() >= Duration::from_millis(250) {
                shown = Instant::now();
                runner::show(progress, &measurement, start.elapsed(), config);
            }
        }
        measurement.finish();
        runner::show(progress, &measurement, start.elapsed(), config);
        Ok(measurement)
    }
}

impl Drop for ClientPool {
    fn drop(&mut self) {
        // Closing the job queues ends the threads (after what they are running).
        self.jobs.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Thread `thread`'s share of `config` (of `threads`): the rate, its peak and the in-flight
/// bound divided, its own seed.
fn share(config: &RunConfig, thread: usize, threads: usize) -> RunConfig {
    let rate = Arc::clone(&config.rate);
    let parts = threads as f64;
    RunConfig {
        rate: Arc::new(move |t| rate(t) / parts),
        highest: config.highest / parts,
        seed: config
            .seed
            .wrapping_add((thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        in_flight_max: config.in_flight_max.div_ceil(threads),
        ..config.clone()
    }
}

/// A client thread: connects, says so, then does the jobs it is given until the queue closes.
fn client_thread(
    transport: Transport,
    addr: std::net::SocketAddr,
    configs: Vec<Arc<rustls::ClientConfig>>,
    workload: Arc<Workload>,
    jobs: Receiver<Job>,
    results: Sender<Batch>,
    ready: Sender<Result<Vec<usize>, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!("building its runtime: {error}")));
            return;
        }
    };
    let clients = match runtime.block_on(ClientSet::connect(transport, addr, "localhost", &configs))
    {
        Ok(clients) => Arc::new(clients),
        Err(error) => {
            let _ = ready.send(Err(format!("connecting to {addr}: {error}")));
            return;
        }
    };
    if ready.send(Ok(clients.connections_by_shard())).is_err() {
        return;
    }
    let driver = Arc::new(NetworkDriver::new(
        Arc::clone(&workload),
        Arc::clone(&clients),
    ));
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Load { progress, reply } => {
                let loaded = runtime.block_on(load_population(&workload, &clients, &progress));
                let _ = reply.send(loaded);
            }
            Job::Run { config, start } => {
                let mut batching = Batching::new(results.clone());
                let start = tokio::time::Instant::from_std(start);
                runtime.block_on(runner::run_into(
                    Arc::clone(&driver),
                    &config,
                    start,
                    &mut batching,
                ));
                batching.send(true);
            }
        }
    }
}
