//! The simulated clients: each request is the real coordinator's future over the simulated
//! machine, polled by the simulator (never by a runtime), so when each one moves on is decided
//! by the seed and nothing else.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use spine_core::coordinator::{Coordinator, RepairReport};
use spine_core::request::{Operation, Refusal, Request, Response};

use crate::model::{Model, Violation, violation};
use crate::world::{TurnEnd, World};

type Submission<'w> = Pin<Box<dyn Future<Output = Response> + 'w>>;
type Repair<'w> = Pin<Box<dyn Future<Output = Result<RepairReport, Refusal>> + 'w>>;

/// A request on its way.
pub struct Task<'w> {
    request: Request,
    future: Submission<'w>,
}

impl Task<'_> {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

/// Sends `request` (noted in the model and the trace first).
pub fn spawn<'w>(world: &'w World, model: &mut Model, request: Request) -> Task<'w> {
    model.sent(&request);
    world.trace.note(format_args!(
        "send {} {}",
        request.id,
        operation_name(&request.operation)
    ));
    let submitted = request.clone();
    Task {
        request,
        future: Box::pin(async move { Coordinator::new(world).submit(submitted).await }),
    }
}

/// Polls every task once, starting at `start` (so the seed picks who moves first); checks
/// and records the answers of those that finished, which leave `tasks`.
pub fn poll_all(
    world: &World,
    tasks: &mut Vec<Task<'_>>,
    model: &mut Model,
    start: usize,
) -> Result<Vec<(Request, Response)>, Violation> {
    let mut context = Context::from_waker(Waker::noop());
    let count = tasks.len();
    let mut finished = vec![false; count];
    let mut answers = Vec::new();
    for step in 0..count {
        let at = (start + step) % count;
        let task = &mut tasks[at];
        if let Poll::Ready(response) = task.future.as_mut().poll(&mut context) {
            let shown = format!("{response:?}");
            world
                .trace
                .note(format_args!("answer {} {shown}", task.request.id));
            // An answer never names the server's files (and a trace that did would differ
            // between runs of one seed).
            if shown.contains(&*world.root().to_string_lossy()) {
                return violation!("an answer names a server path: {shown}");
            }
            model.answered(&task.request, &response)?;
            finished[at] = true;
            answers.push((task.request.clone(), response));
        }
    }
    let mut index = 0;
    tasks.retain(|_| {
        index += 1;
        !finished[index - 1]
    });
    Ok(answers)
}

/// Sends `requests` and runs turns (busiest shard first) until every one is answered, on a
/// disk with no fault armed; their answers, in the order sent.
pub fn drive(
    world: &World,
    model: &mut Model,
    requests: Vec<Request>,
) -> Result<Vec<Response>, Violation> {
    let ids: Vec<_> = requests.iter().map(|request| request.id).collect();
    let mut tasks: Vec<Task<'_>> = requests
        .into_iter()
        .map(|request| spawn(world, model, request))
        .collect();
    let mut answers = std::collections::HashMap::new();
    loop {
        for (request, response) in poll_all(world, &mut tasks, model, 0)? {
            answers.insert(request.id, response);
        }
        if tasks.is_empty() {
            break;
        }
        run_any_turn(world)?;
    }
    Ok(ids
        .iter()
        .map(|id| answers.remove(id).expect("every request was answered"))
        .collect())
}

/// The e-RS repair the engine starts as it opens, running beside new requests (as the
/// engine's does): its list of pending bookings is taken at the start, and may be stale by
/// the time each item is reached.
pub struct BackgroundRepair<'w> {
    future: Option<Repair<'w>>,
}

impl<'w> BackgroundRepair<'w> {
    /// Starts the repair: its first poll asks the first shard for its list.
    pub fn start(world: &'w World) -> Self {
        let mut repair = Self {
            future: Some(Box::pin(async move {
                Coordinator::new(world).repair_referrals().await
            })),
        };
        repair.poll(world);
        repair
    }

    /// Moves the repair on as far as it can go without a turn; notes its end.
    pub fn poll(&mut self, world: &World) {
        let Some(future) = self.future.as_mut() else {
            return;
        };
        let mut context = Context::from_waker(Waker::noop());
        if let Poll::Ready(report) = future.as_mut().poll(&mut context) {
            world
                .trace
                .note(format_args!("background repair {report:?}"));
            self.future = None;
        }
    }
}

/// Runs `future` (a coordinator's work that is not a request, such as the e-RS repair) to
/// its end, running turns as it needs them.
pub fn complete<T>(world: &World, future: impl Future<Output = T>) -> Result<T, Violation> {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Ok(output);
        }
        run_any_turn(world)?;
    }
}

/// One turn on the first shard with work; a violation if none has any (a request waits for
/// nothing) or if a healthy disk failed.
fn run_any_turn(world: &World) -> Result<(), Violation> {
    let Some(&shard) = world.busy_shards().first() else {
        return violation!("a request waits, and no shard has anything to do");
    };
    match world.run_turn(shard, 64) {
        TurnEnd::Crashed(error) => violation!("shard {shard} failed on a healthy disk: {error}"),
        TurnEnd::InFlight => violation!("shard {shard} stalls on a healthy disk"),
        TurnEnd::Idle | TurnEnd::Answered => Ok(()),
    }
}

/// A short name for the trace.
fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::PdsCreate { .. } => "PdsCreate",
        Operation::PdsLoad { .. } => "PdsLoad",
        Operation::PdsRetrieve { .. } => "PdsRetrieve",
        Operation::PdsUpdate { .. } => "PdsUpdate",
        Operation::PdsSearch { .. } => "PdsSearch",
        Operation::AuditTrail { .. } => "AuditTrail",
        Operation::ErsPublishService { .. } => "ErsPublishService",
        Operation::ErsPublishSlots { .. } => "ErsPublishSlots",
        Operation::ErsCreateReferral { .. } => "ErsCreateReferral",
        Operation::ErsRetrieveReferral { .. } => "ErsRetrieveReferral",
        Operation::ErsBook { .. } => "ErsBook",
        Operation::EpsCreate { .. } => "EpsCreate",
        Operation::ScrUpdate { .. } => "ScrUpdate",
        Operation::ScrView { .. } => "ScrView",
        Operation::EpsUpdate { .. } => "EpsUpdate",
        Operation::EpsReleaseNominated { .. } => "EpsReleaseNominated",
        _ => "other",
    }
}
