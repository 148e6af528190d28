//! What becomes of a run whose host stopped during it, whichever store records it: a
//! server restarted over it (one host), or a host that stopped renewing its lease
//! (several): it is retried once, and fails `host_restarted` if it was a retry already.

use floom_runtime::{ErrorCode, RunError};

use super::StoredEvent;
use crate::events;

/// Who stopped during the run, as its events say.
#[derive(Clone, Copy)]
pub(super) enum Stopped {
    /// This server, which restarted.
    Server,
    /// Another host, whose lease ran out.
    Host,
}

/// What a taken-back run becomes.
pub(super) enum TakenBack {
    /// Queued again, with this `host_log` event.
    Retry(StoredEvent),
    /// Failed with this error, and this terminal event.
    Fail(RunError, StoredEvent),
}

/// What becomes of run `id` after `attempts` attempts, its next event numbered `seq`.
pub(super) fn taken_back(id: &str, seq: i64, attempts: i64, stopped: Stopped) -> TakenBack {
    let who = match stopped {
        Stopped::Server => "the server restarted during this run",
        Stopped::Host => "the host running this run stopped",
    };
    if attempts < 2 {
        return TakenBack::Retry(events::host_log(
            id,
            seq,
            &format!("{who}; it will be retried once"),
        ));
    }
    let error = RunError::new(
        ErrorCode::HostRestarted,
        format!("{who}, and it had already been retried once"),
    );
    let event = events::error(id, seq, super::ExecStatus::Failed, &error);
    TakenBack::Fail(error, event)
}
