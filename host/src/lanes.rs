//! Two lanes for guest code, so a short run is not slowed by long, busy ones: every run
//! starts in the fast lane (or, with [`Lanes::run_here`], where it is awaited until its
//! first yield); one that has spent more than its budget of time inside the
//! guest moves, at its next yield (every epoch tick), to the slow lane, whose threads run
//! at a lower CPU priority. Spinning, streaming or hoarding guests end up there within a
//! few milliseconds; a run that takes its microseconds never leaves the fast lane.
//!
//! Moving is safe because a run is an ordinary `Send` future between two polls: its
//! sandbox, fiber stack and timers go with it, and the fast lane just waits for its end.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

/// The two guest runtimes and the budget that separates them.
#[derive(Clone, Debug)]
pub struct Lanes {
    /// Where every run starts (and where the rest of a run's work, its store writes and
    /// event pump, stays), or moves at its first yield (see [`Lanes::run_here`]).
    pub fast: Handle,
    /// Where runs go once over budget.
    pub slow: Handle,
    /// Time inside the guest a run may take in the fast lane.
    pub budget: Duration,
}

impl Lanes {
    /// Runs `run` in the fast lane, moving it to the slow lane past the budget. Must be
    /// awaited from a task of the fast lane. An error only when the slow lane lost the
    /// run (it panicked, or the runtime is shutting down).
    pub fn run<F>(&self, run: F) -> Laned<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.laned(State::Fast {
            run: Box::pin(run),
            used: Duration::ZERO,
        })
    }

    /// Like [`Lanes::run`], but polls `run` first where it is awaited (any runtime's
    /// task): a run that ends in its first poll never changes threads; at its first
    /// yield it moves to the fast lane, and from there, past the budget, to the slow one.
    /// An error only when a lane lost the run.
    pub fn run_here<F>(&self, run: F) -> Laned<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.laned(State::Here(Box::pin(run)))
    }

    fn laned<F: Future>(&self, state: State<F>) -> Laned<F> {
        Laned {
            state,
            lanes: self.clone(),
        }
    }
}

/// A run in its lane: see [`Lanes::run`].
pub struct Laned<F: Future> {
    state: State<F>,
    lanes: Lanes,
}

enum State<F: Future> {
    /// Polled where it is awaited, until its first yield.
    Here(Pin<Box<F>>),
    Fast {
        run: Pin<Box<F>>,
        used: Duration,
    },
    /// Handed to the fast lane at its first yield, as a run of the fast lane.
    Handed(JoinHandle<Result<F::Output, JoinError>>),
    Slow(JoinHandle<F::Output>),
    Moving,
}

impl<F> Future for Laned<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Here(run) = &mut this.state {
            let started = Instant::now();
            let poll = run.as_mut().poll(cx);
            let used = started.elapsed();
            if let Poll::Ready(output) = poll {
                return Poll::Ready(Ok(output));
            }
            if let State::Here(run) = std::mem::replace(&mut this.state, State::Moving) {
                let rest = this.lanes.laned(State::Fast { run, used });
                this.state = State::Handed(this.lanes.fast.spawn(rest));
            }
        }
        if let State::Fast { run, used } = &mut this.state {
            let started = Instant::now();
            let poll = run.as_mut().poll(cx);
            *used += started.elapsed();
            match poll {
                Poll::Ready(output) => return Poll::Ready(Ok(output)),
                Poll::Pending if *used <= this.lanes.budget => return Poll::Pending,
                Poll::Pending => {
                    if let State::Fast { run, .. } =
                        std::mem::replace(&mut this.state, State::Moving)
                    {
                        this.state = State::Slow(this.lanes.slow.spawn(run));
                    }
                }
            }
        }
        match &mut this.state {
            State::Handed(handed) => Pin::new(handed)
                .poll(cx)
                .map(|joined| joined.and_then(|r| r)),
            State::Slow(moved) => Pin::new(moved).poll(cx),
            // Only between the assignments above.
            State::Here(_) | State::Fast { .. } | State::Moving => Poll::Pending,
        }
    }
}

impl<F: Future> Drop for Laned<F> {
    fn drop(&mut self) {
        // Nobody waits for it any more: the slot it holds must not outlive the wait.
        match &self.state {
            State::Handed(handed) => handed.abort(),
            State::Slow(moved) => moved.abort(),
            State::Here(_) | State::Fast { .. } | State::Moving => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(name: &'static str) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    /// Lanes on `fast` and `slow` with a 5 ms budget.
    fn lanes(fast: &tokio::runtime::Runtime, slow: &tokio::runtime::Runtime) -> Lanes {
        Lanes {
            fast: fast.handle().clone(),
            slow: slow.handle().clone(),
            budget: Duration::from_millis(5),
        }
    }

    /// Awaits a run that never ends from a task of `on`, then drops it by aborting that
    /// task: the wait ends cancelled.
    fn abandon<F>(on: &tokio::runtime::Runtime, run: Laned<F>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let waiting = on.spawn(run);
        std::thread::sleep(Duration::from_millis(50));
        waiting.abort();
        assert!(on.block_on(waiting).is_err_and(|e| e.is_cancelled()));
    }

    /// Yields `times` times, spinning `spin` between yields, and says where it ended.
    async fn busy(times: usize, spin: Duration) -> String {
        for _ in 0..times {
            let started = Instant::now();
            while started.elapsed() < spin {}
            tokio::task::yield_now().await;
        }
        thread_name()
    }

    #[test]
    fn short_runs_stay_and_busy_ones_move() {
        let (fast, slow) = (runtime("fast"), runtime("slow"));
        let lanes = lanes(&fast, &slow);
        let quick = lanes.run(busy(3, Duration::ZERO));
        assert_eq!(fast.block_on(fast.spawn(quick)).unwrap().unwrap(), "fast");
        let long = lanes.run(busy(20, Duration::from_millis(1)));
        assert_eq!(fast.block_on(fast.spawn(long)).unwrap().unwrap(), "slow");
        // A run dropped while it is in the slow lane is stopped there.
        abandon(&fast, lanes.run(busy(usize::MAX, Duration::from_millis(1))));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            slow.metrics().num_alive_tasks(),
            0,
            "the moved run was stopped"
        );
    }

    #[test]
    fn a_run_here_stays_until_its_first_yield() {
        let (here, fast, slow) = (runtime("here"), runtime("fast"), runtime("slow"));
        let lanes = lanes(&fast, &slow);
        let at_once = lanes.run_here(async { thread_name() });
        assert_eq!(here.block_on(here.spawn(at_once)).unwrap().unwrap(), "here");
        let yields = lanes.run_here(busy(3, Duration::ZERO));
        assert_eq!(here.block_on(here.spawn(yields)).unwrap().unwrap(), "fast");
        let long = lanes.run_here(busy(20, Duration::from_millis(1)));
        assert_eq!(here.block_on(here.spawn(long)).unwrap().unwrap(), "slow");
        // Dropped once moved, it is stopped where it went.
        abandon(
            &here,
            lanes.run_here(busy(usize::MAX, Duration::from_millis(1))),
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            fast.metrics().num_alive_tasks(),
            0,
            "the handed run was stopped"
        );
        assert_eq!(
            slow.metrics().num_alive_tasks(),
            0,
            "the moved run was stopped"
        );
    }
}
