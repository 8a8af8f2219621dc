//! How the engine's coordinators reach its shards: each shard's bounded inbox and a wake-up
//! of its thread. The coordination itself is in [`crate::coordinator`].

use crossbeam_channel::TrySendError;
use tokio::sync::oneshot;

use super::EngineHandle;
use super::shard_thread::Envelope;
use crate::access::Directory;
use crate::coordinator::{Coordinator, RepairReport, ShardLinks, shard_overloaded};
use crate::request::{ErrorCode, Refusal, Request, Response};
use crate::shard::{ShardInput, ShardOutput};

impl ShardLinks for EngineHandle {
    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn send(
        &self,
        shard: usize,
        input: ShardInput,
    ) -> Result<oneshot::Receiver<ShardOutput>, Refusal> {
        let link = &self.shards[shard];
        let (reply, answer) = oneshot::channel();
        match link.inbox.try_send(Envelope { input, reply }) {
            Ok(()) => {
                link.wake.notify_one();
                Ok(answer)
            }
            Err(TrySendError::Full(_)) => Err(shard_overloaded(shard)),
            Err(TrySendError::Disconnected(_)) => Err(Refusal::new(
                ErrorCode::ServiceUnavailable,
                format!("shard {shard} has stopped"),
            )),
        }
    }
}

impl EngineHandle {
    /// Executes `request` and answers once everything it wrote, and the audit of everything it
    /// disclosed, is durable.
    pub async fn submit(&self, request: Request) -> Response {
        Coordinator::new(self).submit(request).await
    }

    /// Settles every pending booking and owed slot release on every shard; run when the
    /// engine starts, and safe at any time.
    pub async fn repair_referrals(&self) -> Result<RepairReport, Refusal> {
        Coordinator::new(self).repair_referrals().await
    }
}
