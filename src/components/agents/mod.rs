//! Agents: a pool of worker tasks on a tokio runtime taking jobs from a
//! queue. The queue is selectable, so a campaign can compare a channel, a
//! `Mutex<VecDeque>` and a lock-free queue under the same load; the channel
//! is tokio's MPSC (its one receiver shared behind a lock) or an MPMC
//! channel (a receiver per worker).
//! The pool runs whatever job it is given and measures nothing itself.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// tokio's unbounded MPSC channel; workers share its receiver.
    TokioMpsc,
    /// A `std::sync::Mutex<VecDeque>` with a tokio `Notify`.
    MutexDeque,
    /// crossbeam's lock-free `SegQueue` with a tokio `Notify`.
    LockFree,
}

/// The channel behind [`QueueKind::TokioMpsc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChannelImpl {
    /// tokio's unbounded MPSC channel: a single receiver, which the workers
    /// take turns to hold through an async `Mutex`.
    #[default]
    Mpsc,
    /// async-channel's unbounded MPMC channel (runtime-agnostic, so it runs
    /// on tokio): every worker holds its own receiver, no lock between them.
    Mpmc,
}

impl QueueKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::TokioMpsc => "tokio_mpsc",
            Self::MutexDeque => "mutex_deque",
            Self::LockFree => "lock_free",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the agents pool is shut down: task not accepted")]
    Closed,
    #[error("an agent worker panicked: {0}")]
    Worker(String),
}

/// Waits for an item of a queue that signals pushes through `notify`.
/// `try_pop` returns `None` to give up (a poisoned lock), `Some(None)` when
/// the queue is empty. Interest is registered before each check, so a push
/// between the check and the wait is not missed.
async fn pop_when_ready<T>(
    notify: &Notify,
    closed: &AtomicBool,
    mut try_pop: impl FnMut() -> Option<Option<T>>,
) -> Option<T> {
    loop {
        let notified = notify.notified();
        if let Some(item) = try_pop()? {
            return Some(item);
        }
        if closed.load(Ordering::Acquire) {
            return None;
        }
        notified.await;
    }
}

enum Queue<T> {
    TokioMpsc {
        sender: Mutex<Option<mpsc::UnboundedSender<T>>>,
        receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<T>>,
    },
    Mpmc {
        sender: async_channel::Sender<T>,
        receiver: async_channel::Receiver<T>,
    },
    MutexDeque {
        items: Mutex<VecDeque<T>>,
        notify: Notify,
        closed: AtomicBool,
    },
    LockFree {
        // Boxed: a SegQueue is much larger than the other variants.
        items: Box<SegQueue<T>>,
        notify: Notify,
        closed: AtomicBool,
    },
}

impl<T> Queue<T> {
    fn new(kind: QueueKind, channel: ChannelImpl) -> Self {
        match kind {
            QueueKind::TokioMpsc if channel == ChannelImpl::Mpmc => {
                let (sender, receiver) = async_channel::unbounded();
                Self::Mpmc { sender, receiver }
            }
            QueueKind::TokioMpsc => {
                let (sender, receiver) = mpsc::unbounded_channel();
                Self::TokioMpsc {
                    sender: Mutex::new(Some(sender)),
                    receiver: tokio::sync::Mutex::new(receiver),
                }
            }
            QueueKind::MutexDeque => Self::MutexDeque {
                items: Mutex::new(VecDeque::new()),
                notify: Notify::new(),
                closed: AtomicBool::new(false),
            },
            QueueKind::LockFree => Self::LockFree {
                items: Box::new(SegQueue::new()),
                notify: Notify::new(),
                closed: AtomicBool::new(false),
            },
        }
    }

    fn push(&self, item: T) -> Result<(), AgentsError> {
        match self {
            Self::TokioMpsc { sender, .. } => {
                let guard = sender.lock().map_err(|_| AgentsError::Closed)?;
                guard
                    .as_ref()
                    .ok_or(AgentsError::Closed)?
                    .send(item)
                    .map_err(|_| AgentsError::Closed)
            }
            Self::Mpmc { sender, .. } => sender.try_send(item).map_err(|_| AgentsError::Closed),
            Self::MutexDeque {
                items,
                notify,
                closed,
            } => {
                if closed.load(Ordering::Acquire) {
                    return Err(AgentsError::Closed);
                }
                items
                    .lock()
                    .map_err(|_| AgentsError::Closed)?
                    .push_back(item);
                notify.notify_one();
                Ok(())
            }
            Self::LockFree {
                items,
                notify,
                closed,
            } => {
                if closed.load(Ordering::Acquire) {
                    return Err(AgentsError::Closed);
                }
                items.push(item);
                notify.notify_one();
                Ok(())
            }
        }
    }

    /// The next item; `None` once the queue is closed and empty.
    async fn pop(&self) -> Option<T> {
        match self {
            Self::TokioMpsc { receiver, .. } => receiver.lock().await.recv().await,
            // Receivers share the channel; `recv` on a shared one is fine,
            // each call waits on its own listener.
            Self::Mpmc { receiver, .. } => receiver.recv().await.ok(),
            Self::MutexDeque {
                items,
                notify,
                closed,
            } => {
                pop_when_ready(notify, closed, || {
                    items.lock().ok().map(|mut q| q.pop_front())
                })
                .await
            }
            Self::LockFree {
                items,
                notify,
                closed,
            } => pop_when_ready(notify, closed, || Some(items.pop())).await,
        }
    }

    fn close(&self) {
        match self {
            Self::TokioMpsc { sender, .. } => {
                if let Ok(mut s) = sender.lock() {
                    s.take();
                }
            }
            // Items already sent are still received after close.
            Self::Mpmc { sender, .. } => {
                sender.close();
            }
            Self::MutexDeque { closed, notify, .. } | Self::LockFree { closed, notify, .. } => {
                closed.store(true, Ordering::Release);
                notify.notify_waiters();
            }
        }
    }
}

/// `workers` agents taking jobs from one queue and handing each to `job`
/// together with the index of the agent that took it.
pub struct AgentPool<T: Send + 'static> {
    runtime: Runtime,
    queue: Arc<Queue<T>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> AgentPool<T> {
    pub fn start(
        kind: QueueKind,
        channel: ChannelImpl,
        workers: usize,
        runtime_threads: usize,
        job: Arc<dyn Fn(usize, T) + Send + Sync>,
    ) -> Result<Self, AgentsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(runtime_threads.max(1))
            .thread_name("agents")
            .build()
            .map_err(AgentsError::Runtime)?;
        let queue = Arc::new(Queue::new(kind, channel));
        let workers = (0..workers.max(1))
            .map(|index| {
                let (queue, job) = (Arc::clone(&queue), Arc::clone(&job));
                runtime.spawn(async move {
                    while let Some(item) = queue.pop().await {
                        job(index, item);
                        // Let other agents run between CPU-bound jobs.
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        Ok(Self {
            runtime,
            queue,
            workers,
        })
    }

    /// Enqueues a job; callable from any thread.
    pub fn submit(&self, item: T) -> Result<(), AgentsError> {
        self.queue.push(item)
    }

    /// Closes the queue and waits until every job already submitted ran.
    pub fn shutdown(self) -> Result<(), AgentsError> {
        self.queue.close();
        let Self {
            runtime, workers, ..
        } = self;
        runtime.block_on(async {
            for worker in workers {
                worker
                    .await
                    .map_err(|e| AgentsError::Worker(e.to_string()))?;
            }
            Ok(())
        })
    }
}
