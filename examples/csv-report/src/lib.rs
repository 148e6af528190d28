//! Files in, artifacts out: reads the CSV file it is given (under `/in`, as plain file
//! I/O), and writes `report.md` and `chart.svg` under `/out`, which become the run's
//! artifacts. The output summarises each numeric column.

use std::fmt::Write as _;

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    /// The file's path under `/in`: the host sets it from the uploaded file.
    csv: String,
    title: Option<String>,
}

#[derive(Serialize)]
struct Column {
    name: String,
    count: usize,
    min: f64,
    max: f64,
    mean: f64,
}

#[derive(Serialize)]
struct Output {
    rows: usize,
    columns: Vec<Column>,
    artifacts: Vec<&'static str>,
}

struct CsvReport;

impl App for CsvReport {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let mut reader = csv::Reader::from_path(&input.csv)
            .map_err(|e| Error::invalid_input(format!("cannot read {}: {e}", input.csv)))?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| Error::invalid_input(format!("no header row: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); headers.len()];
        let mut rows = 0;
        for record in reader.records() {
            let record = record.map_err(|e| Error::invalid_input(format!("bad row: {e}")))?;
            rows += 1;
            for (i, field) in record.iter().enumerate().take(headers.len()) {
                if let Ok(n) = field.trim().parse::<f64>() {
                    values[i].push(n);
                }
            }
        }
        let columns: Vec<Column> = headers
            .iter()
            .zip(&values)
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| Column {
                name: name.clone(),
                count: v.len(),
                min: v.iter().copied().fold(f64::INFINITY, f64::min),
                max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                mean: v.iter().sum::<f64>() / v.len() as f64,
            })
            .collect();
        let title = input.title.unwrap_or_else(|| "CSV report".to_owned());
        write_out("/out/report.md", &report(&title, rows, &columns))?;
        write_out("/out/chart.svg", &chart(&title, &columns))?;
        Ok(Output {
            rows,
            columns,
            artifacts: vec!["report.md", "chart.svg"],
        })
    }
}

fn write_out(path: &str, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::new("write_failed", format!("{path}: {e}")))
}

fn report(title: &str, rows: usize, columns: &[Column]) -> String {
    let mut md = format!(
        "# {title}\n\n{rows} rows.\n\n| column | count | min | max | mean |\n|---|---|---|---|---|\n"
    );
    for c in columns {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} |",
            c.name, c.count, c.min, c.max, c.mean
        );
    }
    md
}

/// A bar chart of each numeric column's mean.
fn chart(title: &str, columns: &[Column]) -> String {
    let (width, bar, gap) = (480.0, 40.0, 20.0);
    let height = 60.0 + columns.len() as f64 * (bar + gap);
    let top = columns
        .iter()
        .map(|c| c.mean.abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\
         <text x=\"10\" y=\"30\" font-family=\"sans-serif\">{}</text>",
        escape(title)
    );
    for (i, c) in columns.iter().enumerate() {
        let y = 50.0 + i as f64 * (bar + gap);
        let w = (c.mean.abs() / top) * (width - 160.0);
        let _ = write!(
            svg,
            "<rect x=\"120\" y=\"{y}\" width=\"{w:.1}\" height=\"{bar}\" fill=\"#4a7\"/>\
             <text x=\"10\" y=\"{:.1}\" font-family=\"sans-serif\">{}</text>",
            y + bar / 2.0 + 5.0,
            escape(&c.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

floom_sdk::export!(CsvReport);
