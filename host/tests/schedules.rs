//! Schedules on a real server: a cron expression with a seconds field starts exactly one
//! run per tick, also across a SIGKILL and restart; ticks missed while the server was
//! down run once when it is back; list, pause, resume and delete.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, TOKEN};

/// Every claimed tick of every schedule: (tick in unix ms, execution id), read from the
/// store itself, where the claim is made.
fn ticks(data_dir: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("floom.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT tick, execution_id FROM schedule_ticks ORDER BY tick")
        .unwrap();
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The executions schedules started, oldest first.
async fn scheduled(server: &Server) -> Vec<Value> {
    let page: Value = server
        .admin_get("/api/executions?trigger_source=schedule&limit=200")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut data = page["data"].as_array().unwrap().clone();
    data.reverse();
    data
}

async fn schedule(server: &Server, body: Value) -> Value {
    let response = server
        .post("/api/apps/hello/schedules")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Checks that every scheduled execution belongs to exactly one tick, every tick to one
/// execution, and each run started within its tick's second or soon after.
async fn one_run_per_tick(server: &Server) -> Vec<(i64, String)> {
    let ticks = ticks(&server.data_dir);
    let runs = scheduled(server).await;
    let tick_runs: HashSet<&str> = ticks.iter().map(|(_, id)| id.as_str()).collect();
    let run_ids: HashSet<&str> = runs
        .iter()
        .map(|r| r["execution_id"].as_str().unwrap())
        .collect();
    assert_eq!(tick_runs.len(), ticks.len(), "a run claimed two ticks");
    assert_eq!(
        tick_runs, run_ids,
        "runs without a claimed tick, or ticks without a run"
    );
    let distinct: HashSet<i64> = ticks.iter().map(|(tick, _)| *tick).collect();
    assert_eq!(distinct.len(), ticks.len());
    for run in &runs {
        assert_eq!(run["trigger_source"], "schedule");
        assert_eq!(run["action"], "run");
    }
    ticks
}

#[tokio::test]
async fn a_seconds_schedule_runs_once_per_tick_also_across_a_sigkill() {
    let server = Server::start(&["--examples=rust"]);
    let created = schedule(
        &server,
        json!({ "cron": "* * * * * *", "timezone": "Europe/Berlin", "inputs": { "name": "Tick" } }),
    )
    .await;
    assert!(created["next_tick"].is_string());
    assert_eq!(created["paused"], false);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let before = one_run_per_tick(&server).await;
    assert!(
        (2..=5).contains(&before.len()),
        "{} runs in 3.5 s of a schedule ticking every second",
        before.len()
    );
    for window in before.windows(2) {
        let gap = window[1].0 - window[0].0;
        // A second apart (more only if the loop fell behind and folded ticks).
        assert!(gap >= 1000 && gap % 1000 == 0, "ticks: {before:?}");
    }
    let run = server
        .wait_terminal(&before[0].1, Duration::from_secs(20))
        .await;
    assert_eq!(run["output"]["greeting"], "Hello, Tick!");

    // SIGKILL right after a tick was claimed, and restart at once.
    let last = before.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ticks(&server.data_dir).len() == last && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data_dir = server.kill();
    let at_kill = ticks(&data_dir);
    let server = Server::start_in(data_dir, &["--examples=rust"]);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = one_run_per_tick(&server).await;
    assert!(
        after.len() > at_kill.len() + 1,
        "it goes on ticking after the restart"
    );
    // Each tick once: the ones claimed before the kill were not run again.
    assert_eq!(&after[..at_kill.len()], &at_kill[..]);

    // The list shows the next tick, and the last one run.
    let list: Value = server
        .admin_get("/api/apps/hello/schedules")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = &list["data"][0];
    assert_eq!(listed["id"], created["id"]);
    assert!(listed["next_tick"].as_str().unwrap() > listed["last_tick"].as_str().unwrap());
    assert!(listed["last_execution_id"].is_string());
}

#[tokio::test]
async fn ticks_missed_while_the_server_was_down_run_once() {
    let server = Server::start(&["--examples=rust"]);
    schedule(
        &server,
        json!({ "cron": "*/2 * * * * *", "inputs": { "name": "Late" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let data_dir = server.kill();
    let down_at = now_ms();
    let before = ticks(&data_dir);
    // Three or four ticks pass while the server is down.
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let server = Server::start_in(data_dir, &["--examples=rust"]);
    let up_at = now_ms();
    // Look before the next regular tick can have been claimed.
    let mut caught_up = ticks(&server.data_dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while caught_up.len() == before.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        caught_up = ticks(&server.data_dir);
    }
    let missed: Vec<_> = caught_up[before.len()..]
        .iter()
        .filter(|(tick, _)| *tick < up_at)
        .collect();
    assert_eq!(
        missed.len(),
        1,
        "the missed ticks fold into one run: {caught_up:?}"
    );
    let (tick, _) = missed[0];
    assert!(
        *tick > down_at + 4000,
        "the latest missed tick runs, not the first"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = one_run_per_tick(&server).await;
    assert!(
        all.len() > caught_up.len(),
        "regular ticks go on after the catch-up"
    );
}

#[tokio::test]
async fn schedules_are_checked_paused_resumed_and_deleted() {
    let server = Server::start(&["--examples=rust"]);
    for (body, why) in [
        (json!({ "cron": "* * * *" }), "4 fields"),
        (json!({ "cron": "0 0 0 1 1 * 2030" }), "7 fields"),
        (json!({ "cron": "61 * * * *" }), "a minute out of range"),
        (
            json!({ "cron": "* * * * *", "timezone": "Mars/Olympus" }),
            "an unknown zone",
        ),
        (
            json!({ "cron": "* * * * *", "action": "nope" }),
            "an unknown action",
        ),
        (
            json!({ "cron": "* * * * *", "inputs": { "name": 7 } }),
            "inputs against the schema",
        ),
    ] {
        let response = server
            .post("/api/apps/hello/schedules")
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{why}");
    }
    let created = schedule(&server, json!({ "cron": "* * * * * *" })).await;
    let id = created["id"].as_str().unwrap();
    let paused = server
        .post(&format!("/api/apps/hello/schedules/{id}/pause"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true);
    assert!(paused["next_tick"].is_null());
    let runs_at_pause = ticks(&server.data_dir).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        ticks(&server.data_dir).len() <= runs_at_pause + 1,
        "no runs while paused"
    );
    let paused_runs = ticks(&server.data_dir).len();

    let resumed: Value = server
        .post(&format!("/api/apps/hello/schedules/{id}/resume"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["paused"], false);
    assert!(resumed["next_tick"].is_string());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let resumed_runs = ticks(&server.data_dir).len();
    assert!(resumed_runs > paused_runs, "ticks run again once resumed");
    // Ticks that passed while paused were not made up for.
    assert!(resumed_runs <= paused_runs + 4);

    let deleted = server
        .http
        .delete(server.url(&format!("/api/apps/hello/schedules/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let list: Value = server
        .admin_get("/api/apps/hello/schedules")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));
    let executions = scheduled(&server).await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        scheduled(&server).await.len(),
        executions,
        "no runs once deleted"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
