//! Bounded text. What a guest or a client sends can reach the host's answers (an app's
//! error message, a log line, a problem's detail quoting a 1 MiB string or a 60 KiB
//! path), so each such string is cut to a limit where it enters, on a character
//! boundary and marked, instead of being stored and repeated whole.

use std::fmt::{self, Write as _};

/// What ends a cut text.
pub const CUT_MARK: &str = "…";

/// `text` cut to at most `max` bytes, the mark included, on a character boundary.
pub fn cut(mut text: String, max: usize) -> String {
    cut_in_place(&mut text, max);
    text
}

/// Like [`cut`], in place.
pub fn cut_in_place(text: &mut String, max: usize) {
    if text.len() > max {
        end_with_mark(text, max);
    }
}

/// Truncates `text` so that it and the mark fit in `max` bytes, and marks it.
fn end_with_mark(text: &mut String, max: usize) {
    let mut end = max.saturating_sub(CUT_MARK.len()).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT_MARK);
}

/// `value` formatted into at most `max` bytes, the mark included: what lies past the
/// limit is dropped as it is written, never buffered.
pub fn display_cut(value: &impl fmt::Display, max: usize) -> String {
    let mut out = Bounded {
        text: String::new(),
        max,
        over: false,
    };
    // `Bounded` only fails to stop the formatting once it is full.
    let _ = write!(out, "{value}");
    if out.over {
        end_with_mark(&mut out.text, max);
    }
    out.text
}

/// A writer that keeps the first `max` bytes and notes whether more came.
struct Bounded {
    text: String,
    max: usize,
    over: bool,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max - self.text.len().min(self.max);
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        self.over = true;
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept() {
        assert_eq!(cut("abc".to_owned(), 3), "abc");
        assert_eq!(display_cut(&"abc", 3), "abc");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_and_marked() {
        let text = "é".repeat(100);
        let short = cut(text.clone(), 10);
        assert!(short.len() <= 10, "{short}");
        assert!(short.ends_with(CUT_MARK));
        assert!(short.starts_with("éé"));
        let shown = display_cut(&text, 10);
        assert_eq!(shown, short);
    }

    #[test]
    fn formatting_stops_at_the_limit() {
        struct Endless;
        impl fmt::Display for Endless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                loop {
                    f.write_str("ab")?;
                }
            }
        }
        let shown = display_cut(&Endless, 64);
        assert!(shown.len() <= 64 && shown.ends_with(CUT_MARK), "{shown}");
    }
}
