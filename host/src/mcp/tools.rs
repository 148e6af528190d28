//! Which tools a caller sees and what they are called: one per action of every app it
//! may run (public apps, and private ones its token covers), plus the built-in
//! [`BUILTIN_EXECUTION_TOOL`].
//!
//! Names (SPEC section 7): `{slug}` for an app's default action, `{slug}__{action}` for
//! the others; a name over 64 characters is cut to 55 plus `_` and 8 hex characters of
//! its sha256. Slugs have no `_`, so the first `__` ends the slug, and a name with a
//! single `_` (the built-in) or of exactly 64 characters ending in a hash is never an
//! app's plain name: no two tools collide.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Exchange, RpcError, Scope};
use crate::api::auth::sha256_hex;
use crate::registry::LoadedApp;
use crate::runs::default_action;

/// The built-in tool that reads an execution by id (and waits for its end).
pub const BUILTIN_EXECUTION_TOOL: &str = "floom_execution";

/// Longest tool name every client takes (`^[a-zA-Z0-9_-]{1,64}$`).
const MAX_NAME: usize = 64;
/// Tools per `tools/list` page.
const PAGE: usize = 100;

/// The tool name of `action` of `slug`; `default` when it is the app's default action.
pub fn tool_name(slug: &str, action: &str, default: bool) -> String {
    let full = if default {
        slug.to_owned()
    } else {
        format!("{slug}__{action}")
    };
    if full.len() <= MAX_NAME {
        return full;
    }
    // Slugs and action names are ASCII, so any byte index is a character boundary.
    format!("{}_{}", &full[..55], &sha256_hex(&full)[..8])
}

/// One app action as a tool.
pub struct AppTool {
    /// The tool's name.
    pub name: String,
    /// The app.
    pub app: Arc<LoadedApp>,
    /// The action.
    pub action: String,
}

/// The apps of `scope` that `exchange`'s caller may run, by slug.
fn visible_apps(exchange: &Exchange) -> Vec<Arc<LoadedApp>> {
    let caller = &exchange.caller;
    exchange
        .state
        .registry
        .all()
        .into_iter()
        .filter(|app| match &exchange.scope {
            Scope::All => true,
            Scope::App(slug) => app.record.slug == *slug,
        })
        .filter(|app| app.record.public || caller.covers(&app.record.slug))
        .collect()
}

fn tools_of(app: &Arc<LoadedApp>) -> impl Iterator<Item = AppTool> + '_ {
    let default = default_action(app);
    app.app
        .manifest()
        .actions()
        .map(move |(action, _)| AppTool {
            name: tool_name(&app.record.slug, action, default.as_deref() == Some(action)),
            app: app.clone(),
            action: action.to_owned(),
        })
}

/// The app tool called `name` that the caller may run, if any.
pub fn resolve(exchange: &Exchange, name: &str) -> Option<AppTool> {
    // The name up to its first `_` is the slug, or (in a cut name) the slug's start.
    let start = name.split('_').next().unwrap_or_default();
    let cut = name.len() == MAX_NAME;
    visible_apps(exchange)
        .into_iter()
        .filter(|app| app.record.slug == start || (cut && app.record.slug.starts_with(start)))
        .find_map(|app| tools_of(&app).find(|tool| tool.name == name))
}

/// An `inputSchema`: the action's `input_schema` with `type: "object"` at its root (the
/// inputs of a run are always an object, and clients drop a tool whose schema does not
/// say so), or any object when it has none.
fn input_schema(schema: Option<&Value>) -> Value {
    match schema {
        Some(Value::Object(schema)) => {
            let mut schema = schema.clone();
            schema.insert("type".into(), json!("object"));
            Value::Object(schema)
        }
        _ => json!({ "type": "object" }),
    }
}

/// Whether an output schema describes an object: then the output is the structured
/// content as it is; otherwise it is wrapped as `{"result": output}`.
pub fn is_object_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
}

/// An `outputSchema`: the action's output schema when it is an object schema, else that
/// schema wrapped as the `result` property of one. Definitions and the dialect move to
/// the wrapper, so `#/$defs/...` references still resolve.
fn output_schema(schema: &Value) -> Value {
    if is_object_schema(schema) {
        return schema.clone();
    }
    let mut wrapper = Map::new();
    let mut inner = schema.clone();
    if let Value::Object(inner) = &mut inner {
        for key in ["$schema", "$defs", "definitions"] {
            if let Some(moved) = inner.remove(key) {
                wrapper.insert(key.into(), moved);
            }
        }
    }
    wrapper.insert("type".into(), json!("object"));
    wrapper.insert("properties".into(), json!({ "result": inner }));
    Value::Object(wrapper)
}

/// The tool definition of `tool`.
fn definition(tool: &AppTool) -> Value {
    let manifest = tool.app.app.manifest();
    let action = manifest.action(&tool.action);
    let app_name = manifest.name.as_deref().unwrap_or(&manifest.slug);
    let default = tool.name == manifest.slug;
    let title = if default {
        app_name.to_owned()
    } else {
        format!("{app_name}: {}", tool.action)
    };
    let description = action
        .and_then(|a| a.description.clone())
        .or_else(|| manifest.description.clone())
        .unwrap_or_else(|| {
            format!(
                "Runs the {} action of the app {}",
                tool.action, manifest.slug
            )
        });
    let mut definition = json!({
        "name": tool.name,
        "title": title,
        "description": description,
        "inputSchema": input_schema(action.and_then(|a| a.input_schema.as_ref())),
    });
    if let Some(schema) = action.and_then(|a| a.output_schema.as_ref()) {
        definition["outputSchema"] = output_schema(schema);
    }
    definition
}

/// The built-in tool's definition.
fn builtin_definition() -> Value {
    json!({
        "name": BUILTIN_EXECUTION_TOOL,
        "title": "Floom execution",
        "description": "Reads an execution (a run started by one of the other tools) by its \
            id, waiting for its end up to the server's time limit unless wait is false. Use it \
            when a tool answered that its run is still going: pass the execution_id and \
            view_token it returned.",
        "inputSchema": {
            "type": "object",
            "required": ["execution_id"],
            "properties": {
                "execution_id": { "type": "string", "pattern": "^exec_[0-9a-z]{1,59}$",
                    "description": "The id a tool call returned (exec_...)" },
                "view_token": { "type": "string", "maxLength": 256,
                    "description": "The execution's view token, which the call returned too" },
                "wait": { "type": "boolean", "default": true,
                    "description": "Wait for the end, up to the server's time limit" }
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "required": ["execution_id", "status"],
            "properties": {
                "execution_id": { "type": "string" },
                "status": { "enum": ["queued", "running", "succeeded", "failed", "timed_out",
                    "cancelled"] },
                "output": { "description": "The output, once succeeded" },
                "error": { "type": ["object", "null"], "description": "The error, once failed" }
            }
        }
    })
}

/// `tools/list`: the caller's tools sorted by name, a page at a time; the cursor is the
/// last name of the page before (hex), so pages stay consistent while apps come and go.
pub fn list(exchange: &Exchange, params: &Value) -> Result<Value, RpcError> {
    let after = match params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(
            hex::decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    RpcError::invalid_params("the cursor is not one this server returned")
                })?,
        ),
        Some(_) => return Err(RpcError::invalid_params("the cursor must be a string")),
    };
    let apps = visible_apps(exchange);
    let mut tools: Vec<(String, Option<AppTool>)> = apps
        .iter()
        .flat_map(tools_of)
        .map(|tool| (tool.name.clone(), Some(tool)))
        .chain([(BUILTIN_EXECUTION_TOOL.to_owned(), None)])
        .filter(|(name, _)| after.as_ref().is_none_or(|after| name > after))
        .collect();
    tools.sort_by(|a, b| a.0.cmp(&b.0));
    let more = tools.len() > PAGE;
    tools.truncate(PAGE);
    let next = more
        .then(|| tools.last().map(|(name, _)| hex::encode(name)))
        .flatten();
    let definitions: Vec<Value> = tools
        .iter()
        .map(|(_, tool)| tool.as_ref().map_or_else(builtin_definition, definition))
        .collect();
    let mut result = json!({ "tools": definitions });
    if let Some(next) = next {
        result["nextCursor"] = json!(next);
    }
    if exchange.era == super::Era::Modern {
        // Tools come and go with publishes, and differ by token.
        result["ttlMs"] = json!(0);
        result["cacheScope"] = json!("private");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_and_long_ones_are_cut_with_a_hash() {
        assert_eq!(tool_name("hello", "run", true), "hello");
        assert_eq!(tool_name("word-count", "top", false), "word-count__top");
        let slug = "a".repeat(63);
        let cut = tool_name(&slug, "summarize", false);
        assert_eq!(cut.len(), 64);
        assert!(cut.starts_with(&format!("{slug}__")[..55]));
        assert_eq!(&cut[55..56], "_");
        let full = format!("{slug}__summarize");
        assert_eq!(&cut[56..], &sha256_hex(&full)[..8]);
        assert_ne!(cut, tool_name(&slug, "summarise", false));
        let valid = regex::Regex::new("^[a-zA-Z0-9_-]{1,64}$").unwrap();
        assert!(valid.is_match(&cut) && valid.is_match(BUILTIN_EXECUTION_TOOL));
    }

    #[test]
    fn schemas_are_object_schemas() {
        assert_eq!(input_schema(None), json!({ "type": "object" }));
        assert_eq!(
            input_schema(Some(&json!({ "properties": { "a": {} } })))["type"],
            "object"
        );
        let object = json!({ "type": "object", "required": ["x"] });
        assert_eq!(output_schema(&object), object);
        let wrapped = output_schema(&json!({
            "$defs": { "n": { "type": "number" } }, "type": "array", "items": { "$ref": "#/$defs/n" } }));
        assert_eq!(wrapped["type"], "object");
        assert_eq!(wrapped["properties"]["result"]["type"], "array");
        assert_eq!(wrapped["$defs"]["n"]["type"], "number");
        assert!(wrapped["properties"]["result"].get("$defs").is_none());
    }
}
