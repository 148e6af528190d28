//! `floom.toml`: parsing (unknown keys are errors that name the key) and validation.
//!
//! Parsing and validation are separate steps, as in Spin's manifest crate: [`Manifest::parse`]
//! only reads the TOML, [`Manifest::validate`] checks every rule and reports all problems
//! at once, and the runtime then reads the validated form through the accessors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The wall-clock cap no app may exceed (SPEC section 1).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(290);
/// Memory an app gets when its manifest does not say.
pub const DEFAULT_MEMORY_MB: u64 = 256;
/// The action an app without `[actions]` tables has.
pub const DEFAULT_ACTION: &str = "run";
/// Hours a pending approval waits when its action does not say.
pub const DEFAULT_APPROVAL_TIMEOUT_H: f64 = 72.0;
/// The longest an approval may wait: a year, in hours.
pub const MAX_APPROVAL_TIMEOUT_H: f64 = 24.0 * 366.0;

/// A parsed `floom.toml`. Call [`Manifest::validate`] before trusting it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// URL-safe identifier, `^[a-z0-9][a-z0-9-]{0,62}$`.
    pub slug: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path of the component, relative to the manifest file. Ignored over the API, where
    /// the component travels as its own part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<PathBuf>,
    /// Whether anyone may run the app without a token.
    #[serde(default)]
    pub public: bool,
    /// Names of the secrets the app may read; values are set through the API or CLI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Outbound network access.
    #[serde(default)]
    pub network: NetworkSection,
    /// The app's actions, by name. An app with none has a single `run` action.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, Action>,
    /// How `floom build` makes the component; the server accepts and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSection>,
}

/// The `[build]` table (SPEC section 6): what `floom build` runs to make the component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// A Python app's entry module, relative to the manifest; its folder is the source
    /// root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PathBuf>,
    /// Pure-Python packages to install and bundle, as a pip requirements file relative to
    /// the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<PathBuf>,
}

/// The `[limits]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Wall-clock limit in seconds; default and maximum 290.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// Memory limit in MiB over all of the component's memories; default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Instruction budget; default: no fuel metering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// What the run may write under `/out`, in MiB; default and maximum: the operator's
    /// `--max-artifacts-mb` (64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_mb: Option<u64>,
}

/// The `[network]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Host names (exact, or `*.domain` wildcards) the app may call over HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// One `[actions.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// What the action does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the action streams chunks while it runs.
    #[serde(default)]
    pub streaming: bool,
    /// JSON Schema of the inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// JSON Schema of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Whether a person must approve the output before it counts (SPEC section 11).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approval: bool,
    /// The action the approved output is handed to, as its inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
    /// Hours a pending approval waits for a decision (fractions allowed); default 72.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_h: Option<f64>,
}

impl Action {
    /// How long a pending approval of this action waits for a decision.
    pub fn approval_timeout(&self) -> Duration {
        Duration::from_secs_f64(
            self.approval_timeout_h
                .unwrap_or(DEFAULT_APPROVAL_TIMEOUT_H)
                * 3600.0,
        )
    }
}

/// A manifest that could not be read or breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Parse(String),
    /// The manifest parsed but breaks one or more rules; each entry names the key.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The manifest file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Whether `path` is relative and stays below its base (no `..`, no root).
fn is_inside(path: &Path) -> bool {
    path.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) && path.components().next().is_some()
}

/// The limits a run gets: the manifest's, resolved against the defaults and the
/// operator's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// Memory limit over all of the component's memories, in bytes.
    pub memory_bytes: u64,
    /// Instruction budget, when the app is metered.
    pub fuel: Option<u64>,
    /// What a run may write under `/out`, in bytes, when the manifest asks for less than
    /// the operator's cap ([`Caps::artifact_bytes`](crate::Caps::artifact_bytes)).
    pub artifacts_bytes: Option<u64>,
}

impl Manifest {
    /// Parses manifest text. Unknown keys and wrongly typed values are errors that name
    /// the key and its line.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string().trim().to_owned()))
    }

    /// Reads, parses and validates the manifest at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let manifest = Self::parse(&text).map_err(|e| match e {
            ManifestError::Parse(msg) => ManifestError::Parse(format!("{}: {msg}", path.display())),
            other => other,
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The component path resolved against the directory of the manifest at
    /// `manifest_path`.
    pub fn component_path(&self, manifest_path: &Path) -> Option<PathBuf> {
        let component = self.component.as_ref()?;
        let base = manifest_path.parent().unwrap_or(Path::new("."));
        Some(base.join(component))
    }

    /// Checks every rule and reports all broken ones together.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut problems = Vec::new();
        if !is_slug(&self.slug) {
            problems.push(format!(
                "slug {:?} must match ^[a-z0-9][a-z0-9-]{{0,62}}$ (lowercase letters, digits and dashes)",
                self.slug
            ));
        }
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            problems.push("name must be at most 200 characters".to_owned());
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2000)
        {
            problems.push("description must be at most 2000 characters".to_owned());
        }
        let mut seen = BTreeSet::new();
        for secret in &self.secrets {
            if !is_secret_name(secret) {
                problems.push(format!(
                    "secrets: {secret:?} must match ^[A-Z_][A-Z0-9_]{{0,63}}$ and must not start with FLOOM_"
                ));
            }
            if !seen.insert(secret) {
                problems.push(format!("secrets: {secret:?} is listed twice"));
            }
        }
        match self.limits.timeout_s {
            Some(0) => problems.push("limits.timeout_s must be at least 1".to_owned()),
            Some(t) if t > MAX_TIMEOUT.as_secs() => problems.push(format!(
                "limits.timeout_s = {t} is above the {} s cap",
                MAX_TIMEOUT.as_secs()
            )),
            _ => {}
        }
        if self.limits.artifacts_mb == Some(0) {
            problems.push("limits.artifacts_mb must be at least 1".to_owned());
        }
        if self.limits.memory_mb == Some(0) {
            problems.push("limits.memory_mb must be at least 1".to_owned());
        }
        if self.limits.fuel == Some(0) {
            problems
                .push("limits.fuel must be at least 1 (leave it out for no metering)".to_owned());
        }
        for host in &self.network.allowed_hosts {
            if let Err(why) = check_host_pattern(host) {
                problems.push(format!("network.allowed_hosts: {host:?} {why}"));
            }
        }
        if let Some(build) = &self.build {
            // A build reads these from the app's folder and bundles them: a manifest from
            // someone else must not make it read anything else.
            for (key, path) in [
                ("python", &build.python),
                ("requirements", &build.requirements),
            ] {
                if let Some(path) = path
                    && !is_inside(path)
                {
                    problems.push(format!(
                        "build.{key}: {} must be a relative path inside the app's folder",
                        path.display()
                    ));
                }
            }
            if build.python.is_none() {
                problems.push(
                    "build: name the entry module with python = \"app.py\" (the only kind of \
                     build it describes so far; Rust apps need no [build] table)"
                        .to_owned(),
                );
            }
        }
        for (name, action) in &self.actions {
            if !is_action_name(name) {
                problems.push(format!(
                    "actions.{name}: the name must match ^[a-z0-9][a-z0-9_-]{{0,62}}$"
                ));
            }
            for (key, schema) in [
                ("input_schema", &action.input_schema),
                ("output_schema", &action.output_schema),
            ] {
                if let Some(schema) = schema
                    && !schema.is_object()
                    && !schema.is_boolean()
                {
                    problems.push(format!(
                        "actions.{name}.{key} must be a table (a JSON Schema object) or a boolean"
                    ));
                }
            }
            problems.extend(self.approval_problems(name, action));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// What is wrong with the approval keys of action `name`.
    fn approval_problems(&self, name: &str, action: &Action) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(hours) = action.approval_timeout_h
            && !(hours > 0.0 && hours <= MAX_APPROVAL_TIMEOUT_H)
        {
            problems.push(format!(
                "actions.{name}.approval_timeout_h must be more than 0 and at most \
                 {MAX_APPROVAL_TIMEOUT_H} (a year)"
            ));
        }
        if !action.approval && (action.then.is_some() || action.approval_timeout_h.is_some()) {
            problems.push(format!(
                "actions.{name}: then and approval_timeout_h need approval = true"
            ));
        }
        let Some(first) = &action.then else {
            return problems;
        };
        if !self.actions.contains_key(first) {
            problems.push(format!(
                "actions.{name}.then: {first:?} is not an action of this app"
            ));
            return problems;
        }
        // Follow the chain: an action that leads back to itself would never end. Each
        // action is reported by the first action of its cycle only once, from itself.
        let mut seen = BTreeSet::from([name]);
        let mut next = Some(first.as_str());
        while let Some(step) = next {
            if !seen.insert(step) {
                if step == name {
                    problems.push(format!(
                        "actions.{name}.then: the chain of then steps leads back to {name:?}"
                    ));
                }
                break;
            }
            next = self.actions.get(step).and_then(|a| a.then.as_deref());
        }
        problems
    }

    /// The app's actions; an app that declares none has a single default `run`.
    pub fn actions(&self) -> impl Iterator<Item = (&str, &Action)> {
        static DEFAULT: Action = Action {
            description: None,
            streaming: false,
            input_schema: None,
            output_schema: None,
            approval: false,
            then: None,
            approval_timeout_h: None,
        };
        let default = self
            .actions
            .is_empty()
            .then_some((DEFAULT_ACTION, &DEFAULT));
        self.actions
            .iter()
            .map(|(name, action)| (name.as_str(), action))
            .chain(default)
    }

    /// The action called `name`, if the app has it.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions().find(|(n, _)| *n == name).map(|(_, a)| a)
    }

    /// The limits a run of this app gets, with `max_memory_mb` (the operator's cap)
    /// applied to the memory limit.
    pub fn limits(&self, max_memory_mb: u64) -> Limits {
        let memory_mb = self
            .limits
            .memory_mb
            .unwrap_or(DEFAULT_MEMORY_MB)
            .min(max_memory_mb);
        Limits {
            timeout: self
                .limits
                .timeout_s
                .map_or(MAX_TIMEOUT, Duration::from_secs)
                .min(MAX_TIMEOUT),
            memory_bytes: memory_mb.saturating_mul(1 << 20),
            fuel: self.limits.fuel,
            artifacts_bytes: self
                .limits
                .artifacts_mb
                .map(|mb| mb.saturating_mul(1 << 20)),
        }
    }
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`
pub fn is_slug(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && s.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// `^[a-z0-9][a-z0-9_-]{0,62}$`
pub fn is_action_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && s.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// `^[A-Z_][A-Z0-9_]{0,63}$`, not in the `FLOOM_` namespace the host uses itself.
pub fn is_secret_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'_'))
        && s.len() <= 64
        && bytes.all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'_'))
        && !s.starts_with("FLOOM_")
}

/// An allowed-host entry is a DNS name or a `*.` wildcard over one; never `*` alone, a
/// URL, a port or an IP literal (those would bypass the name check).
fn check_host_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern == "*" {
        return Err("allows every host; list the hosts the app needs");
    }
    if pattern.contains("://") || pattern.contains('/') {
        return Err("is a URL; give the host name only");
    }
    let unbracketed = pattern.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err("is an IP literal; give a host name");
    }
    if pattern.contains(':') {
        return Err("has a port; give the host name only");
    }
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err("is not a valid host name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
slug = "meeting-action-items"
name = "Meeting action items"
description = "Extracts action items from a transcript"
component = "../../target/wasm32-wasip2/release/meeting_action_items.wasm"
public = true
secrets = ["OPENAI_API_KEY"]

[limits]
timeout_s = 60
memory_mb = 128
fuel = 2_000_000_000

[network]
allowed_hosts = ["api.openai.com", "*.example.org"]

[actions.run]
description = "Extract the items"
streaming = true
input_schema = { type = "object", required = ["transcript"], properties = { transcript = { type = "string" } } }
output_schema = { type = "object" }
"#;

    #[test]
    fn the_spec_example_parses_and_validates() {
        let m = Manifest::parse(FULL).unwrap();
        m.validate().unwrap();
        assert_eq!(m.slug, "meeting-action-items");
        let limits = m.limits(1024);
        assert_eq!(limits.timeout, Duration::from_secs(60));
        assert_eq!(limits.memory_bytes, 128 << 20);
        assert_eq!(limits.fuel, Some(2_000_000_000));
        let run = m.action("run").unwrap();
        assert!(run.streaming);
        assert_eq!(
            run.input_schema.as_ref().unwrap()["required"][0],
            "transcript"
        );
    }

    #[test]
    fn a_schema_keeps_the_order_of_its_properties() {
        let m = Manifest::parse(
            "slug = \"a\"\n[actions.run]\ninput_schema = { type = \"object\", properties = \
             { zeta = { type = \"string\" }, alpha = { type = \"string\" }, mid = { type = \"string\" } } }\n",
        )
        .unwrap();
        let schema = m.action("run").unwrap().input_schema.as_ref().unwrap();
        let names: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["zeta", "alpha", "mid"], "as written, not sorted");
    }

    #[test]
    fn a_build_table_names_files_inside_the_app() {
        let m = Manifest::parse(
            "slug = \"a\"\n[build]\npython = \"src/app.py\"\nrequirements = \"requirements.txt\"\n",
        )
        .unwrap();
        m.validate().unwrap();
        assert_eq!(m.build.unwrap().python.unwrap(), Path::new("src/app.py"));
        for bad in ["/etc/passwd", "../app.py", "src/../../app.py", ""] {
            let text = format!("slug = \"a\"\n[build]\npython = {bad:?}\n");
            let err = Manifest::parse(&text).unwrap().validate().unwrap_err();
            assert!(
                err.to_string().contains("inside the app's folder"),
                "{bad}: {err}"
            );
        }
        let err = Manifest::parse("slug = \"a\"\n[build]\nrequirements = \"r.txt\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("python = "), "{err}");
        let err = Manifest::parse("slug = \"a\"\n[build]\nrust = true\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `rust`"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Manifest::parse("slug = \"a\"\ncolour = \"red\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
        let err = Manifest::parse("slug = \"a\"\n[limits]\ntimeout = 3\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
    }

    #[test]
    fn defaults_apply_and_the_operator_caps_memory() {
        let m = Manifest::parse("slug = \"a\"\n[limits]\nmemory_mb = 4096\n").unwrap();
        m.validate().unwrap();
        let limits = m.limits(512);
        assert_eq!(limits.timeout, MAX_TIMEOUT);
        assert_eq!(limits.memory_bytes, 512 << 20);
        assert_eq!(limits.fuel, None);
        let names: Vec<_> = m.actions().map(|(n, _)| n).collect();
        assert_eq!(names, ["run"]);
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let m = Manifest::parse(
            r#"
slug = "Bad Slug"
secrets = ["lower", "FLOOM_X", "OK", "OK"]
[limits]
timeout_s = 291
memory_mb = 0
[network]
allowed_hosts = ["*", "https://x.org/", "10.0.0.1", "[::1]", "x.org:443", "ok.org", "*.ok.org"]
[actions."Bad Name"]
input_schema = "string"
"#,
        )
        .unwrap();
        let ManifestError::Invalid(problems) = m.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        let all = problems.join("\n");
        for needle in [
            "slug \"Bad Slug\"",
            "\"lower\"",
            "\"FLOOM_X\"",
            "\"OK\" is listed twice",
            "timeout_s = 291",
            "memory_mb must be at least 1",
            "\"*\" allows every host",
            "is a URL",
            "\"10.0.0.1\" is an IP literal",
            "\"[::1]\" is an IP literal",
            "has a port",
            "actions.Bad Name: the name",
            "input_schema must be a table",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 13, "{all}");
    }

    #[test]
    fn approval_keys_are_checked() {
        let good = r#"
slug = "reply"
[actions.draft]
approval = true
then = "send"
approval_timeout_h = 0.5
[actions.send]
"#;
        let m = Manifest::parse(good).unwrap();
        m.validate().unwrap();
        let draft = m.action("draft").unwrap();
        assert_eq!(draft.approval_timeout(), Duration::from_secs(1800));
        assert_eq!(
            m.action("send").unwrap().approval_timeout(),
            Duration::from_secs(72 * 3600)
        );

        let bad = r#"
slug = "reply"
[actions.a]
approval = true
then = "b"
[actions.b]
approval = true
then = "a"
[actions.c]
approval = true
then = "nowhere"
approval_timeout_h = 0
[actions.d]
then = "a"
"#;
        let Err(ManifestError::Invalid(problems)) = Manifest::parse(bad).unwrap().validate() else {
            panic!("a cycle, an unknown step, a zero timeout and a then without approval pass");
        };
        let all = problems.join("\n");
        for needle in [
            "actions.a.then: the chain of then steps leads back to \"a\"",
            "actions.b.then: the chain of then steps leads back to \"b\"",
            "actions.c.then: \"nowhere\" is not an action",
            "actions.c.approval_timeout_h must be more than 0",
            "actions.d: then and approval_timeout_h need approval = true",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 5, "{all}");
    }

    #[test]
    fn names() {
        assert!(is_slug("a") && is_slug("hello-2") && !is_slug("-a") && !is_slug(""));
        assert!(!is_slug(&"a".repeat(64)) && is_slug(&"a".repeat(63)));
        assert!(is_action_name("extract_items") && !is_action_name("Run"));
        assert!(is_secret_name("API_KEY") && !is_secret_name("FLOOM_ACTION"));
    }
}
