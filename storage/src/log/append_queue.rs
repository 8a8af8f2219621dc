//! The bounded queue from appenders to the writer thread, with one wake-up per batch.
//!
//! A channel wakes a sleeping receiver on every send; while the writer waits for a batch to
//! fill, that is one futex wake (and a context switch on a small machine) per record, which
//! profiling showed to be the main cost at 256 appenders on 2 cores. Here the writer states how
//! many queued records it is waiting for, and only the appender whose push reaches that count
//! wakes it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::thread::{self, Thread};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

/// `wake_at` while the writer is not waiting: no push needs to wake it.
const NOT_WAITING: usize = usize::MAX;

/// A bounded multi-producer queue consumed by one writer thread.
pub(crate) struct AppendQueue<T> {
    queue: ArrayQueue<T>,
    /// The queue length at which a push must wake the writer.
    wake_at: AtomicUsize,
    writer: OnceLock<Thread>,
    closed: AtomicBool,
}

impl<T> AppendQueue<T> {
    /// A queue holding at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity),
            wake_at: AtomicUsize::new(NOT_WAITING),
            writer: OnceLock::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Names the thread that consumes the queue; called once, before the first push.
    pub(crate) fn set_writer(&self, writer: Thread) {
        assert!(self.writer.set(writer).is_ok(), "the writer is set once");
    }

    /// Queues `item`, or gives it back when the queue is full or closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(item);
        }
        self.queue.push(item)?;
        // Pairs with the fence in `wait`: either the writer sees this item in its length check,
        // or this push sees the writer's `wake_at` and wakes it.
        fence(Ordering::SeqCst);
        if self.queue.len() >= self.wake_at.load(Ordering::Relaxed) {
            self.wake();
        }
        Ok(())
    }

    /// Stops accepting pushes and wakes the writer so it can drain what is queued and exit.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the oldest item (writer only).
    pub(crate) fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Sleeps until at least `count` items are queued, the queue is closed, or `deadline` passes
    /// (writer only). May return early; callers re-check.
    pub(crate) fn wait(&self, count: usize, deadline: Option<Instant>) {
        assert!(count > 0);
        self.wake_at.store(count, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        while self.queue.len() < count && !self.is_closed() {
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
        self.wake_at.store(NOT_WAITING, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_full_queue_gives_the_item_back() {
        let queue = AppendQueue::new(2);
        assert!(queue.push(1).is_ok());
        assert!(queue.push(2).is_ok());
        assert_eq!(queue.push(3), Err(3));
        queue.close();
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.push(4), Err(4), "a closed queue takes nothing");
    }

    #[test]
    fn the_writer_wakes_when_its_count_is_reached_and_misses_no_item() {
        let queue = Arc::new(AppendQueue::new(1024));
        queue.set_writer(thread::current());
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for i in 0..200 {
                        while queue.push(p * 1000 + i).is_err() {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut received = 0;
        while received < 800 {
            // No deadline: a lost wake-up would hang the test.
            queue.wait(1, None);
            while queue.pop().is_some() {
                received += 1;
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        assert_eq!(received, 800);
    }

    #[test]
    fn waiting_ends_at_the_deadline() {
        let queue = AppendQueue::<u32>::new(4);
        queue.set_writer(thread::current());
        let started = Instant::now();
        queue.wait(3, Some(started + Duration::from_millis(5)));
        assert!(started.elapsed() >= Duration::from_millis(5));
    }
}
