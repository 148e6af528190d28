//! Drafts a reply to a customer's message and, once a person approves it, sends it: an
//! app whose `draft` action needs approval (`approval = true`) and hands the approved
//! draft to its `send` action (`then = "send"`), in the same execution.
//!
//! `send` posts the reply as JSON to the outbox API (`POST {api_base}/messages`), which
//! must be in the manifest's `allowed_hosts`, and returns the message id it answers with.

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

/// Where replies go unless a draft names another outbox.
const DEFAULT_API: &str = "https://outbox.example.com";

/// What `draft` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    from: String,
    name: Option<String>,
    subject: Option<String>,
    message: String,
    signature: Option<String>,
    api_base: Option<String>,
}

/// A reply: what `draft` proposes and `send` sends.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    to: String,
    subject: String,
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_base: Option<String>,
}

/// What the outbox answers.
#[derive(Deserialize)]
struct Accepted {
    id: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Draft(Reply),
    Sent { sent: bool, message_id: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Message(Message),
    Reply(Reply),
}

struct ReplyDrafter;

impl App for ReplyDrafter {
    type Input = Input;
    type Output = Output;

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        match (ctx.action(), input) {
            ("draft", Input::Message(message)) => Ok(Output::Draft(draft(message))),
            ("send", Input::Reply(reply)) => send(&reply),
            ("draft" | "send", _) => Err(Error::invalid_input(
                "draft takes a message (from, message), send takes a reply (to, subject, body)",
            )),
            (other, _) => Err(Error::new("unknown_action", format!("no action {other:?}"))),
        }
    }
}

floom_sdk::export!(ReplyDrafter);

/// A polite reply that quotes the message.
fn draft(message: Message) -> Reply {
    let first_line = message.message.lines().next().unwrap_or_default().trim();
    let topic = message
        .subject
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| first_line.chars().take(60).collect());
    let subject = if topic.to_ascii_lowercase().starts_with("re:") {
        topic
    } else {
        format!("Re: {topic}")
    };
    let greeting = match message.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => format!("Hi {name},"),
        _ => "Hello,".to_owned(),
    };
    let quoted: Vec<String> = message
        .message
        .lines()
        .take(20)
        .map(|line| format!("> {line}"))
        .collect();
    let signature = message
        .signature
        .unwrap_or_else(|| "The support team".to_owned());
    let body = format!(
        "{greeting}\n\nThank you for your message. We have looked into it and will get back to \
         you with the details shortly.\n\n{}\n\nBest regards,\n{signature}",
        quoted.join("\n")
    );
    floom_sdk::info!("drafted a reply to {}", message.from);
    Reply {
        to: message.from,
        subject,
        body,
        api_base: message.api_base,
    }
}

/// Posts the reply to the outbox.
fn send(reply: &Reply) -> Result<Output, Error> {
    let base = reply.api_base.as_deref().unwrap_or(DEFAULT_API);
    let url = format!("{}/messages", base.trim_end_matches('/'));
    let body = serde_json::json!({ "to": reply.to, "subject": reply.subject, "body": reply.body });
    let response = floom_sdk::http::Request::post(&url)
        .header("user-agent", "floom-reply-drafter")
        .json(&body)?
        .send()?;
    match response.status() {
        200..=299 => {
            let accepted: Accepted = response.json()?;
            floom_sdk::info!("sent to {} as {}", reply.to, accepted.id);
            Ok(Output::Sent {
                sent: true,
                message_id: accepted.id,
            })
        }
        status => Err(Error::new(
            "send_failed",
            format!("the outbox answered {status}"),
        )),
    }
}
