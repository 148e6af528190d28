//! A command app: a plain `fn main` that reads its inputs as JSON on stdin.
//!
//! Each stdout line streams to the caller as a chunk; the last line starting with
//! `__FLOOM_RESULT__` is the output. A non-zero exit fails the run with `exit_code`.

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    text: String,
    /// How many of the most frequent words to return.
    #[serde(default = "default_top")]
    top: usize,
}

fn default_top() -> usize {
    5
}

#[derive(Serialize)]
struct Output {
    lines: usize,
    words: usize,
    characters: usize,
    top_words: Vec<WordCount>,
}

#[derive(Serialize)]
struct WordCount {
    word: String,
    count: usize,
}

fn main() -> ExitCode {
    let mut raw = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut raw) {
        eprintln!("cannot read stdin: {e}");
        return ExitCode::from(2);
    }
    let input: Input = match serde_json::from_str(&raw) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("invalid input: {e} (expected {{\"text\": \"...\"}})");
            return ExitCode::from(2);
        }
    };

    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut words = 0;
    let mut lines = 0;
    for (number, line) in input.text.lines().enumerate() {
        lines += 1;
        let mut in_line = 0;
        for word in line.split(|c: char| !c.is_alphanumeric() && c != '\'') {
            let word = word.trim_matches('\'').to_lowercase();
            if word.is_empty() {
                continue;
            }
            in_line += 1;
            *counts.entry(word).or_default() += 1;
        }
        words += in_line;
        // Progress streams to the caller as it happens.
        println!("line {}: {in_line} words", number + 1);
    }

    let mut top_words: Vec<WordCount> = counts
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    top_words.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    top_words.truncate(input.top);

    let output = Output {
        lines,
        words,
        characters: input.text.chars().count(),
        top_words,
    };
    match serde_json::to_string(&output) {
        Ok(json) => {
            println!("__FLOOM_RESULT__{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot encode the output: {e}");
            ExitCode::FAILURE
        }
    }
}
