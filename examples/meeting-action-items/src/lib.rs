//! Finds the action items in a meeting transcript and streams each one as it is found.
//!
//! The transcript is a sequence of `Speaker: words` turns (on separate lines or run
//! together). A sentence is an action item when someone commits ("I will ..."), asks
//! someone ("Bob, can you ..."), assigns a third person ("Carol needs to ...") or
//! proposes something for everyone ("Let us ...", "We should ..."). A due date such as
//! "by Friday", "tomorrow" or "end of week" is taken out of the task.

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    transcript: String,
}

#[derive(Serialize)]
struct Output {
    items: Vec<Item>,
}

/// One action item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Item {
    /// Who does it: a speaker's name, or `team` for "let us" and "we should".
    owner: String,
    /// What to do.
    task: String,
    /// When it is due, as said in the meeting.
    due: Option<String>,
}

/// The longest transcript accepted, in bytes.
const MAX_TRANSCRIPT: usize = 512 * 1024;

struct MeetingActionItems;

impl App for MeetingActionItems {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.transcript.trim().is_empty() {
            return Err(Error::invalid_input("transcript is empty"));
        }
        if input.transcript.len() > MAX_TRANSCRIPT {
            return Err(Error::invalid_input(format!(
                "transcript is {} bytes; the limit is {MAX_TRANSCRIPT}",
                input.transcript.len()
            )));
        }
        let mut items = Vec::new();
        let turns = turns(&input.transcript);
        for (speaker, text) in &turns {
            for sentence in sentences(text) {
                if let Some(item) = action_item(speaker, sentence) {
                    // Stream each item the moment it is found.
                    floom_sdk::emit(&item)?;
                    items.push(item);
                }
            }
        }
        floom_sdk::info!(
            "found {} action items in {} turns",
            items.len(),
            turns.len()
        );
        Ok(Output { items })
    }
}

floom_sdk::export!(MeetingActionItems);

/// Splits a transcript into `(speaker, text)` turns. Text before the first speaker
/// belongs to `unknown`.
fn turns(transcript: &str) -> Vec<(String, String)> {
    let mut turns: Vec<(String, String)> = Vec::new();
    for line in transcript.lines() {
        let mut rest = line.trim();
        while !rest.is_empty() {
            let (speaker, text) = match speaker_prefix(rest) {
                Some((speaker, after)) => (Some(speaker), after),
                None => (None, rest),
            };
            // The turn runs until the next "Name:" that starts a sentence.
            let end = next_speaker(text).unwrap_or(text.len());
            let (said, next) = text.split_at(end);
            match (speaker, turns.last_mut()) {
                (Some(speaker), _) => turns.push((speaker.to_owned(), said.trim().to_owned())),
                (None, Some((_, previous))) => {
                    previous.push(' ');
                    previous.push_str(said.trim());
                }
                (None, None) => turns.push(("unknown".to_owned(), said.trim().to_owned())),
            }
            rest = next.trim_start();
        }
    }
    turns
}

/// `Name:` or `First Last:` at the start of `text`.
fn speaker_prefix(text: &str) -> Option<(&str, &str)> {
    let colon = text.find(':')?;
    let name = &text[..colon];
    let words: Vec<&str> = name.split(' ').collect();
    let is_name_word = |w: &str| {
        w.chars().next().is_some_and(char::is_uppercase)
            && w.chars()
                .all(|c| c.is_alphabetic() || c == '-' || c == '\'')
    };
    (words.len() <= 2 && words.iter().all(|w| is_name_word(w))).then(|| (name, &text[colon + 1..]))
}

/// Where the next speaker's turn starts inside `text`: a `Name:` right after the end
/// of a sentence.
fn next_speaker(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (1..text.len()).find(|&i| {
        text.is_char_boundary(i)
            && bytes[i - 1] == b' '
            && text[..i].trim_end().ends_with(['.', '!', '?'])
            && speaker_prefix(&text[i..]).is_some()
    })
}

/// Splits a turn into sentences.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['.', '!', '?', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

const FILLERS: &[&str] = &[
    "ok", "okay", "so", "and", "also", "then", "great", "sure", "yes", "alright", "right", "well",
];
const REQUESTS: &[&str] = &["can you", "could you", "would you", "will you", "please"];
const COMMITMENTS: &[&str] = &[
    "i will",
    "i'll",
    "i can",
    "i'm going to",
    "i am going to",
    "i need to",
    "i have to",
    "i should",
    "let me",
];
const TEAM: &[&str] = &[
    "let us",
    "let's",
    "we will",
    "we'll",
    "we need to",
    "we should",
    "we must",
    "we have to",
];
const ASSIGNMENTS: &[&str] = &[
    "will",
    "needs to",
    "should",
    "has to",
    "is going to",
    "must",
];
const NOTES: &[&str] = &["action item:", "todo:", "to do:"];

/// The action item in `sentence`, said by `speaker`, if there is one.
fn action_item(speaker: &str, sentence: &str) -> Option<Item> {
    let sentence = strip_fillers(sentence);
    let (owner, task) = if let Some(rest) = strip_any(sentence, NOTES) {
        (speaker.to_owned(), rest)
    } else if let Some(rest) = strip_any(sentence, COMMITMENTS) {
        (speaker.to_owned(), rest)
    } else if let Some(rest) = strip_any(sentence, TEAM) {
        ("team".to_owned(), rest)
    } else if let Some(rest) = strip_any(sentence, REQUESTS) {
        ("unassigned".to_owned(), rest)
    } else if let Some((name, rest)) = sentence.split_once(", ") {
        // "Bob, can you ..."
        let rest = strip_any(rest, REQUESTS)?;
        (single_name(name)?.to_owned(), rest)
    } else {
        // "Carol needs to ..."
        let (name, rest) = sentence.split_once(' ')?;
        let rest = strip_any(rest, ASSIGNMENTS)?;
        (single_name(name)?.to_owned(), rest)
    };
    let (task, due) = split_due(task);
    let task = tidy(&task);
    (!task.is_empty()).then_some(Item { owner, task, due })
}

fn strip_fillers(mut sentence: &str) -> &str {
    loop {
        let lower = sentence.to_lowercase();
        let Some(filler) = FILLERS.iter().find(|f| {
            lower.starts_with(*f)
                && lower[f.len()..].starts_with([',', ' '])
                && !lower[f.len()..].trim_start_matches([',', ' ']).is_empty()
        }) else {
            return sentence;
        };
        sentence = sentence[filler.len()..].trim_start_matches([',', ' ']);
    }
}

/// `text` without the first of `prefixes` it starts with (case-insensitively, whole
/// words only).
fn strip_any<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    let lower = text.to_lowercase();
    prefixes.iter().find_map(|p| {
        let rest = lower.strip_prefix(p)?;
        (rest.is_empty() || rest.starts_with(' ') || p.ends_with(':'))
            .then(|| text.get(p.len()..).unwrap_or("").trim())
    })
}

/// A capitalised single word that is not a pronoun.
fn single_name(word: &str) -> Option<&str> {
    let capitalised = word.chars().next().is_some_and(char::is_uppercase)
        && word.chars().all(char::is_alphabetic);
    let pronoun = matches!(
        word,
        "I" | "We" | "You" | "They" | "He" | "She" | "It" | "This" | "That"
    );
    (capitalised && !pronoun).then_some(word)
}

const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const PREPOSITIONS: &[&str] = &["by", "before", "on", "until", "due", "for"];

/// Takes a due date out of `task`: returns the task without it, and the date as said.
fn split_due(task: &str) -> (String, Option<String>) {
    let words: Vec<&str> = task.split_whitespace().collect();
    let bare = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    for start in 0..words.len() {
        let Some(len) = date_phrase(&words[start..].iter().map(|w| bare(w)).collect::<Vec<_>>())
        else {
            continue;
        };
        let cut_from = if start > 0 && PREPOSITIONS.contains(&bare(words[start - 1]).as_str()) {
            start - 1
        } else {
            start
        };
        let due = words[start..start + len]
            .iter()
            .map(|w| {
                let w = w.trim_matches(|c: char| !c.is_alphanumeric());
                if WEEKDAYS.contains(&w.to_lowercase().as_str()) {
                    capitalise(w)
                } else {
                    w.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let rest: Vec<&str> = words[..cut_from]
            .iter()
            .chain(&words[start + len..])
            .copied()
            .collect();
        return (rest.join(" "), Some(due));
    }
    (task.to_owned(), None)
}

/// How many words at the start of `words` (lowercase, bare) form a date.
fn date_phrase(words: &[String]) -> Option<usize> {
    let at = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let is_day_number = |w: &str| {
        let digits = w.trim_end_matches(|c: char| c.is_alphabetic());
        !digits.is_empty() && digits.len() <= 2 && digits.chars().all(|c| c.is_ascii_digit())
    };
    match at(0) {
        w if WEEKDAYS.contains(&w) => Some(1),
        "tomorrow" | "today" | "tonight" | "eod" | "eow" => Some(1),
        "next" | "this" if matches!(at(1), "week" | "month") || WEEKDAYS.contains(&at(1)) => {
            Some(2)
        }
        "end" if at(1) == "of" => match (at(2), at(3)) {
            ("day" | "week" | "month", _) => Some(3),
            ("the", "day" | "week" | "month") => Some(4),
            _ => None,
        },
        w if MONTHS.contains(&w) && w != "may" && is_day_number(at(1)) => Some(2),
        "may" if is_day_number(at(1)) => Some(2),
        w if is_day_number(w) && MONTHS.contains(&at(1)) => Some(2),
        _ => None,
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Trims punctuation and a trailing "please", and capitalises the task.
fn tidy(task: &str) -> String {
    let task = task.trim().trim_end_matches([',', '.', '!', '?', ' ']);
    let task = task
        .strip_suffix(" please")
        .or_else(|| task.strip_suffix(", please"))
        .unwrap_or(task)
        .trim();
    capitalise(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(owner: &str, task: &str, due: Option<&str>) -> Item {
        Item {
            owner: owner.into(),
            task: task.into(),
            due: due.map(Into::into),
        }
    }

    fn items(transcript: &str) -> Vec<Item> {
        turns(transcript)
            .iter()
            .flat_map(|(speaker, text)| {
                sentences(text)
                    .filter_map(|s| action_item(speaker, s))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn finds_the_items_of_a_meeting() {
        let found = items(
            "Alice: Let us ship by Friday. Bob: I will write the release notes by Thursday.\n\
             Alice: Carol, can you review the API docs before Wednesday?\n\
             Carol: Sure. Dave needs to update the changelog tomorrow.\n\
             Bob: The weather is nice.",
        );
        assert_eq!(
            found,
            [
                item("team", "Ship", Some("Friday")),
                item("Bob", "Write the release notes", Some("Thursday")),
                item("Carol", "Review the API docs", Some("Wednesday")),
                item("Dave", "Update the changelog", Some("tomorrow")),
            ]
        );
    }

    #[test]
    fn dates_and_fillers() {
        assert_eq!(
            items("Eve: Okay, I'll send the deck by end of the week"),
            [item("Eve", "Send the deck", Some("end of the week"))]
        );
        assert_eq!(
            items("Eve: we should book a room on March 3rd"),
            [item("team", "Book a room", Some("March 3rd"))]
        );
        assert_eq!(
            items("Eve: please fix the build"),
            [item("unassigned", "Fix the build", None)]
        );
        assert!(items("Frank: I think it went well.").is_empty());
    }

    #[test]
    fn speakers() {
        let t = turns("intro\nAnn Lee: hi. Bo: yo\ncontinued");
        assert_eq!(
            t,
            [
                ("unknown".to_owned(), "intro".to_owned()),
                ("Ann Lee".to_owned(), "hi.".to_owned()),
                ("Bo".to_owned(), "yo continued".to_owned()),
            ]
        );
    }
}
