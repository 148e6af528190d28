//! The operator's charts, drawn as SVG on the server (no script, no CDN): runs per day
//! stacked by status, and the p50/p95 run duration per day. `chart.html` renders a
//! [`Chart`]; colours come from the stylesheet's `s-*` and `line-*` classes.

use askama::Template;

use crate::store::{DayStats, ExecStatus};

/// The drawing's width in SVG units for a wide screen (it scales to its box).
pub const WIDE: f64 = 600.0;
/// The drawing's width for a phone's screen: fewer days, larger type.
pub const NARROW: f64 = 360.0;
/// The drawing's height.
const HEIGHT: f64 = 220.0;
/// Room for the y axis labels on the left and the dates below.
const LEFT: f64 = 60.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Most date labels under the x axis (more would overlap).
const MAX_X_LABELS: usize = 8;

/// The order statuses stack in, bottom first.
pub const STACK: [ExecStatus; 6] = [
    ExecStatus::Succeeded,
    ExecStatus::Failed,
    ExecStatus::TimedOut,
    ExecStatus::Cancelled,
    ExecStatus::Running,
    ExecStatus::Queued,
];

/// One SVG chart.
#[derive(Debug, Clone, Template)]
#[template(path = "chart.html")]
pub struct Chart {
    /// A prefix for its ids.
    pub id: String,
    /// Its width in SVG units.
    pub size: f64,
    /// Its accessible name.
    pub title: String,
    /// What it shows, in words, for those who cannot see it.
    pub desc: String,
    /// Horizontal grid lines with their labels.
    pub y_ticks: Vec<Tick>,
    /// Dates under the x axis.
    pub x_labels: Vec<Label>,
    /// Bars (the runs chart).
    pub bars: Vec<Bar>,
    /// Lines (the duration chart).
    pub lines: Vec<Line>,
    /// Points on the lines, each with its value.
    pub dots: Vec<Dot>,
    /// Nothing to draw.
    pub empty: bool,
}

/// A grid line at `y`.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Its height.
    pub y: String,
    /// Its value.
    pub label: String,
}

/// A date under the x axis.
#[derive(Debug, Clone)]
pub struct Label {
    /// Its centre.
    pub x: String,
    /// `12-01`.
    pub text: String,
}

/// One status's part of one day's bar.
#[derive(Debug, Clone)]
pub struct Bar {
    /// `s-succeeded`, ...
    pub class: String,
    /// Left edge.
    pub x: String,
    /// Top edge.
    pub y: String,
    /// Width.
    pub w: String,
    /// Height.
    pub h: String,
    /// What it counts, shown on hover.
    pub title: String,
}

/// A polyline through the days that have a value.
#[derive(Debug, Clone)]
pub struct Line {
    /// `line-p50` or `line-p95`.
    pub class: String,
    /// `x,y x,y ...`
    pub points: String,
}

/// A point on a line.
#[derive(Debug, Clone)]
pub struct Dot {
    /// `line-p50` or `line-p95`.
    pub class: String,
    /// Centre.
    pub x: String,
    /// Centre.
    pub y: String,
    /// Its value, shown on hover.
    pub title: String,
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// A round step so that about four steps cover `max`: 1, 2 or 5 times a power of ten.
fn step(max: f64) -> f64 {
    let raw = (max / 4.0).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Grid lines from 0 to the first step at or above `max`, and that top value.
fn ticks(max: f64, whole: bool) -> (Vec<f64>, f64) {
    let mut step = step(max);
    if whole {
        step = step.max(1.0).round();
    }
    let top = (max / step).ceil().max(1.0) * step;
    let count = (top / step).round() as usize;
    let values = (0..=count).map(|i| i as f64 * step).collect();
    (values, top)
}

/// The x centre of day `i` of `n` in a drawing `width` wide.
fn x_center(i: usize, n: usize, width: f64) -> f64 {
    let slot = (width - LEFT - RIGHT) / n.max(1) as f64;
    LEFT + slot * (i as f64 + 0.5)
}

fn y_of(value: f64, top: f64) -> f64 {
    let plot = HEIGHT - TOP - BOTTOM;
    HEIGHT - BOTTOM - plot * (value / top)
}

fn x_labels(days: &[(String, &DayStats)], width: f64) -> Vec<Label> {
    let every = days.len().div_ceil(MAX_X_LABELS).max(1);
    days.iter()
        .enumerate()
        .filter(|(i, _)| (days.len() - 1 - i).is_multiple_of(every))
        .map(|(i, (date, _))| Label {
            x: num(x_center(i, days.len(), width)),
            // `2026-12-01` → `12-01`: the year is in the table and the title.
            text: date.get(5..).unwrap_or(date).to_owned(),
        })
        .collect()
}

/// A duration for people: `850 ms`, `1.2 s`, `3 min`.
pub fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        let s = ms / 1000.0;
        if s < 10.0 {
            format!("{s:.1} s")
        } else {
            format!("{s:.0} s")
        }
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

fn count(day: &DayStats, status: ExecStatus) -> i64 {
    day.counts
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| *n)
}

/// Runs per day, stacked by status, `width` wide. `days` pairs each day's date with its
/// figures.
pub fn runs(id: &str, days: &[(String, &DayStats)], width: f64) -> Chart {
    let totals: Vec<i64> = days
        .iter()
        .map(|(_, d)| d.counts.iter().map(|(_, n)| n).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let (values, top) = ticks(max as f64, true);
    let slot = (width - LEFT - RIGHT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let mut bars = Vec::new();
    for (i, (date, day)) in days.iter().enumerate() {
        let mut base = 0i64;
        for status in STACK {
            let n = count(day, status);
            if n == 0 {
                continue;
            }
            let y_top = y_of((base + n) as f64, top);
            let y_bottom = y_of(base as f64, top);
            bars.push(Bar {
                class: format!("s-{}", status.as_str()),
                x: num(x_center(i, days.len(), width) - bar / 2.0),
                y: num(y_top),
                w: num(bar),
                h: num((y_bottom - y_top).max(0.5)),
                title: format!("{date}: {n} {}", status.as_str().replace('_', " ")),
            });
            base += n;
        }
    }
    let total: i64 = totals.iter().sum();
    let mut by_status = Vec::new();
    for status in STACK {
        let n: i64 = days.iter().map(|(_, d)| count(d, status)).sum();
        if n > 0 {
            by_status.push(format!("{n} {}", status.as_str().replace('_', " ")));
        }
    }
    let desc = if total == 0 {
        format!("No runs in the last {} days.", days.len())
    } else {
        format!(
            "{total} runs in the last {} days: {}.",
            days.len(),
            by_status.join(", ")
        )
    };
    Chart {
        id: id.to_owned(),
        size: width,
        title: "Runs per day, by status".to_owned(),
        desc,
        y_ticks: values
            .iter()
            .map(|v| Tick {
                y: num(y_of(*v, top)),
                label: format!("{v:.0}"),
            })
            .collect(),
        x_labels: x_labels(days, width),
        bars,
        lines: Vec::new(),
        dots: Vec::new(),
        empty: total == 0,
    }
}

/// The p50 and p95 run duration per day, as two lines, `width` wide.
pub fn durations(id: &str, days: &[(String, &DayStats)], width: f64) -> Chart {
    let max = days
        .iter()
        .filter_map(|(_, d)| d.p95_ms.or(d.p50_ms))
        .max()
        .unwrap_or(0);
    let (values, top) = ticks(max as f64, false);
    let mut lines = Vec::new();
    let mut dots = Vec::new();
    for (class, name, pick) in [
        (
            "line-p50",
            "p50",
            (|d: &DayStats| d.p50_ms) as fn(&DayStats) -> Option<i64>,
        ),
        ("line-p95", "p95", |d: &DayStats| d.p95_ms),
    ] {
        // A day without runs breaks the line: it had no duration, not a zero one.
        let mut segment: Vec<String> = Vec::new();
        for (i, (date, day)) in days.iter().enumerate() {
            match pick(day) {
                Some(ms) => {
                    let (x, y) = (x_center(i, days.len(), width), y_of(ms as f64, top));
                    segment.push(format!("{},{}", num(x), num(y)));
                    dots.push(Dot {
                        class: class.to_owned(),
                        x: num(x),
                        y: num(y),
                        title: format!("{date}: {name} {}", duration(ms as f64)),
                    });
                }
                None if !segment.is_empty() => lines.push(Line {
                    class: class.to_owned(),
                    points: std::mem::take(&mut segment).join(" "),
                }),
                None => {}
            }
        }
        if !segment.is_empty() {
            lines.push(Line {
                class: class.to_owned(),
                points: segment.join(" "),
            });
        }
    }
    let measured = days.iter().filter(|(_, d)| d.p50_ms.is_some()).count();
    let desc = if measured == 0 {
        format!("No finished runs in the last {} days.", days.len())
    } else {
        let worst = days
            .iter()
            .filter_map(|(date, d)| d.p95_ms.map(|ms| (ms, date)))
            .max();
        match worst {
            Some((ms, date)) => format!(
                "Median and 95th percentile run duration on the {measured} days with finished runs; the highest p95 was {} on {date}.",
                duration(ms as f64)
            ),
            None => format!("Run durations on {measured} days."),
        }
    };
    Chart {
        id: id.to_owned(),
        size: width,
        title: "Run duration per day, p50 and p95".to_owned(),
        desc,
        y_ticks: values
            .iter()
            .map(|v| Tick {
                y: num(y_of(*v, top)),
                label: duration(*v),
            })
            .collect(),
        x_labels: x_labels(days, width),
        bars: Vec::new(),
        lines,
        dots,
        empty: measured == 0,
    }
}

/// The geometry the template draws the axes with.
impl Chart {
    /// The drawing's width.
    pub fn width(&self) -> String {
        num(self.size)
    }

    /// The drawing's height.
    pub fn height(&self) -> String {
        num(HEIGHT)
    }

    /// The x of the y axis.
    pub fn left(&self) -> String {
        num(LEFT)
    }

    /// The x where labels of the y axis end.
    pub fn label_x(&self) -> String {
        num(LEFT - 6.0)
    }

    /// The x where the plot ends.
    pub fn right(&self) -> String {
        num(self.size - RIGHT)
    }

    /// The y of the x axis.
    pub fn bottom(&self) -> String {
        num(HEIGHT - BOTTOM)
    }

    /// The y of the date labels.
    pub fn date_y(&self) -> String {
        num(HEIGHT - 8.0)
    }

    /// The middle of the plot, for the "nothing to draw" note.
    pub fn middle(&self) -> (String, String) {
        (
            num((LEFT + self.size - RIGHT) / 2.0),
            num((TOP + HEIGHT - BOTTOM) / 2.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: i64, counts: &[(ExecStatus, i64)], p50: Option<i64>, p95: Option<i64>) -> DayStats {
        DayStats {
            day,
            counts: counts.to_vec(),
            p50_ms: p50,
            p95_ms: p95,
        }
    }

    #[test]
    fn bars_stack_by_status_and_scale_to_a_round_top() {
        let a = day(
            0,
            &[(ExecStatus::Succeeded, 6), (ExecStatus::Failed, 1)],
            Some(5),
            Some(9),
        );
        let b = day(1, &[], None, None);
        let days = vec![("2026-12-01".to_owned(), &a), ("2026-12-02".to_owned(), &b)];
        let chart = runs("c", &days, WIDE);
        assert_eq!(chart.bars.len(), 2);
        assert_eq!(chart.bars[0].class, "s-succeeded");
        assert_eq!(chart.bars[1].class, "s-failed");
        assert!(chart.bars[1].title.contains("2026-12-01: 1 failed"));
        // 7 runs: steps of 2 up to 8.
        let labels: Vec<&str> = chart.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "2", "4", "6", "8"]);
        assert!(chart.desc.contains("7 runs") && chart.desc.contains("6 succeeded"));
        let svg = chart.to_string();
        assert!(
            svg.starts_with("<svg") && svg.contains("role=\"img\""),
            "{svg}"
        );
        assert!(!chart.empty);
    }

    #[test]
    fn a_day_without_runs_breaks_the_duration_lines() {
        let a = day(0, &[(ExecStatus::Succeeded, 1)], Some(100), Some(1500));
        let b = day(1, &[], None, None);
        let c = day(2, &[(ExecStatus::Succeeded, 1)], Some(200), Some(300));
        let days = vec![
            ("2026-12-01".to_owned(), &a),
            ("2026-12-02".to_owned(), &b),
            ("2026-12-03".to_owned(), &c),
        ];
        let chart = durations("d", &days, WIDE);
        assert_eq!(chart.lines.len(), 4, "two segments per line");
        assert_eq!(chart.dots.len(), 4);
        assert!(chart.desc.contains("1.5 s"), "{}", chart.desc);
        assert_eq!(chart.y_ticks.last().unwrap().label, "1.5 s");
    }

    #[test]
    fn nothing_to_draw_says_so() {
        let a = day(0, &[], None, None);
        let days = vec![("2026-12-01".to_owned(), &a)];
        assert!(runs("c", &days, WIDE).empty);
        assert!(
            durations("d", &days, WIDE)
                .to_string()
                .contains("No finished runs")
        );
    }
}
