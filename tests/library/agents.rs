//! The agents pool under concurrency, for every queue implementation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use campaign::components::agents::{AgentPool, ChannelImpl, QueueKind};

/// Every queue, with the channel under both implementations.
const QUEUES: [(QueueKind, ChannelImpl); 4] = [
    (QueueKind::TokioMpsc, ChannelImpl::Mpsc),
    (QueueKind::TokioMpsc, ChannelImpl::Mpmc),
    (QueueKind::MutexDeque, ChannelImpl::Mpsc),
    (QueueKind::LockFree, ChannelImpl::Mpsc),
];

#[test]
fn every_task_runs_exactly_once_under_concurrency() {
    const PRODUCERS: usize = 4;
    const TASKS: usize = 20_000;
    for (kind, channel) in QUEUES {
        let runs: Arc<Vec<AtomicU32>> = Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect());
        let by_agent: Arc<Vec<AtomicU32>> = Arc::new((0..4).map(|_| AtomicU32::new(0)).collect());
        let job = {
            let (runs, by_agent) = (Arc::clone(&runs), Arc::clone(&by_agent));
            Arc::new(move |agent: usize, id: usize| {
                runs[id].fetch_add(1, Ordering::Relaxed);
                by_agent[agent].fetch_add(1, Ordering::Relaxed);
            })
        };
        let pool = AgentPool::start(kind, channel, 4, 2, job).unwrap();
        std::thread::scope(|s| {
            for p in 0..PRODUCERS {
                let pool = &pool;
                s.spawn(move || {
                    for id in (p..TASKS).step_by(PRODUCERS) {
                        pool.submit(id).unwrap();
                    }
                });
            }
        });
        pool.shutdown().unwrap();
        let wrong: Vec<(usize, u32)> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.load(Ordering::Relaxed)))
            .filter(|(_, r)| *r != 1)
            .take(5)
            .collect();
        assert!(
            wrong.is_empty(),
            "{kind:?}/{channel:?}: tasks run a wrong number of times: {wrong:?}"
        );
        let total: u32 = by_agent.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        assert_eq!(total as usize, TASKS, "{kind:?}/{channel:?}");
    }
}

#[test]
fn shutdown_runs_every_task_already_submitted() {
    for (kind, channel) in QUEUES {
        let done = Arc::new(AtomicU32::new(0));
        let job = {
            let done = Arc::clone(&done);
            Arc::new(move |_: usize, _: u32| {
                // Slow jobs: most tasks are still queued when shutdown starts.
                std::thread::sleep(std::time::Duration::from_millis(1));
                done.fetch_add(1, Ordering::Relaxed);
            })
        };
        let pool = AgentPool::start(kind, channel, 2, 2, job).unwrap();
        for i in 0..100 {
            pool.submit(i).unwrap();
        }
        pool.shutdown().unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 100, "{kind:?}/{channel:?}");
    }
}
