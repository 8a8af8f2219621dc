//! Runs the engine on a data directory and books, rebooks and cancels e-RS appointments until
//! killed, printing what was acknowledged, so that a crash test can SIGKILL it between a
//! booking's steps on two shards and check that the restart settles every booking.
//!
//! On first start it loads `--referrals` patients, publishes one service with `--slots` slots
//! and refers each patient to it (a file in the data directory then lists the referrals). On every start it
//! runs the engine's repair, then prints `state <ubrn> booked <slot>` or `state <ubrn>
//! unbooked` for every referral, then `ready`. Then each of `--workers` tasks, owning its share
//! of the referrals, repeatedly books a random slot for one of them (rebooking if it is
//! booked) or cancels its booking, printing `try <ubrn>` before each request and, once it is
//! answered, `booked <ubrn> <slot>`, `unbooked <ubrn>`, or `same <ubrn>` (the slot was taken).
//! Any other answer ends the process with a message on stderr and a non-zero status.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineHandle};
use spine_core::ers::{
    NewReferral, NewSlot, Priority, ReferralAction, ReferralState, Service, ServiceId, SlotId,
    SlotStart, Ubrn,
};
use spine_core::pds::synthetic::{SplitMix64, nhs_numbers, patient_at};
use spine_core::request::{ErrorCode, Operation, Reply, Request};
use spine_tests::engine_crash_config;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Books and cancels appointments until killed.
#[derive(Debug, Parser)]
struct Args {
    /// Data directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Referrals (one patient each).
    #[arg(long, default_value_t = 32)]
    referrals: usize,
    /// Slots of the one service (1 to 100).
    #[arg(long, default_value_t = 12)]
    slots: u16,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Seed of the workers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Lines waiting for the printer at most.
const LINE_QUEUE: usize = 4096;
/// The one service every referral may book.
pub const SERVICE: ServiceId = ServiceId(11_000);
/// Written once the set-up is acknowledged: the referrals' UBRNs, one a line.
const SETUP_MARKER: &str = "ers-setup-done";

fn request(user: Uuid, operation: Operation) -> Request {
    Request {
        id: Uuid::new_v4(),
        caller: demo_caller(user),
        justification: Justification::None,
        operation,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.referrals == 0 || args.workers == 0 || !(1..=100).contains(&args.slots) {
        bail!("--referrals and --workers must be at least 1, --slots 1 to 100");
    }
    let engine = Engine::start(engine_crash_config(&args.dir))
        .with_context(|| format!("starting the engine in {}", args.dir.display()))?;
    let handle = engine.handle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let referrals = runtime.block_on(set_up(&handle, &args))?;
    let (lines, line_receiver) = mpsc::channel(LINE_QUEUE);
    runtime
        .block_on(handle.repair_referrals())
        .map_err(|refusal| anyhow!("repairing: {refusal}"))?;
    let mut states = Vec::with_capacity(referrals.len());
    for &ubrn in &referrals {
        let current = runtime.block_on(retrieve(&handle, ubrn))?;
        states.push(match booked_slot(&current)? {
            Some(slot) => format!("state {ubrn} booked {slot}"),
            None => format!("state {ubrn} unbooked"),
        });
    }
    let printer = std::thread::Builder::new()
        .name("line-printer".into())
        .spawn(move || spine_tests::print_lines(line_receiver))
        .context("starting the printer thread")?;
    let worked = runtime.block_on(async {
        for state in states {
            lines
                .send(state)
                .await
                .map_err(|_| anyhow!("the printer stopped"))?;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..args.workers {
            let mine = referrals
                .iter()
                .skip(worker)
                .step_by(args.workers)
                .copied()
                .collect::<Vec<_>>();
            if mine.is_empty() {
                continue;
            }
            tasks.spawn(work(
                handle.clone(),
                mine,
                args.slots,
                SplitMix64::new(args.seed ^ (worker as u64) << 32),
                lines.clone(),
            ));
        }
        drop(lines);
        spine_tests::first_to_end(&mut tasks).await
    });
    worked?;
    spine_tests::join_printer(printer)
}

/// The request ids of the set-up, fixed so that a set-up cut short is retried with the same
/// ids (and so answered, not repeated).
fn setup_id(step: u64) -> Uuid {
    Uuid::from_u64_pair(0x5350_494e_4545_5253, step)
}

/// Loads the patients, publishes the service and its slots and refers the patients (unless an
/// earlier run did); returns the referrals' UBRNs.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
async fn set_up(handle: &EngineHandle, args: &Args) -> Result<Vec<Ubrn>> {
    let marker = args.dir.join(SETUP_MARKER);
    let numbers: Vec<_> = nhs_numbers().take(args.referrals).collect();
    let submit = |step: u64, user: Uuid, operation: Operation| {
        let mut request = request(user, operation);
        request.id = setup_id(step);
        handle.submit(request)
    };
    if marker.exists() {
        let list = std::fs::read_to_string(&marker)
            .with_context(|| format!("reading {}", marker.display()))?;
        return list
            .lines()
            .map(|line| line.parse().with_context(|| format!("UBRN {line:?}")))
            .collect();
    }
    {
        for (index, &nhs_number) in numbers.iter().enumerate() {
            let mut patient = patient_at(7, index as u64, nhs_number);
            patient.general_practitioner = Some("Y90001".parse().context("practice code")?);
            let loaded = submit(index as u64, demo_ids::GP, Operation::PdsLoad { patient }).await;
            loaded.map_err(|refusal| anyhow!("loading {nhs_number}: {refusal}"))?;
        }
        let service = Service {
            id: SERVICE,
            name: "City General Cardiology".into(),
            provider: "Y9H01".parse().context("hospital code")?,
            specialty: "CARDIOLOGY".parse().context("specialty")?,
            clinic_type: "GENERAL".parse().context("clinic type")?,
        };
        let date = "2031-03-03".parse().context("date")?;
        let slots = (0..args.slots)
            .map(|n| {
                Ok(NewSlot {
                    start: SlotStart::new(date, 8 * 60 + 10 * n)?,
                    duration_minutes: 10,
                })
            })
            .collect::<Result<Vec<_>, spine_core::ers::slot::SlotError>>()?;
        let manager = demo_ids::APPOINTMENTS_MANAGER;
        submit(1 << 20, manager, Operation::ErsPublishService { service })
            .await
            .map_err(|refusal| anyhow!("publishing the service: {refusal}"))?;
        submit(
            (1 << 20) + 1,
            manager,
            Operation::ErsPublishSlots {
                service: SERVICE,
                slots,
            },
        )
        .await
        .map_err(|refusal| anyhow!("publishing the slots: {refusal}"))?;
    }
    let mut referrals = Vec::with_capacity(numbers.len());
    for (index, &patient) in numbers.iter().enumerate() {
        let referral = NewReferral {
            patient,
            specialty: "CARDIOLOGY".parse().context("specialty")?,
            priority: Priority::Routine,
            shortlist: vec![SERVICE],
        };
        let step = (2 << 20) + index as u64;
        match submit(
            step,
            demo_ids::GP,
            Operation::ErsCreateReferral { referral },
        )
        .await
        {
            Ok(Reply::Referral(referral)) => referrals.push(referral.ubrn()),
            other => bail!("referring {patient}: {other:?}"),
        }
    }
    let list: String = referrals.iter().map(|ubrn| format!("{ubrn}\n")).collect();
    std::fs::write(&marker, list).with_context(|| format!("writing {}", marker.display()))?;
    Ok(referrals)
}

async fn retrieve(handle: &EngineHandle, ubrn: Ubrn) -> Result<spine_core::ers::Referral> {
    let read = request(demo_ids::GP, Operation::ErsRetrieveReferral { ubrn });
    match handle.submit(read).await {
        Ok(Reply::Referral(referral)) => Ok(referral),
        other => bail!("retrieving {ubrn}: {other:?}"),
    }
}

/// The slot a referral holds; an error for one still pending (the repair settles them all).
fn booked_slot(referral: &spine_core::ers::Referral) -> Result<Option<SlotId>> {
    match referral.state() {
        ReferralState::Booked => Ok(referral.booking().map(|booking| booking.slot)),
        ReferralState::BookingPending { .. } => {
            bail!("referral {} is still pending", referral.ubrn())
        }
        _ => Ok(None),
    }
}

/// Books, rebooks and cancels the referrals `mine` forever.
async fn work(
    handle: EngineHandle,
    mine: Vec<Ubrn>,
    slots: u16,
    mut random: SplitMix64,
    lines: mpsc::Sender<String>,
) -> Result<()> {
    let send = |line: String| {
        let lines = lines.clone();
        async move {
            lines
                .send(line)
                .await
                .map_err(|_| anyhow!("the printer stopped"))
        }
    };
    loop {
        let ubrn = mine[random.below(mine.len() as u64) as usize];
        let operation = if random.below(4) == 0 {
            Operation::ErsUpdateReferral {
                ubrn,
                action: ReferralAction::CancelBooking,
            }
        } else {
            let number = random.below(u64::from(slots)) as u32;
            Operation::ErsBook {
                ubrn,
                slot: SlotId::of_service(SERVICE, number),
                service: SERVICE,
            }
        };
        send(format!("try {ubrn}")).await?;
        match handle.submit(request(demo_ids::GP, operation)).await {
            Ok(Reply::Referral(referral)) => match booked_slot(&referral)? {
                Some(slot) => send(format!("booked {ubrn} {slot}")).await?,
                None => send(format!("unbooked {ubrn}")).await?,
            },
            // Taken by another referral, or (for a cancellation) nothing booked: unchanged.
            Err(refusal)
                if matches!(
                    refusal.code,
                    ErrorCode::SlotNotAvailable | ErrorCode::InvalidRequestState
                ) =>
            {
                send(format!("same {ubrn}")).await?;
            }
            other => bail!("{ubrn}: {other:?}"),
        }
    }
}
