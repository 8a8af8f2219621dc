//! Routing and the requests that span shards, written against [`ShardLinks`]: how inputs
//! reach a shard and outputs come back is the caller's (the engine's inboxes and threads, or
//! the simulator's queues in one thread), so the same coordination runs in both.
//!
//! A request naming a patient goes whole to the patient's home shard. A search is checked
//! here, then scattered to every shard, which answers with its scored matches (disclosing
//! nothing); the merged, ranked list is cut at the limit or refused as `TOO_MANY_MATCHES`, and
//! only then does each shard disclose (read, audit, return) its share. A create first asks the
//! request's home shard for an earlier outcome, then traces the person on every shard, then has
//! that shard allocate the number and write the record. Alerts live with the patients' shards,
//! so they are gathered from all.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::access::{Activity, Directory};
use crate::audit::event::{AuditAction, AuditOutcome};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::patient::{NameUse, Patient};
use crate::pds::search::{self, DateRange, RESULTS_MAX, Score, SearchQuery};
use crate::request::{ErrorCode, Operation, Refusal, Reply, Request, Response};
use crate::shard::{self, ShardInput, ShardOutput};

mod ers;

pub use ers::RepairReport;

/// How a coordinator reaches the shards. `send` queues an input on a shard without waiting;
/// the receiver gets the shard's output once the turn that produced it is durable (a dropped
/// sender means the shard stopped before answering).
pub trait ShardLinks {
    /// How many shards there are.
    fn shard_count(&self) -> usize;
    /// The access directory requests are authorised against.
    fn directory(&self) -> &Directory;
    /// Queues `input` on `shard`, or refuses (the shard is overloaded or stopped).
    fn send(
        &self,
        shard: usize,
        input: ShardInput,
    ) -> Result<oneshot::Receiver<ShardOutput>, Refusal>;
}

/// What `ShardLinks::send` answers when a shard's inbox is full: the caller may retry.
pub fn shard_overloaded(shard: usize) -> Refusal {
    Refusal::new(
        ErrorCode::ServiceUnavailable,
        format!("shard {shard} is overloaded: its inbox is full; retry later"),
    )
}

/// The coordination of one request over the shards `links` reaches.
pub struct Coordinator<'a, L: ShardLinks + ?Sized> {
    links: &'a L,
    directory: &'a Directory,
}

impl<'a, L: ShardLinks + ?Sized> Coordinator<'a, L> {
    /// A coordinator over `links`.
    pub fn new(links: &'a L) -> Self {
        Self {
            links,
            directory: links.directory(),
        }
    }

    fn shard_count(&self) -> usize {
        self.links.shard_count()
    }

    fn send(
        &self,
        shard: usize,
        input: ShardInput,
    ) -> Result<oneshot::Receiver<ShardOutput>, Refusal> {
        self.links.send(shard, input)
    }
}

fn unexpected(output: &ShardOutput) -> Refusal {
    Refusal::new(
        ErrorCode::ServiceUnavailable,
        format!("internal: unexpected shard answer {output:?}"),
    )
}

impl<L: ShardLinks + ?Sized> Coordinator<'_, L> {
    /// Executes `request` and answers once everything it wrote, and the audit of everything it
    /// disclosed, is durable.
    pub async fn submit(&self, request: Request) -> Response {
        if let Some(value) = request.operation.home_value() {
            let home = shard::shard_of(value, self.shard_count());
            return match self.call(home, ShardInput::Execute(request)).await? {
                ShardOutput::Response(response) => response,
                other => Err(unexpected(&other)),
            };
        }
        match &request.operation {
            Operation::PdsCreate { .. } => self.create(request).await,
            Operation::PdsSearch { .. } => self.search(Arc::new(request)).await,
            Operation::PrivacyAlerts { limit, .. } => {
                let limit = *limit as usize;
                self.privacy_alerts(request, limit).await
            }
            Operation::EpsReleaseNominated { limit } => {
                let limit = *limit;
                self.release_nominated(request, limit).await
            }
            Operation::ErsSearchSlots { .. } => self.ers_search(request).await,
            Operation::ErsBook { .. } => self.ers_book(request).await,
            Operation::ErsUpdateReferral { .. } => self.ers_update_referral(request).await,
            Operation::ConnectionRoute => Err(shard::connection_route_refusal()),
            _ => Err(Refusal::new(
                ErrorCode::ServiceUnavailable,
                "internal: an operation without a patient was not routed",
            )),
        }
    }

    /// A nominated release: the shards are asked in turn, from the request's home shard, each
    /// for what is still wanted, so no more than `limit` are released in all and each
    /// prescription (decided by its own shard) goes to exactly one pharmacy.
    async fn release_nominated(&self, request: Request, limit: u8) -> Response {
        let max = crate::shard::RELEASE_LIMIT_MAX;
        if !(1..=max).contains(&limit) {
            return Err(Refusal::new(
                ErrorCode::InvalidValue,
                format!("a nominated release takes 1 to {max} prescriptions, not {limit}"),
            ));
        }
        let request = Arc::new(request);
        let shards = self.shard_count();
        let first = shard::shard_of_request(request.id, shards);
        let mut released = Vec::with_capacity(usize::from(limit));
        for offset in 0..shards {
            let wanted = usize::from(limit) - released.len();
            if wanted == 0 {
                break;
            }
            let shard = (first + offset) % shards;
            let input = ShardInput::ReleaseNominated {
                request: Arc::clone(&request),
                limit: wanted,
            };
            let output = match self.call(shard, input).await {
                Ok(ShardOutput::Released(output)) => output,
                Ok(other) => Err(unexpected(&other)),
                Err(refusal) => Err(refusal),
            };
            match output {
                Ok(found) => released.extend(found),
                Err(refusal) if released.is_empty() => return Err(refusal),
                // A later shard failing must not hide what earlier ones released: answer
                // with those (the pharmacy holds them now).
                Err(_) => break,
            }
        }
        Ok(Reply::Prescriptions(released))
    }

    /// Sends `input` to `shard` and waits for its output.
    async fn call(&self, shard: usize, input: ShardInput) -> Result<ShardOutput, Refusal> {
        let answer = self.send(shard, input)?;
        Self::answer(shard, answer).await
    }

    async fn answer(
        shard: usize,
        answer: oneshot::Receiver<ShardOutput>,
    ) -> Result<ShardOutput, Refusal> {
        answer.await.map_err(|_| {
            Refusal::new(
                ErrorCode::ServiceUnavailable,
                format!("shard {shard} stopped before answering"),
            )
        })
    }

    /// Sends one input to each shard that `input` gives one for, all before waiting, and
    /// gathers the outputs in shard order.
    async fn scatter(
        &self,
        input: impl Fn(usize) -> Option<ShardInput>,
    ) -> Vec<(usize, Result<ShardOutput, Refusal>)> {
        let mut waiting = Vec::with_capacity(self.shard_count());
        for shard in 0..self.shard_count() {
            if let Some(input) = input(shard) {
                waiting.push((shard, self.send(shard, input)));
            }
        }
        let mut outputs = Vec::with_capacity(waiting.len());
        for (shard, sent) in waiting {
            let output = match sent {
                Ok(answer) => Self::answer(shard, answer).await,
                Err(refusal) => Err(refusal),
            };
            outputs.push((shard, output));
        }
        outputs
    }

    /// Appends an audit event for a request that disclosed no patient, on the request's home
    /// shard; returns `response` once it is durable.
    async fn audited(
        &self,
        request: &Arc<Request>,
        action: AuditAction,
        response: Response,
    ) -> Response {
        let outcome = match &response {
            Ok(_) => AuditOutcome::Allowed,
            Err(refusal) => AuditOutcome::Refused {
                code: refusal.code.as_str().to_owned(),
            },
        };
        let home = shard::shard_of_request(request.id, self.shard_count());
        let input = ShardInput::Audit {
            request: Arc::clone(request),
            action,
            outcome,
        };
        match self.call(home, input).await? {
            ShardOutput::Audited => response,
            ShardOutput::Response(Err(refusal)) => Err(refusal),
            other => Err(unexpected(&other)),
        }
    }

    async fn search(&self, request: Arc<Request>) -> Response {
        let Operation::PdsSearch { query } = &request.operation else {
            return Err(unexpected(&ShardOutput::Audited));
        };
        let action = AuditAction::PdsSearch;
        if let Err(denied) = self
            .directory
            .authorise(&request.caller, Activity::PdsSearch)
        {
            let refusal = Refusal::new(ErrorCode::AccessDenied, denied);
            return self.audited(&request, action, Err(refusal)).await;
        }
        if let Err(invalid) = search::validate(query) {
            let refusal = Refusal::new(ErrorCode::InvalidSearchData, invalid);
            return self.audited(&request, action, Err(refusal)).await;
        }
        let limit = usize::from(query.max_results);
        let matches = match self.gather_matches(Arc::new(query.clone()), limit).await {
            Ok(matches) => matches,
            Err(refusal) => return self.audited(&request, action, Err(refusal)).await,
        };
        if matches.is_empty() {
            return self
                .audited(&request, action, Ok(Reply::Matches(Vec::new())))
                .await;
        }
        let shards = self.shard_count();
        let share = |shard: usize| -> Vec<(NhsNumber, Score)> {
            matches
                .iter()
                .filter(|(nhs_number, _)| shard::shard_of(nhs_number.value(), shards) == shard)
                .copied()
                .collect()
        };
        let disclosed = self
            .scatter(|shard| {
                let matches = share(shard);
                (!matches.is_empty()).then(|| ShardInput::Disclose {
                    request: Arc::clone(&request),
                    matches,
                })
            })
            .await;
        let mut results = Vec::with_capacity(matches.len());
        for (_, output) in disclosed {
            match output? {
                ShardOutput::Response(Ok(Reply::Matches(found))) => results.extend(found),
                ShardOutput::Response(Err(refusal)) => return Err(refusal),
                other => return Err(unexpected(&other)),
            }
        }
        results.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then(a.patient.nhs_number.cmp(&b.patient.nhs_number))
        });
        Ok(Reply::Matches(results))
    }

    /// Every shard's matches for `query`, merged best first; `TOO_MANY_MATCHES` above `limit`.
    async fn gather_matches(
        &self,
        query: Arc<SearchQuery>,
        limit: usize,
    ) -> Result<Vec<(NhsNumber, Score)>, Refusal> {
        let outputs = self
            .scatter(|_| {
                Some(ShardInput::SearchLocal {
                    query: Arc::clone(&query),
                    limit,
                })
            })
            .await;
        let mut matches = Vec::new();
        for (_, output) in outputs {
            match output? {
                ShardOutput::Candidates(found) => matches.extend(found?),
                other => return Err(unexpected(&other)),
            }
        }
        if matches.len() > limit {
            return Err(Refusal::new(
                ErrorCode::TooManyMatches,
                format!("more than {limit} patients match; add criteria or narrow the ranges"),
            ));
        }
        matches.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(matches)
    }

    async fn create(&self, request: Request) -> Response {
        let home = shard::shard_of_request(request.id, self.shard_count());
        match self
            .call(home, ShardInput::LookupOutcome(request.clone()))
            .await?
        {
            ShardOutput::Outcome(Some(previous)) => return previous,
            ShardOutput::Outcome(None) => {}
            other => return Err(unexpected(&other)),
        }
        let Operation::PdsCreate { patient } = &request.operation else {
            return Err(unexpected(&ShardOutput::Audited));
        };
        // The trace: does someone with these demographics exist? Counted, never disclosed.
        let duplicates = match trace_query(patient) {
            Some(query) => match self.gather_matches(Arc::new(query), RESULTS_MAX).await {
                Ok(matches) => matches.len(),
                Err(refusal) if refusal.code == ErrorCode::TooManyMatches => RESULTS_MAX + 1,
                Err(refusal) => return Err(refusal),
            },
            None => 0,
        };
        let input = ShardInput::Create {
            request,
            duplicates,
        };
        match self.call(home, input).await? {
            ShardOutput::Response(response) => response,
            other => Err(unexpected(&other)),
        }
    }

    async fn privacy_alerts(&self, request: Request, limit: usize) -> Response {
        let outputs = self
            .scatter(|_| Some(ShardInput::Execute(request.clone())))
            .await;
        let mut events = Vec::new();
        for (_, output) in outputs {
            match output? {
                ShardOutput::Response(Ok(Reply::AuditEvents(found))) => events.extend(found),
                ShardOutput::Response(Err(refusal)) => return Err(refusal),
                other => return Err(unexpected(&other)),
            }
        }
        events.sort_by_key(|event| event.time_ms);
        events.truncate(limit);
        Ok(Reply::AuditEvents(events))
    }
}

/// The trace a create runs: the new record's usual family and first given name, gender and
/// date of birth, matched exactly on current and historic data (no postcode: a search by
/// postcode leaves restricted patients out, and they must be found too). `None` without a
/// birth date or family name: no search can find such a person.
fn trace_query(patient: &Patient) -> Option<SearchQuery> {
    let name = patient
        .names
        .iter()
        .find(|name| name.name_use == NameUse::Usual)
        .or(patient.names.first())?;
    let mut query = SearchQuery::new();
    query.family = Some(name.family.as_str().into());
    query.given = name.given.first().map(|given| given.as_str().into());
    query.gender = Some(patient.gender);
    query.birth_date = Some(DateRange::on(patient.birth_date?));
    query.history = true;
    search::validate(&query).ok()?;
    Some(query)
}
