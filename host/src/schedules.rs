//! Schedules (SPEC section 9): cron expressions read in an IANA time zone, and the loop
//! that starts a run at each tick.
//!
//! A tick's run is started through [`crate::runs::start_with`] with a [`TickClaim`]: the
//! store claims the tick in the transaction that writes the execution, so a tick starts
//! at most one run, also when a restart (or another host) tries it again. Ticks missed
//! while the server was down fold into one: the latest of them runs once when it comes
//! back. A tick that cannot start a run (the app paused or deleted, the queue full, its
//! inputs no longer valid) is skipped and its reason kept on the schedule.
//!
//! Daylight-saving changes behave as in Vixie cron (croner's rules): a fixed-time tick
//! that falls in a skipped hour runs once, right after it; one in a repeated hour runs
//! once, at the first of the two; interval ticks (`*/5 * * * *`) follow the real clock.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use serde_json::Value;

use crate::api::AppState;
use crate::api::auth::Caller;
use crate::runs::{RunOptions, StartRun};
use crate::store::{Millis, ScheduleRecord, TickClaim, TriggerSource, now_ms};

/// The longest the loop sleeps without looking at the store (a schedule made or resumed
/// meanwhile is seen within this).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    cron: croner::Cron,
    zone: Tz,
}

impl Cron {
    /// Parses `expression` (5 fields, or 6 with leading seconds) to be read in `timezone`
    /// (an IANA name such as `Europe/Berlin`).
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, String> {
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "{expression:?} has {fields} fields; a cron expression has 5 (minute hour \
                 day-of-month month day-of-week) or 6 with leading seconds"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| format!("{expression:?} is not a cron expression: {e}"))?;
        let zone = Tz::from_str(timezone).map_err(|_| {
            format!("{timezone:?} is not an IANA time zone (such as Europe/Berlin)")
        })?;
        Ok(Cron { cron, zone })
    }

    fn at(&self, ms: Millis) -> Option<DateTime<Tz>> {
        // Ticks are whole seconds: the second `ms` falls in.
        let second = ms.div_euclid(1000);
        Utc.timestamp_opt(second, 0)
            .single()
            .map(|t| t.with_timezone(&self.zone))
    }

    /// The first tick after `ms` (unix ms).
    pub fn next_after(&self, ms: Millis) -> Option<Millis> {
        let time = self.at(ms)?;
        let next = self.cron.find_next_occurrence(&time, false).ok()?;
        Some(next.timestamp_millis())
    }

    /// The latest tick at or before `ms` (unix ms).
    pub fn latest_until(&self, ms: Millis) -> Option<Millis> {
        let time = self.at(ms)?;
        let previous = self.cron.find_previous_occurrence(&time, true).ok()?;
        Some(previous.timestamp_millis())
    }
}

/// Starts the run of every due schedule, forever.
pub async fn run(state: AppState) {
    loop {
        let now = now_ms();
        let look = Millis::try_from(LOOK_EVERY.as_millis()).unwrap_or(1000);
        let mut wake = now + look;
        match state.store.due_schedules(now + look).await {
            Ok(schedules) => {
                for schedule in schedules {
                    if schedule.next_tick <= now {
                        fire(&state, schedule, now).await;
                    } else {
                        wake = wake.min(schedule.next_tick);
                    }
                }
            }
            Err(e) => tracing::warn!("schedules: cannot read them (retrying): {e:#}"),
        }
        let sleep = u64::try_from(wake - now_ms()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(sleep)).await;
    }
}

/// Runs the latest due tick of `schedule` (ticks missed meanwhile fold into it).
async fn fire(state: &AppState, schedule: ScheduleRecord, now: Millis) {
    let cron = match Cron::parse(&schedule.cron, &schedule.timezone) {
        Ok(cron) => cron,
        Err(e) => {
            tracing::error!(schedule = %schedule.id, "a stored schedule does not parse: {e}");
            return;
        }
    };
    let tick = cron
        .latest_until(now)
        .unwrap_or(schedule.next_tick)
        .max(schedule.next_tick);
    // No next tick (a date that never comes again): park it at the end of time.
    let next_tick = cron.next_after(now).unwrap_or(Millis::MAX);
    let claim = TickClaim {
        schedule_id: schedule.id.clone(),
        tick,
        next_tick,
    };
    let inputs: Option<Value> = serde_json::from_str(&schedule.inputs).ok();
    let started = crate::runs::start_with(
        state,
        &Caller::Admin,
        StartRun {
            slug: schedule.app.clone(),
            action: Some(schedule.action.clone()),
            action_in_path: false,
            inputs,
            idempotency_key: None,
            trigger_source: TriggerSource::Schedule,
            mcp_call: None,
            watch: false,
        },
        RunOptions {
            tick: Some(claim.clone()),
            on_behalf_of: Some(format!("schedule:{}", schedule.id)),
            ..RunOptions::default()
        },
    )
    .await;
    if let Err(e) = started {
        let why = e.detail().to_owned();
        tracing::warn!(schedule = %schedule.id, tick, "a tick started no run: {why}");
        // False when the tick was taken meanwhile: then there is nothing to skip.
        if let Err(e) = state.store.skip_tick(claim, why).await {
            tracing::warn!(schedule = %schedule.id, "cannot move the schedule past a tick: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Millis {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn five_or_six_fields_and_known_zones_only() {
        assert!(Cron::parse("*/5 * * * *", "UTC").is_ok());
        assert!(Cron::parse("*/2 * * * * *", "Europe/Berlin").is_ok());
        assert!(Cron::parse("* * * *", "UTC").is_err());
        assert!(Cron::parse("0 0 0 1 1 * 2030", "UTC").is_err());
        assert!(Cron::parse("61 * * * *", "UTC").is_err());
        assert!(Cron::parse("* * * * *", "Mars/Olympus").is_err());
    }

    #[test]
    fn seconds_and_zones_are_honoured() {
        let every_two = Cron::parse("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_two.next_after(ms("2026-03-01T10:00:00.500Z")),
            Some(ms("2026-03-01T10:00:02Z"))
        );
        assert_eq!(
            every_two.latest_until(ms("2026-03-01T10:00:03.900Z")),
            Some(ms("2026-03-01T10:00:02Z"))
        );
        let nine_in_berlin = Cron::parse("0 9 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            nine_in_berlin.next_after(ms("2026-01-10T12:00:00Z")),
            Some(ms("2026-01-11T08:00:00Z"))
        );
    }

    #[test]
    fn a_tick_in_a_skipped_hour_runs_once_after_it() {
        // Berlin skips 02:00-03:00 on 2026-03-29.
        let half_past_two = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let first = half_past_two
            .next_after(ms("2026-03-28T12:00:00Z"))
            .unwrap();
        assert_eq!(
            first,
            ms("2026-03-29T01:00:00Z"),
            "03:00 CEST, right after the gap"
        );
        assert_eq!(
            half_past_two.next_after(first),
            Some(ms("2026-03-30T00:30:00Z"))
        );
    }

    #[test]
    fn a_tick_in_a_repeated_hour_runs_once() {
        // Berlin repeats 02:00-03:00 on 2026-10-25.
        let half_past_two = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let first = half_past_two
            .next_after(ms("2026-10-24T12:00:00Z"))
            .unwrap();
        assert_eq!(
            first,
            ms("2026-10-25T00:30:00Z"),
            "02:30 CEST, the first of the two"
        );
        assert_eq!(
            half_past_two.next_after(first),
            Some(ms("2026-10-26T01:30:00Z"))
        );
        // An interval job follows the real clock through the repeated hour.
        let hourly = Cron::parse("0 * * * *", "Europe/Berlin").unwrap();
        let mut at = ms("2026-10-24T23:30:00Z");
        let mut ticks = Vec::new();
        for _ in 0..4 {
            at = hourly.next_after(at).unwrap();
            ticks.push(at);
        }
        assert_eq!(
            ticks,
            [
                ms("2026-10-25T00:00:00Z"),
                ms("2026-10-25T01:00:00Z"),
                ms("2026-10-25T02:00:00Z"),
                ms("2026-10-25T03:00:00Z")
            ]
        );
    }
}
