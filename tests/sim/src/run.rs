//! One seed: set up, then epochs of seeded traffic and faults, each ended by a crash (a power
//! loss, a failed flush, or a kill between turns) and followed by a restart and its checks;
//! then a last restart, every unknown request retried, and the exact checks.

use std::path::Path;
use std::sync::Arc;

use spine_core::access::Directory;
use spine_core::access::directory_file::{demo, demo_ids};
use spine_core::pds::synthetic::SplitMix64;
use spine_core::request::{Operation, Reply};
use spine_storage::{DiskFault, FileStep, StallEnd, TornWrite};

use crate::checks;
use crate::clients::{BackgroundRepair, Task, drive, poll_all, spawn};
use crate::damage;
use crate::model::{Model, Violation, replays_first_answer, violation};
use crate::trace::Trace;
use crate::workload::{self, request};
use crate::world::{TurnEnd, World};

/// The simulated clock's start: 2026-01-01T00:00:00Z.
const START_MS: u64 = 1_767_225_600_000;
/// Requests in flight at most.
const TASKS_MAX: usize = 12;
/// One step in this many arms a fault on a shard's disk (one armed at a time).
const FAULT_ONE_IN: u64 = 60;
/// One step in this many kills the machine between turns.
const KILL_ONE_IN: u64 = 300;
/// While a flush stalls, one step in this many ends the stall.
const STALL_ENDS_ONE_IN: u64 = 12;

/// A bug planted on purpose, to show the simulator finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// The disk acknowledges writes without flushing them.
    SkippedFlushes,
    /// A turn's records are appended as two groups, so a crash can keep half a turn.
    SplitTurns,
    /// Each shard remembers one request's outcome, so retries of the others run again.
    ForgottenOutcomes,
    /// The audit chain's hash leaves out each record's trail link, so a forged trail goes
    /// unseen.
    UnhashedTrailLinks,
}

/// What a seed runs.
#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    /// Shards of the simulated machine.
    pub shards: usize,
    /// Steps of traffic (a request sent, a turn run, the clock moved, a checkpoint).
    pub steps: u64,
    /// A bug to plant; `None` runs the code as it is.
    pub plant: Option<Plant>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            shards: 3,
            steps: 600,
            plant: None,
        }
    }
}

/// What a seed did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The hash of the trace: the same seed gives the same hash.
    pub trace_hash: String,
    /// Events in the trace.
    pub events: u64,
    /// Crashes and restarts.
    pub crashes: u32,
    /// Answers checked.
    pub answers: u64,
    /// Prescription versions checked against the state machine.
    pub transitions_checked: u64,
    /// Restarts whose recovery cut a torn tail.
    pub torn_tails: u32,
    /// Flushes that stalled (each ended by the seed: flushed, or the power lost).
    pub stalls: u32,
    /// Turns executed with an earlier turn's batch not yet durable.
    pub turns_in_flight: u32,
    /// Power cuts inside a checkpoint's write or a segment's roll.
    pub file_step_cuts: u32,
    /// GP2GP transfers delivered.
    pub transfers_delivered: usize,
    /// Simulated time, in milliseconds.
    pub simulated_ms: u64,
}

/// A seed whose run broke a promise, or could not run.
#[derive(Debug)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub message: String,
    /// The trace's last events.
    pub tail: Vec<String>,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} failed: {}", self.seed, self.message)?;
        writeln!(f, "last events:")?;
        for line in &self.tail {
            let shown: String = line.chars().take(240).collect();
            writeln!(f, "  {shown}")?;
        }
        write!(
            f,
            "reproduce: cargo run --release -p spine-sim -- --seed {}",
            self.seed
        )
    }
}

/// Runs one seed in a fresh directory under `scratch`.
pub fn run_seed(seed: u64, options: SimOptions, scratch: &Path) -> Result<SeedReport, SimFailure> {
    let trace = Trace::default();
    let fail = |message: String, trace: &Trace| SimFailure {
        seed,
        message,
        tail: trace.tail(),
    };
    let dir = tempfile::Builder::new()
        .prefix("spine-sim-")
        .tempdir_in(scratch)
        .map_err(|error| fail(format!("making a directory: {error}"), &trace))?;
    let mut seed_run = SeedRun {
        seed,
        options,
        root: dir.path(),
        directory: Arc::new(demo()),
        random: SplitMix64::new(seed),
        model: Model::default(),
        trace: trace.clone(),
        clock_ms: START_MS,
        crashes: 0,
        torn_tails: 0,
        stalls: 0,
        turns_in_flight: 0,
        file_step_cuts: 0,
        created: 0,
    };
    // The planted chain bug lives in the audit code, switched on for this thread only.
    let _planted = PlantedOnThisThread::new(options.plant == Some(Plant::UnhashedTrailLinks));
    seed_run
        .run()
        .map_err(|violation| fail(violation.0, &trace))?;
    Ok(SeedReport {
        seed,
        trace_hash: trace.hash(),
        events: trace.events(),
        crashes: seed_run.crashes,
        answers: seed_run.model.answers,
        transitions_checked: seed_run.model.transitions_checked,
        torn_tails: seed_run.torn_tails,
        stalls: seed_run.stalls,
        turns_in_flight: seed_run.turns_in_flight,
        file_step_cuts: seed_run.file_step_cuts,
        transfers_delivered: seed_run.model.transfers.delivered(),
        simulated_ms: seed_run.clock_ms - START_MS,
    })
}

/// Switches the audit chain's planted bug on for this thread while it lives.
struct PlantedOnThisThread(bool);

impl PlantedOnThisThread {
    fn new(planted: bool) -> Self {
        spine_core::planted::plant_unhashed_trail_links(planted);
        Self(planted)
    }
}

impl Drop for PlantedOnThisThread {
    fn drop(&mut self) {
        if self.0 {
            spine_core::planted::plant_unhashed_trail_links(false);
        }
    }
}

struct SeedRun<'a> {
    seed: u64,
    options: SimOptions,
    root: &'a Path,
    directory: Arc<Directory>,
    random: SplitMix64,
    model: Model,
    trace: Trace,
    clock_ms: u64,
    crashes: u32,
    torn_tails: u32,
    stalls: u32,
    turns_in_flight: u32,
    file_step_cuts: u32,
    created: u64,
}

/// How an epoch ended.
enum EpochEnd {
    Crashed,
    StepsDone,
}

impl SeedRun<'_> {
    fn run(&mut self) -> Result<(), Violation> {
        let world = self.open()?;
        self.set_up(&world)?;
        world.crash();
        let mut steps_left = self.options.steps;
        while steps_left > 0 {
            let world = self.open()?;
            let mut repair = BackgroundRepair::start(&world);
            checks::after_restart(&world, &mut self.model, &mut self.random)?;
            let end = self.epoch(&world, &mut steps_left, &mut repair)?;
            self.clock_ms = world.now_ms();
            drop(repair);
            world.crash();
            if let EpochEnd::Crashed = end {
                self.crashes += 1;
            }
        }
        let world = self.open()?;
        checks::at_end(&world, &mut self.model, &mut self.random)?;
        self.clock_ms = world.now_ms();
        let forgery = damage::pick_forgery(&world, &mut self.model, &mut self.random)?;
        let corruption = damage::pick_corruption(&world, &mut self.random);
        world.crash();
        // Then a forger with write access: one trail link cut, its record's CRC made good.
        if let Some(forgery) = forgery {
            self.trace
                .note(format_args!("forged {}", forgery.describe()));
            let root = self.root;
            damage::forged_trail_is_found(root, &forgery, || self.open())?;
        }
        // Last, media corruption of data long durable: one flipped bit.
        if let Some(corruption) = corruption {
            damage::corrupt(&corruption, &mut self.random)?;
            damage::verification_finds(self.root, &corruption)?;
            let opened = self.open();
            self.trace.note(format_args!(
                "corrupted {}: the machine {}",
                corruption.describe(),
                if opened.is_ok() {
                    "started"
                } else {
                    "refused to start"
                }
            ));
            damage::answers_after_corruption(
                &corruption,
                opened,
                &mut self.model,
                &mut self.random,
            )?;
        }
        Ok(())
    }

    /// Opens the machine as a restart does, noting what each log's recovery found.
    fn open(&mut self) -> Result<World, Violation> {
        let opened = World::open(
            self.root,
            self.options.shards,
            Arc::clone(&self.directory),
            self.clock_ms,
            self.trace.clone(),
            self.options.plant,
        );
        let (world, reports) = match opened {
            Ok(opened) => opened,
            Err(error) => return violation!("the machine does not restart: {error}"),
        };
        for (shard, report) in reports.iter().enumerate() {
            self.torn_tails += u32::from(report.torn_tail.is_some());
            self.trace.note(format_args!(
                "open shard={shard} records={} scanned={} checkpoint={} torn={:?}",
                report.records,
                report.records_scanned,
                report.checkpoint.is_some(),
                report.torn_tail.as_ref().map(|torn| (
                    torn.offset,
                    torn.bytes_discarded,
                    torn.valid_records_discarded,
                    torn.reason
                )),
            ));
        }
        Ok(world)
    }

    /// Patients, services, slots and referrals, on healthy disks.
    fn set_up(&mut self, world: &World) -> Result<(), Violation> {
        let random = &mut self.random;
        let loads = workload::patients(self.seed)
            .into_iter()
            .map(|patient| request(random, demo_ids::GP, Operation::PdsLoad { patient }))
            .collect();
        for answer in drive(world, &mut self.model, loads)? {
            match answer {
                Ok(Reply::Patient(patient)) => self.model.add_patient(patient),
                other => return violation!("loading a patient: {other:?}"),
            }
        }
        let manager = demo_ids::APPOINTMENTS_MANAGER;
        for service in workload::services() {
            let id = service.id;
            let publish = request(random, manager, Operation::ErsPublishService { service });
            let slots = request(random, manager, workload::slots(id));
            let answers = drive(world, &mut self.model, vec![publish])?
                .into_iter()
                .chain(drive(world, &mut self.model, vec![slots])?);
            for answer in answers {
                match answer {
                    Ok(Reply::Service(_)) => {}
                    Ok(Reply::Slots(slots)) => self.model.slots.extend(slots),
                    other => return violation!("publishing a service: {other:?}"),
                }
            }
        }
        let referred: Vec<_> = self
            .model
            .patients
            .values()
            .filter(|patient| !patient.restricted)
            .take(workload::REFERRALS)
            .map(|patient| patient.latest.nhs_number)
            .collect();
        let referrals = referred
            .into_iter()
            .map(|patient| request(random, demo_ids::GP, workload::referral(patient)))
            .collect();
        for answer in drive(world, &mut self.model, referrals)? {
            match answer {
                Ok(Reply::Referral(referral)) => self.model.referrals.push(referral.ubrn()),
                other => return violation!("creating a referral: {other:?}"),
            }
        }
        let prescribed: Vec<_> = self
            .model
            .patients
            .values()
            .filter(|patient| !patient.restricted)
            .take(workload::PRESCRIPTIONS)
            .map(|patient| patient.latest.nhs_number)
            .collect();
        let prescriptions = prescribed
            .into_iter()
            .enumerate()
            .map(|(number, patient)| {
                let operation = workload::prescription(patient, number % 2 == 0);
                request(random, demo_ids::GP, operation)
            })
            .collect();
        for answer in drive(world, &mut self.model, prescriptions)? {
            if !matches!(answer, Ok(Reply::Prescription(_))) {
                return violation!("issuing a prescription: {answer:?}");
            }
        }
        self.move_practices(world)
    }

    /// Registers a few patients at Hillview and back at the demo practice (as Hillview's GP),
    /// leaving Hillview their previous practice, with a GP2GP transfer of each one's record to
    /// make.
    fn move_practices(&mut self, world: &World) -> Result<(), Violation> {
        let movers: Vec<_> = self
            .model
            .patients
            .values()
            .filter(|patient| !patient.restricted)
            .rev()
            .take(crate::gp2gp::MOVERS)
            .map(|patient| patient.latest.nhs_number)
            .collect();
        let hillview: spine_core::pds::values::OdsCode = demo_ids::HILLVIEW
            .parse()
            .expect("Hillview's code is valid");
        for nhs_number in movers {
            for (user, practice) in [
                (demo_ids::GP, hillview.clone()),
                (demo_ids::SECOND_GP, workload::practice()),
            ] {
                let mut patient = self.model.patients[&nhs_number].latest.clone();
                patient.general_practitioner = Some(practice);
                let expected_version = patient.version;
                let update = Operation::PdsUpdate {
                    patient,
                    expected_version,
                };
                let moved = request(&mut self.random, user, update);
                for answer in drive(world, &mut self.model, vec![moved])? {
                    if !matches!(answer, Ok(Reply::Patient(_))) {
                        return violation!("moving patient {nhs_number}: {answer:?}");
                    }
                }
            }
            self.model.transfers.add(&mut self.random, nhs_number);
        }
        Ok(())
    }

    /// Traffic and faults until a crash or the end of the steps. The requests a crash left
    /// unanswered go first, as retries with their ids.
    fn epoch<'w>(
        &mut self,
        world: &'w World,
        steps_left: &mut u64,
        repair: &mut BackgroundRepair<'w>,
    ) -> Result<EpochEnd, Violation> {
        let mut tasks: Vec<Task<'_>> = self
            .model
            .unknown()
            .into_iter()
            .map(|request| spawn(world, &mut self.model, request))
            .collect();
        let mut armed: Option<(usize, DiskFault)> = None;
        while *steps_left > 0 {
            *steps_left -= 1;
            if let Some(end) = self.step(world, &mut tasks, armed)? {
                return Ok(end);
            }
            if let Some(end) = self.faults(world, &mut armed) {
                return Ok(end);
            }
            let start = self.random.below(tasks.len().max(1) as u64) as usize;
            poll_all(world, &mut tasks, &mut self.model, start)?;
            repair.poll(world);
        }
        Ok(EpochEnd::StepsDone)
    }

    /// One step of traffic: a request sent (or a write sent again while on its way), the
    /// clock moved, a checkpoint, or a turn; `Some` when the machine crashed.
    fn step<'w>(
        &mut self,
        world: &'w World,
        tasks: &mut Vec<Task<'w>>,
        armed: Option<(usize, DiskFault)>,
    ) -> Result<Option<EpochEnd>, Violation> {
        let random = &mut self.random;
        match random.below(100) {
            0..30 if tasks.len() < TASKS_MAX => {
                let request = workload::next(random, &self.model, self.seed, &mut self.created);
                tasks.push(spawn(world, &mut self.model, request));
            }
            30..34 => world.advance_clock(random.below(600_000)),
            34..36 => {
                let shard = random.below(world.shards() as u64) as usize;
                if let Err(error) = world.checkpoint(shard) {
                    if world.powered_off(shard) {
                        self.file_step_cuts += 1;
                        return Ok(Some(EpochEnd::Crashed));
                    }
                    return violation!("shard {shard}'s checkpoint failed: {error}");
                }
            }
            36..38 if tasks.len() < TASKS_MAX && !tasks.is_empty() => {
                // A client that gave up waiting sends its write again, with its id, while the
                // first is still on its way (perhaps behind a stalled flush).
                let task = &tasks[random.below(tasks.len() as u64) as usize];
                if replays_first_answer(task.request()) {
                    let again = task.request().clone();
                    tasks.push(spawn(world, &mut self.model, again));
                }
            }
            _ => {
                let busy = world.busy_shards();
                if busy.is_empty() {
                    return Ok(None);
                }
                let shard = busy[random.below(busy.len() as u64) as usize];
                let inputs_max = 1 + random.below(6) as usize;
                match world.run_turn(shard, inputs_max) {
                    TurnEnd::Crashed(_) => {
                        if let Some((cut, DiskFault::PowerLossAt(_))) = armed
                            && world.powered_off(cut)
                        {
                            self.file_step_cuts += 1;
                        }
                        return Ok(Some(EpochEnd::Crashed));
                    }
                    TurnEnd::InFlight => self.turns_in_flight += 1,
                    TurnEnd::Idle | TurnEnd::Answered => {}
                }
            }
        }
        Ok(None)
    }

    /// The seed's faults after a step: one armed per epoch, stalls ended, a kill between
    /// turns; `Some` when the machine crashed.
    fn faults(
        &mut self,
        world: &World,
        armed: &mut Option<(usize, DiskFault)>,
    ) -> Option<EpochEnd> {
        if armed.is_none() && self.random.below(FAULT_ONE_IN) == 0 {
            let shard = self.random.below(world.shards() as u64) as usize;
            let fault = fault(&mut self.random);
            world.arm(shard, fault);
            *armed = Some((shard, fault));
        }
        for shard in world.stalled_shards() {
            if self.random.below(STALL_ENDS_ONE_IN) == 0 {
                self.stalls += 1;
                let end = stall_end(&mut self.random);
                if let TurnEnd::Crashed(_) = world.end_stall(shard, end) {
                    return Some(EpochEnd::Crashed);
                }
            }
        }
        if self.random.below(KILL_ONE_IN) == 0 {
            world.trace.note(format_args!("killed between turns"));
            // A write stalled at the kill is torn as a power loss would tear it.
            for shard in world.stalled_shards() {
                self.stalls += 1;
                world.end_stall(shard, StallEnd::PowerLoss(torn_write(&mut self.random)));
            }
            return Some(EpochEnd::Crashed);
        }
        None
    }
}

/// A fault for a disk: mostly power losses of every kind, sometimes a flush that fails or
/// stalls, or a power cut inside a checkpoint's write or a segment's roll.
fn fault(random: &mut SplitMix64) -> DiskFault {
    match random.below(14) {
        0..7 => DiskFault::PowerLoss(torn_write(random)),
        7 => DiskFault::FlushFails {
            os_error: 5,
            reaches_disk: random.below(2) == 0,
        },
        8 | 9 => DiskFault::FlushFails {
            os_error: 28,
            reaches_disk: random.below(2) == 0,
        },
        10 | 11 => DiskFault::FlushStalls,
        _ => DiskFault::PowerLossAt(file_step(random)),
    }
}

/// Where in a checkpoint's write or a segment's roll the power goes.
fn file_step(random: &mut SplitMix64) -> FileStep {
    match random.below(4) {
        0 => FileStep::CheckpointWrite {
            bytes: random.below(4096),
        },
        1 => FileStep::CheckpointRename {
            kept: random.below(2) == 0,
        },
        2 => FileStep::CheckpointCleanup,
        _ => FileStep::SegmentRename {
            kept: random.below(2) == 0,
        },
    }
}

/// What of a write in flight a power loss keeps: seeded sectors, a prefix, or nothing.
fn torn_write(random: &mut SplitMix64) -> TornWrite {
    match random.below(7) {
        0..3 => TornWrite::Sectors {
            seed: random.next_u64(),
        },
        3..5 => TornWrite::Prefix {
            bytes: random.below(8192),
        },
        _ => TornWrite::Nothing,
    }
}

/// How a stall ends: mostly with the flush done, sometimes with the power gone.
fn stall_end(random: &mut SplitMix64) -> StallEnd {
    if random.below(4) == 0 {
        StallEnd::PowerLoss(torn_write(random))
    } else {
        StallEnd::Flushed
    }
}
