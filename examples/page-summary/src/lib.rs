//! Fetches a web page and summarises it: title, description, word count and an excerpt.
//! It may only reach the hosts its manifest lists; the host refuses anything else.

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    url: String,
    /// Characters of text in the excerpt.
    #[serde(default = "default_excerpt")]
    excerpt_chars: usize,
}

fn default_excerpt() -> usize {
    300
}

#[derive(Serialize)]
struct Output {
    url: String,
    status: u16,
    title: Option<String>,
    description: Option<String>,
    words: usize,
    links: usize,
    excerpt: String,
}

/// Pages are read up to this size; the rest is ignored.
const MAX_PAGE: usize = 2 << 20;

struct PageSummary;

impl App for PageSummary {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let response = floom_sdk::http::Request::get(&input.url)
            .header("user-agent", "floom-page-summary/0.1")
            .send()?;
        let status = response.status();
        // Read as it arrives, and stop at the size cap.
        let mut page = Vec::new();
        for chunk in response.chunks() {
            page.extend_from_slice(&chunk?);
            if page.len() >= MAX_PAGE {
                floom_sdk::warn!("page larger than {MAX_PAGE} bytes; summarising the start");
                break;
            }
        }
        floom_sdk::emit(&serde_json::json!({ "fetched_bytes": page.len(), "status": status }))?;
        let html = String::from_utf8_lossy(&page);
        let text = visible_text(&html);
        let excerpt: String = text.chars().take(input.excerpt_chars).collect();
        Ok(Output {
            url: input.url,
            status,
            title: element_text(&html, "title"),
            description: meta_description(&html),
            words: text.split_whitespace().count(),
            links: html.matches("<a ").count() + html.matches("<A ").count(),
            excerpt: excerpt.trim().to_owned(),
        })
    }
}

floom_sdk::export!(PageSummary);

/// The text inside the first `<tag>...</tag>`.
fn element_text(html: &str, tag: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find(&format!("<{tag}"))?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find(&format!("</{tag}"))?;
    let text = collapse(&html[start..end]);
    (!text.is_empty()).then_some(text)
}

/// The `content` of `<meta name="description" content="...">`.
fn meta_description(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let at = lower.find("name=\"description\"")?;
    let tag_start = lower[..at].rfind('<')?;
    let tag_end = at + lower[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let content = tag.find("content=\"")? + "content=\"".len();
    let end = content + tag[content..].find('"')?;
    Some(collapse(&tag[content..end]))
}

/// The page's text without tags, scripts and styles, whitespace collapsed.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let after = &rest[open..];
        let lower: String = after
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.to_ascii_lowercase().find("</script>").map(|i| i + 9)
        } else if lower.starts_with("<style") {
            after.to_ascii_lowercase().find("</style>").map(|i| i + 8)
        } else {
            after.find('>').map(|i| i + 1)
        };
        match skip_to {
            Some(n) => rest = &after[n..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    collapse(&out.replace("&amp;", "&").replace("&nbsp;", " "))
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_html() {
        let html = r#"<html><head><title> Hi  there </title>
            <meta name="description" content="A page"><style>p{}</style></head>
            <body><p>One two <a href="/x">three</a></p><script>var x = 1;</script></body></html>"#;
        assert_eq!(element_text(html, "title").as_deref(), Some("Hi there"));
        assert_eq!(meta_description(html).as_deref(), Some("A page"));
        assert_eq!(visible_text(html), "Hi there One two three");
    }
}
