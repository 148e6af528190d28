//! The JSON Schemas of app actions: checked when an app is published, compiled once, and
//! applied to a request's inputs within a budget, off the HTTP runtime.
//!
//! A schema comes from a publisher and the inputs from anyone who may run the app; together
//! they can make a validator work for hours (nested `anyOf` over a `$ref` chain doubles per
//! level), hold gigabytes (each failing branch of an `anyOf` keeps its own copy of what it
//! failed on), backtrack without end (`^(a|a)+\1$`) or overflow a thread's stack. Three
//! layers bound that:
//!
//! 1. **At publish**, [`Schema::compile`] refuses a schema that is too large, too deep or
//!    fans out too widely, that refers outside itself, that evaluates one value too many
//!    times in place, or whose pattern needs backtracking; the message names the rule.
//!    Patterns run on the linear-time `regex` engine, and `$ref` resolves only within the
//!    schema, never from files or the network.
//! 2. **Per request**, [`Schema::validate`] first walks the inputs along a plan of the
//!    schema, counting an upper bound of the validator's work, of the errors it can build
//!    and of how deep it recurses, and stops as soon as a budget is passed; only then does
//!    the validator run. The errors it reports are capped in number and in length.
//! 3. A [`ValidationPool`] runs validations on threads of its own (large stacks; the
//!    server lowers their CPU priority) behind a semaphore, so a burst of costly requests waits in line instead of
//!    taking the HTTP runtime's threads, and a time limit answers a request whose
//!    validation overruns anyway.
//!
//! | Publish rule | Limit |
//! |---|---|
//! | size | [`MAX_SCHEMA_BYTES`] of JSON, [`MAX_SCHEMA_VALUES`] JSON values |
//! | depth | [`MAX_SCHEMA_DEPTH`] levels of JSON nesting |
//! | fan-out | [`MAX_BRANCHES`] branches of `anyOf`/`oneOf`/`allOf`, `prefixItems`, array `items`, `patternProperties`, `dependentSchemas`; [`MAX_ENUM`] `enum` values |
//! | local `$ref` | `#` or `#/json/pointer` into the same schema; no `$dynamicRef`, `$recursiveRef` or inner `$id` |
//! | in-place expansion | one value evaluated by at most [`MAX_IN_PLACE`] schemas through `$ref`, combinators and conditionals; no in-place cycle |
//! | in-place depth | at most [`MAX_IN_PLACE_DEPTH`] such steps nested |
//! | pattern | compiles on the `regex` engine (no backreferences or look-around) within [`MAX_PATTERN_SIZE`] |
//!
//! | Request budget | Limit | Answer when passed |
//! |---|---|---|
//! | work | [`WORK_BUDGET`] evaluations of a schema on a value (strings and keys count per [`STRING_BYTES_PER_STEP`] bytes) | 413 |
//! | nesting | [`MAX_EVAL_DEPTH`] nested evaluations | 413 |
//! | errors | [`ERROR_BUDGET`] errors and copied values | 400 without the list |
//! | listed errors | [`MAX_LISTED_ERRORS`], each message and path cut at [`MAX_MESSAGE_BYTES`] | the rest counted |
//! | wait, time | [`QUEUE_WAIT`] for a thread, [`TIME_LIMIT`] to finish | 429, 413 |

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, oneshot};

use floom_runtime::text::display_cut;

/// Largest schema, serialized as JSON: a large real input schema is a few KiB.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
/// Most JSON values (objects, arrays, strings, numbers...) in one schema.
pub const MAX_SCHEMA_VALUES: usize = 10_000;
/// Deepest JSON nesting of a schema (an object property nests two levels).
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// Most branches of one combinator, items of `prefixItems` or array `items`, entries of
/// `patternProperties` (every key is matched against each) or `dependentSchemas`.
pub const MAX_BRANCHES: usize = 128;
/// Most values of one `enum` (every value may be compared with the input).
pub const MAX_ENUM: usize = 1_024;
/// Most schemas that evaluate one value in place (following `$ref`, `allOf`, `anyOf`,
/// `oneOf`, `not`, `if`/`then`/`else`, `dependentSchemas`), counted with multiplicity: a
/// chain of `anyOf` pairs doubles it per level, which is what makes it exponential.
pub const MAX_IN_PLACE: u64 = 1_024;
/// Longest chain of such in-place steps: each is a level of the validator's recursion,
/// repeated at every level of the input's nesting.
pub const MAX_IN_PLACE_DEPTH: u32 = 32;
/// Largest compiled pattern, in bytes of the `regex` engine's program (its default is
/// 10 MiB; a real pattern is a few KiB).
pub const MAX_PATTERN_SIZE: usize = 1 << 20;

/// Most steps one validation may take: a step is a schema evaluating a value, a key
/// looked up, an enum value compared or a value hashed. A 1 MiB body of half a million
/// items against a simple schema is about a million.
pub const WORK_BUDGET: u64 = 5_000_000;
/// Bytes of a string or key that count as one step, for keywords that read every byte
/// (a pattern scans 2 to 8 ns a byte; a step of another kind takes up to about 100 ns).
pub const STRING_BYTES_PER_STEP: u64 = 16;
/// Most errors (and values copied into errors) that listing the problems may build:
/// the validator builds every error before the first is read, about 400 bytes each.
pub const ERROR_BUDGET: u64 = 600_000;
/// Deepest nesting of evaluations (the input's nesting times the in-place chain): the
/// validator recurses once per level, about 600 bytes of stack each.
pub const MAX_EVAL_DEPTH: u32 = 4_096;
/// Most problems listed in one answer; the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 100;
/// Longest message or path of one listed problem, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256;
/// How long a validation waits for a thread before the request is refused (429).
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long a validation may take before the request is answered without it (413). The
/// budgets keep it far shorter; this is the backstop.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);
/// Work a [`Schema::quick_check`] does on the caller's thread at most (tens of µs).
pub const INLINE_WORK: u64 = 10_000;
/// Nesting a [`Schema::quick_check`] follows at most (a few KiB of stack on any thread).
pub const INLINE_DEPTH: u32 = 32;
/// Stack of a validation thread: [`MAX_EVAL_DEPTH`] levels need about 2.5 MiB; the rest
/// is margin (it is reserved, not committed).
const VALIDATION_STACK: usize = 32 << 20;

/// One way the inputs break the action's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InputProblem {
    /// JSON Pointer to the failing value (`""` for the whole input); one longer than 256
    /// bytes is cut and ends with `…`.
    pub path: String,
    /// What is wrong with it, without quoting the value; at most 256 bytes, ending with
    /// `…` when cut.
    pub message: String,
}

/// Why a schema is refused at publish.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The validator does not accept it.
    #[error("is not a valid JSON Schema: {0}")]
    Invalid(String),
    /// It breaks one of the publish rules.
    #[error("breaks the {rule} rule: {detail}")]
    Refused {
        /// The rule's name, as in the module docs.
        rule: &'static str,
        /// What breaks it, and where.
        detail: String,
    },
}

fn refuse(rule: &'static str, detail: impl Into<String>) -> SchemaError {
    SchemaError::Refused {
        rule,
        detail: detail.into(),
    }
}

/// Why inputs were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// They break the schema; the first problems are listed, the rest counted.
    #[error("{}", summary(problems.len(), *omitted))]
    Invalid {
        /// At most [`MAX_LISTED_ERRORS`] problems.
        problems: Vec<InputProblem>,
        /// How many more there are.
        omitted: u64,
    },
    /// They break the schema in more ways than can be listed within [`ERROR_BUDGET`].
    #[error(
        "the inputs do not match the action's input_schema, in more places than the server \
         lists (its budget is {ERROR_BUDGET} errors); fix the first ones and retry"
    )]
    Unlisted,
    /// Validating them would pass [`WORK_BUDGET`].
    #[error(
        "validating these inputs against the action's input_schema would take more than the \
         server's budget of {WORK_BUDGET} steps: send fewer or smaller values"
    )]
    TooCostly,
    /// Validating them would nest deeper than [`MAX_EVAL_DEPTH`].
    #[error(
        "these inputs nest too deeply for the action's input_schema: validating them would \
         recurse more than {MAX_EVAL_DEPTH} levels"
    )]
    TooDeep,
    /// No validation thread came free within [`QUEUE_WAIT`].
    #[error("the server is busy validating other requests; retry shortly")]
    Busy,
    /// Validation did not end within [`TIME_LIMIT`].
    #[error(
        "validating these inputs took longer than the server's limit of {} s: send fewer or \
         smaller values",
        TIME_LIMIT.as_secs()
    )]
    TimedOut,
    /// The validation thread failed (a bug).
    #[error("the validation failed: {0}")]
    Failed(&'static str),
}

/// "the inputs do not match ... (N problems, the first L listed)".
fn summary(listed: usize, omitted: u64) -> String {
    let total = listed as u64 + omitted;
    let plural = if total == 1 { "" } else { "s" };
    let cut = if omitted > 0 {
        format!("; the first {listed} are listed")
    } else {
        String::new()
    };
    format!("the inputs do not match the action's input_schema ({total} problem{plural}{cut})")
}

/// A compiled schema with its cost plan.
pub struct Schema {
    validator: jsonschema::Validator,
    plan: Plan,
}

impl Schema {
    /// Checks `schema` against the publish rules and compiles it.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        measure(schema, 0, &mut 0)?;
        let bytes = serde_json::to_vec(schema)
            .map_err(|e| SchemaError::Invalid(e.to_string()))?
            .len();
        if bytes > MAX_SCHEMA_BYTES {
            return Err(refuse(
                "size",
                format!("it is {bytes} bytes of JSON; the limit is {MAX_SCHEMA_BYTES}"),
            ));
        }
        let draft4 = schema
            .get("$schema")
            .and_then(Value::as_str)
            .is_some_and(|uri| uri.contains("draft-04"));
        no_inner_ids(schema, "#".to_owned(), true, draft4)?;
        let plan = Plan::build(schema, draft4)?;
        let validator = jsonschema::options()
            .offline()
            .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(MAX_PATTERN_SIZE))
            .build(schema)
            .map_err(|e| SchemaError::Invalid(e.to_string()))?;
        Ok(Schema { validator, plan })
    }

    /// Checks `instance` on the calling thread when that is sure to be quick (at most
    /// [`INLINE_WORK`] steps, [`INLINE_DEPTH`] levels) and it is valid; `None` when the
    /// pool must do it: the inputs are larger, deeper, or invalid (listing errors costs
    /// more). Most requests carry a few small values, so they skip the pool's two thread
    /// hops.
    pub fn quick_check(&self, instance: &Value) -> Option<()> {
        self.plan
            .estimate(instance, INLINE_WORK, INLINE_DEPTH)
            .ok()?;
        self.validator.is_valid(instance).then_some(())
    }

    /// Checks `instance`, within the request budgets. Call it on a [`ValidationPool`]
    /// thread: it runs for up to a second and recurses deeply.
    pub fn validate(&self, instance: &Value) -> Result<(), Rejection> {
        let estimate = self.plan.estimate(instance, WORK_BUDGET, MAX_EVAL_DEPTH)?;
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        if !estimate.listable {
            return Err(Rejection::Unlisted);
        }
        let mut problems = Vec::new();
        let mut omitted = 0;
        for error in self.validator.iter_errors(instance) {
            if problems.len() < MAX_LISTED_ERRORS {
                problems.push(InputProblem {
                    path: display_cut(error.instance_path(), MAX_MESSAGE_BYTES),
                    message: display_cut(&error.masked(), MAX_MESSAGE_BYTES),
                });
            } else {
                omitted += 1;
            }
        }
        if problems.is_empty() {
            problems.push(InputProblem {
                path: String::new(),
                message: "the value does not match the schema".to_owned(),
            });
        }
        Err(Rejection::Invalid { problems, omitted })
    }
}

/// Counts the JSON values of `value`, refusing a schema too deep or with too many.
fn measure(value: &Value, depth: usize, count: &mut usize) -> Result<(), SchemaError> {
    *count += 1;
    if *count > MAX_SCHEMA_VALUES {
        return Err(refuse(
            "size",
            format!("it has more than {MAX_SCHEMA_VALUES} JSON values"),
        ));
    }
    if depth >= MAX_SCHEMA_DEPTH && (value.is_object() || value.is_array()) {
        return Err(refuse(
            "depth",
            format!("it nests more than {MAX_SCHEMA_DEPTH} levels of JSON deep"),
        ));
    }
    match value {
        Value::Array(items) => {
            for item in items {
                measure(item, depth + 1, count)?;
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                measure(item, depth + 1, count)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keywords whose value is a schema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
];
/// Keywords whose value is an array of schemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value is an object of schemas.
const SCHEMA_MAP_KEYWORDS: &[&str] = &[
    "$defs",
    "definitions",
    "dependencies",
    "dependentSchemas",
    "patternProperties",
    "properties",
];

/// Refuses an `$id` (or draft 4's `id`) in any schema below the root: it would make `#`
/// in the schemas under it mean that resource, not the document the plan follows.
fn no_inner_ids(
    schema: &Value,
    location: String,
    root: bool,
    draft4: bool,
) -> Result<(), SchemaError> {
    let Value::Object(map) = schema else {
        return Ok(());
    };
    if !root {
        declares_no_id(map, draft4, &location)?;
    }
    for (keyword, value) in map {
        let at = |key: &str| format!("{location}/{}", pointer_token(key));
        if SCHEMA_KEYWORDS.contains(&keyword.as_str()) && !value.is_array() {
            no_inner_ids(value, at(keyword), false, draft4)?;
        }
        if SCHEMA_ARRAY_KEYWORDS.contains(&keyword.as_str())
            && let Value::Array(items) = value
        {
            for (i, item) in items.iter().enumerate() {
                no_inner_ids(item, format!("{}/{i}", at(keyword)), false, draft4)?;
            }
        }
        if SCHEMA_MAP_KEYWORDS.contains(&keyword.as_str())
            && let Value::Object(entries) = value
        {
            for (key, item) in entries {
                let location = format!("{}/{}", at(keyword), pointer_token(key));
                no_inner_ids(item, location, false, draft4)?;
            }
        }
    }
    Ok(())
}

/// Refuses a schema below the root that declares an `$id` (or draft 4's `id`).
fn declares_no_id(
    map: &Map<String, Value>,
    draft4: bool,
    location: &str,
) -> Result<(), SchemaError> {
    let id = map
        .get("$id")
        .or_else(|| map.get("id").filter(|_| draft4))
        .filter(|id| id.is_string());
    if id.is_some() {
        return Err(refuse(
            "local $ref",
            format!(
                "{location} declares an `$id`, which changes what `#` refers to in it; only \
                 the root may have one"
            ),
        ));
    }
    Ok(())
}

/// `key` escaped as a JSON Pointer token.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A schema reduced to what validating with it costs: per schema, the work of its own
/// keywords, and the schemas it applies to the same value (in place) or to the value's
/// keys, properties and items. Node 0 is the root.
struct Plan {
    nodes: Vec<Node>,
}

/// One schema of a [`Plan`].
#[derive(Default)]
struct Node {
    /// Steps of its own keywords on any value: one per keyword, required name and
    /// property, and per value of `enum` and `const`.
    work: u64,
    /// Errors its own keywords can build for one value, with what they copy (`not` copies
    /// its schema).
    errors: u64,
    /// Whether a keyword reads every byte of a string (`pattern`, `format`, lengths,
    /// `contentEncoding`, `contentMediaType`).
    reads_strings: bool,
    /// Whether a keyword goes through every key of an object.
    reads_keys: bool,
    /// Whether it lists unexpected keys in its errors.
    lists_keys: bool,
    /// `patternProperties` patterns, each matched against every key.
    key_patterns: u64,
    /// Whether `uniqueItems` hashes every item.
    unique_items: bool,
    /// Whether `unevaluatedProperties`/`unevaluatedItems` evaluate its in-place schemas
    /// again to learn what they evaluated.
    marks: bool,
    /// Length of the longest in-place chain from it.
    height: u32,
    /// Schemas applied to the same value; `true` where their errors are kept as copies
    /// (`anyOf`, `oneOf`).
    in_place: Vec<(u32, bool)>,
    /// `properties`, sorted by name.
    properties: Vec<(String, u32)>,
    /// `additionalProperties`: every property not in `properties`.
    additional: Option<u32>,
    /// Schemas for every property value (`patternProperties`, `unevaluatedProperties`).
    each_property: Vec<u32>,
    /// `propertyNames`, applied to each key.
    names: Option<u32>,
    /// `prefixItems` (or array `items`), by position.
    prefix: Vec<u32>,
    /// Schemas for every item (`items`, `additionalItems`, `contains`, `unevaluatedItems`).
    each_item: Vec<u32>,
}

/// Builds a [`Plan`]: every schema reachable from the root, each checked once.
struct Builder<'s> {
    root: &'s Value,
    draft4: bool,
    nodes: Vec<Node>,
    /// Where each node is, for messages.
    locations: Vec<String>,
    index: HashMap<*const Value, u32>,
    pending: Vec<(u32, &'s Value)>,
}

impl Plan {
    fn build(root: &Value, draft4: bool) -> Result<Plan, SchemaError> {
        let mut builder = Builder {
            root,
            draft4,
            nodes: Vec::new(),
            locations: Vec::new(),
            index: HashMap::new(),
            pending: Vec::new(),
        };
        builder.node(root, "#".to_owned());
        while let Some((id, schema)) = builder.pending.pop() {
            let node = builder.describe(id, schema)?;
            builder.nodes[id as usize] = node;
        }
        let mut plan = Plan {
            nodes: builder.nodes,
        };
        plan.check_in_place(&builder.locations)?;
        Ok(plan)
    }
}

impl<'s> Builder<'s> {
    /// The node of `schema`, created (and queued for [`Builder::describe`]) on first use.
    fn node(&mut self, schema: &'s Value, location: String) -> u32 {
        let key: *const Value = schema;
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        // At most one node per JSON value of the schema, which `measure` bounded.
        let id = self.nodes.len() as u32;
        self.nodes.push(Node::default());
        self.locations.push(location);
        self.index.insert(key, id);
        self.pending.push((id, schema));
        id
    }

    fn describe(&mut self, id: u32, schema: &'s Value) -> Result<Node, SchemaError> {
        let mut node = Node {
            work: 1,
            // `false` fails with one error; an object schema with one per keyword.
            errors: u64::from(!schema.is_object()),
            ..Node::default()
        };
        let Value::Object(map) = schema else {
            return Ok(node);
        };
        let here = self.locations[id as usize].clone();
        let at = |keyword: &str| format!("{here}/{}", pointer_token(keyword));
        // A target of `$ref` may sit where `no_inner_ids` does not look.
        if id != 0 {
            declares_no_id(map, self.draft4, &here)?;
        }
        for (keyword, value) in map {
            node.work += 1;
            node.errors += 1;
            match (keyword.as_str(), value) {
                ("$ref", Value::String(reference)) => {
                    let target = self.resolve(reference, &at(keyword))?;
                    let target = self.node(target, reference.clone());
                    node.in_place.push((target, false));
                }
                ("$dynamicRef" | "$recursiveRef", _) => {
                    return Err(refuse(
                        "local $ref",
                        format!(
                            "`{keyword}` at {here} is not supported: use `$ref` with a JSON \
                             pointer (`#/$defs/...`)"
                        ),
                    ));
                }
                ("allOf" | "anyOf" | "oneOf", Value::Array(branches)) => {
                    fan_out(keyword, branches.len(), MAX_BRANCHES, &here)?;
                    let copies = keyword != "allOf";
                    for (i, branch) in branches.iter().enumerate() {
                        let branch = self.node(branch, format!("{}/{i}", at(keyword)));
                        node.in_place.push((branch, copies));
                    }
                }
                ("not", _) => {
                    node.errors += data_weight(value);
                    let inner = self.node(value, at(keyword));
                    node.in_place.push((inner, false));
                }
                ("if" | "then" | "else", _) => {
                    let inner = self.node(value, at(keyword));
                    node.in_place.push((inner, false));
                }
                ("dependentSchemas" | "dependencies", Value::Object(entries)) => {
                    fan_out(keyword, entries.len(), MAX_BRANCHES, &here)?;
                    for (name, dependent) in entries {
                        if let Value::Array(names) = dependent {
                            node.work += names.len() as u64;
                            node.errors += names.len() as u64;
                        } else {
                            let location = format!("{}/{}", at(keyword), pointer_token(name));
                            let dependent = self.node(dependent, location);
                            node.in_place.push((dependent, false));
                        }
                    }
                }
                ("dependentRequired", Value::Object(entries)) => {
                    let names: usize = entries
                        .values()
                        .map(|names| names.as_array().map_or(0, Vec::len))
                        .sum();
                    node.work += names as u64;
                    node.errors += names as u64;
                }
                ("properties", Value::Object(entries)) => {
                    node.reads_keys = true;
                    node.work += entries.len() as u64;
                    for (name, property) in entries {
                        let location = format!("{}/{}", at(keyword), pointer_token(name));
                        let property = self.node(property, location);
                        node.properties.push((name.clone(), property));
                    }
                    node.properties.sort_by(|a, b| a.0.cmp(&b.0));
                }
                ("patternProperties", Value::Object(entries)) => {
                    fan_out(keyword, entries.len(), MAX_BRANCHES, &here)?;
                    node.reads_keys = true;
                    for (pattern, property) in entries {
                        let location = format!("{}/{}", at(keyword), pointer_token(pattern));
                        check_pattern(pattern, &location)?;
                        node.key_patterns += 1;
                        let property = self.node(property, location);
                        node.each_property.push(property);
                    }
                }
                ("additionalProperties", _) => {
                    node.reads_keys = true;
                    node.lists_keys = true;
                    node.additional = Some(self.node(value, at(keyword)));
                }
                ("unevaluatedProperties", _) => {
                    node.reads_keys = true;
                    node.lists_keys = true;
                    node.marks = true;
                    let inner = self.node(value, at(keyword));
                    node.each_property.push(inner);
                }
                ("propertyNames", _) => {
                    node.reads_keys = true;
                    node.names = Some(self.node(value, at(keyword)));
                }
                ("prefixItems" | "items", Value::Array(items)) => {
                    fan_out(keyword, items.len(), MAX_BRANCHES, &here)?;
                    for (i, item) in items.iter().enumerate() {
                        let item = self.node(item, format!("{}/{i}", at(keyword)));
                        node.prefix.push(item);
                    }
                }
                ("items" | "additionalItems" | "contains" | "unevaluatedItems", _) => {
                    node.marks |= keyword == "unevaluatedItems";
                    let inner = self.node(value, at(keyword));
                    node.each_item.push(inner);
                }
                ("enum", Value::Array(values)) => {
                    fan_out(keyword, values.len(), MAX_ENUM, &here)?;
                    node.work += data_weight(value);
                }
                ("const", _) => node.work += data_weight(value),
                ("required", Value::Array(names)) => {
                    node.work += names.len() as u64;
                    node.errors += names.len() as u64;
                }
                ("pattern", Value::String(pattern)) => {
                    check_pattern(pattern, &at(keyword))?;
                    node.reads_strings = true;
                    node.errors += 1 + pattern.len() as u64 / STRING_BYTES_PER_STEP;
                }
                (
                    "format" | "minLength" | "maxLength" | "contentEncoding" | "contentMediaType",
                    _,
                ) => node.reads_strings = true,
                ("uniqueItems", Value::Bool(true)) => node.unique_items = true,
                _ => {}
            }
        }
        Ok(node)
    }

    /// The schema a local `$ref` points to.
    fn resolve(&self, reference: &str, location: &str) -> Result<&'s Value, SchemaError> {
        let not_local = || {
            refuse(
                "local $ref",
                format!(
                    "`$ref` {reference:?} at {location} is not a JSON pointer into this \
                     schema (`#` or `#/...`): remote, file and anchor references are not \
                     resolved"
                ),
            )
        };
        let fragment = reference.strip_prefix('#').ok_or_else(not_local)?;
        if !(fragment.is_empty() || fragment.starts_with('/')) {
            return Err(not_local());
        }
        let pointer = percent_decode(fragment).ok_or_else(not_local)?;
        self.root.pointer(&pointer).ok_or_else(|| {
            refuse(
                "local $ref",
                format!("`$ref` {reference:?} at {location} points to nothing in this schema"),
            )
        })
    }
}

/// Refuses a keyword with more than `limit` entries.
fn fan_out(keyword: &str, count: usize, limit: usize, location: &str) -> Result<(), SchemaError> {
    if count > limit {
        return Err(refuse(
            "fan-out",
            format!("`{keyword}` at {location} has {count} entries; the limit is {limit}"),
        ));
    }
    Ok(())
}

/// Refuses a pattern the linear-time engine cannot run, saying why.
fn check_pattern(pattern: &str, location: &str) -> Result<(), SchemaError> {
    let Ok(translated) = jsonschema_regex::to_rust_regex(pattern) else {
        return Err(refuse(
            "pattern",
            format!("{pattern:?} at {location} is not an ECMA-262 regular expression"),
        ));
    };
    let error = match regex::RegexBuilder::new(&translated)
        .size_limit(MAX_PATTERN_SIZE)
        .build()
    {
        Ok(_) => return Ok(()),
        Err(regex::Error::CompiledTooBig(_)) => {
            format!("compiles to more than the {MAX_PATTERN_SIZE} byte limit")
        }
        Err(e) => {
            // The last line of a syntax error says what is unsupported or wrong.
            let reason = e.to_string();
            let reason = reason.lines().last().unwrap_or_default();
            let reason = reason.trim_start_matches("error: ");
            format!(
                "cannot run on the linear-time engine that patterns use: {reason} \
                 (backreferences and look-around need backtracking)"
            )
        }
    };
    Err(refuse(
        "pattern",
        format!(
            "{} at {location} {error}",
            floom_runtime::text::cut(format!("{pattern:?}"), 200)
        ),
    ))
}

/// Decodes `%XX` escapes of a URI fragment; `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Steps to compare a value with `data` (a schema's `enum` or `const`): one per JSON
/// value, and one per [`STRING_BYTES_PER_STEP`] bytes of its strings.
fn data_weight(data: &Value) -> u64 {
    match data {
        Value::String(s) => 1 + s.len() as u64 / STRING_BYTES_PER_STEP,
        Value::Array(items) => 1 + items.iter().map(data_weight).sum::<u64>(),
        Value::Object(map) => {
            1 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 / STRING_BYTES_PER_STEP + data_weight(v))
                .sum::<u64>()
        }
        _ => 1,
    }
}

impl Plan {
    /// Refuses in-place cycles, chains deeper than [`MAX_IN_PLACE_DEPTH`] and schemas
    /// evaluating one value more than [`MAX_IN_PLACE`] times; records each node's height.
    fn check_in_place(&mut self, locations: &[String]) -> Result<(), SchemaError> {
        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let count = self.nodes.len();
        let mut state = vec![NEW; count];
        let mut expansion = vec![0u64; count];
        for start in 0..count {
            if state[start] != NEW {
                continue;
            }
            // Depth-first, by hand: a chain can be as long as the schema has nodes.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = OPEN;
            while let Some(&(node, next)) = stack.last() {
                if let Some(&(child, _)) = self.nodes[node].in_place.get(next) {
                    let top = stack.len() - 1;
                    stack[top].1 += 1;
                    let child = child as usize;
                    match state[child] {
                        NEW => {
                            state[child] = OPEN;
                            stack.push((child, 0));
                        }
                        OPEN => {
                            let from = stack.iter().position(|&(n, _)| n == child).unwrap_or(0);
                            let cycle: Vec<&str> = stack[from..]
                                .iter()
                                .map(|&(n, _)| locations[n].as_str())
                                .chain([locations[child].as_str()])
                                .collect();
                            return Err(refuse(
                                "in-place expansion",
                                format!(
                                    "these schemas apply to the same value in a cycle, which \
                                     never ends: {}",
                                    cycle.join(" → ")
                                ),
                            ));
                        }
                        _ => {}
                    }
                    continue;
                }
                let edges = &self.nodes[node].in_place;
                let total = edges.iter().fold(1u64, |sum, &(c, _)| {
                    sum.saturating_add(expansion[c as usize])
                });
                let height = 1 + edges
                    .iter()
                    .map(|&(c, _)| self.nodes[c as usize].height)
                    .max()
                    .unwrap_or(0);
                if total > MAX_IN_PLACE {
                    return Err(refuse(
                        "in-place expansion",
                        format!(
                            "one value would be evaluated by {} schemas through `$ref`, \
                             combinators and conditionals, from {}; the limit is {MAX_IN_PLACE}",
                            if total == u64::MAX {
                                "too many".to_owned()
                            } else {
                                total.to_string()
                            },
                            locations[node]
                        ),
                    ));
                }
                if height > MAX_IN_PLACE_DEPTH {
                    return Err(refuse(
                        "in-place depth",
                        format!(
                            "`$ref`, combinators and conditionals nest {height} deep on one \
                             value from {}; the limit is {MAX_IN_PLACE_DEPTH}",
                            locations[node]
                        ),
                    ));
                }
                expansion[node] = total;
                self.nodes[node].height = height;
                state[node] = DONE;
                stack.pop();
            }
        }
        Ok(())
    }

    /// Walks `instance` along the plan, counting what validating it costs; stops at the
    /// first budget passed (`work` steps, `depth` nested evaluations).
    fn estimate(&self, instance: &Value, work: u64, depth: u32) -> Result<Estimate, Rejection> {
        let mut walk = Walk {
            plan: self,
            work: 0,
            errors: 0,
            listable: true,
            budget: work,
            max_depth: depth,
        };
        walk.visit(0, Instance::Value(instance), 1, false, 0)?;
        Ok(Estimate {
            listable: walk.listable,
        })
    }
}

/// What [`Plan::estimate`] found within the budgets.
struct Estimate {
    /// Whether listing the errors fits [`ERROR_BUDGET`].
    listable: bool,
}

/// A value a schema applies to: part of the inputs, or an object's key (`propertyNames`).
#[derive(Clone, Copy)]
enum Instance<'v> {
    Value(&'v Value),
    Key(&'v String),
}

/// The state of one [`Plan::estimate`].
struct Walk<'p> {
    plan: &'p Plan,
    work: u64,
    errors: u64,
    listable: bool,
    budget: u64,
    max_depth: u32,
}

impl Walk<'_> {
    /// Counts node `id` evaluating `instance` `times` times (a multiplier from
    /// `unevaluated*` re-evaluations), `copied` when its errors are kept as copies, at
    /// evaluation depth `depth`; then what it applies.
    fn visit(
        &mut self,
        id: u32,
        instance: Instance<'_>,
        times: u64,
        copied: bool,
        depth: u32,
    ) -> Result<(), Rejection> {
        if depth > self.max_depth {
            return Err(Rejection::TooDeep);
        }
        let plan = self.plan;
        let node = &plan.nodes[id as usize];
        let mut work = node.work;
        let mut errors = node.errors;
        match instance {
            Instance::Key(text) | Instance::Value(Value::String(text)) if node.reads_strings => {
                work += text.len() as u64 / STRING_BYTES_PER_STEP;
            }
            Instance::Value(Value::Object(map)) if node.reads_keys => {
                let keys = map.len() as u64;
                let key_bytes: u64 = map.keys().map(|k| k.len() as u64).sum();
                let key_steps = keys + key_bytes / STRING_BYTES_PER_STEP;
                work = work
                    .saturating_add(keys)
                    .saturating_add(node.key_patterns.saturating_mul(key_steps));
                if node.lists_keys {
                    errors += key_steps;
                }
            }
            Instance::Value(array @ Value::Array(_)) if node.unique_items => {
                // Hashing reads every value of every item.
                let room = self.budget.saturating_sub(self.work) / times.max(1);
                work = work.saturating_add(count_values(array, room));
            }
            _ => {}
        }
        self.charge(times, work)?;
        if self.listable {
            if copied {
                let room = ERROR_BUDGET.saturating_sub(self.errors) / times.max(1);
                errors = errors.saturating_add(match instance {
                    Instance::Key(text) => 1 + text.len() as u64 / STRING_BYTES_PER_STEP,
                    Instance::Value(value) => count_values(value, room),
                });
            }
            self.errors = self.errors.saturating_add(times.saturating_mul(errors));
            self.listable = self.errors <= ERROR_BUDGET;
        }

        // `unevaluated*` evaluates the in-place schemas again for each level below it to
        // learn what they evaluated, and its own schema once more.
        let (in_place_times, child_times) = if node.marks {
            (
                times.saturating_mul(u64::from(node.height) + 2),
                times.saturating_mul(2),
            )
        } else {
            (times, times)
        };
        for &(inner, copies) in &node.in_place {
            self.visit(inner, instance, in_place_times, copied || copies, depth + 1)?;
        }
        let Instance::Value(value) = instance else {
            return Ok(());
        };
        match value {
            Value::Object(map) if node.reads_keys => {
                // `reads_keys` charged going through the keys.
                for (key, property) in map {
                    let named = node
                        .properties
                        .binary_search_by(|(name, _)| name.as_str().cmp(key))
                        .ok()
                        .map(|i| node.properties[i].1);
                    let child = Instance::Value(property);
                    for schema in named
                        .or(node.additional)
                        .into_iter()
                        .chain(node.each_property.iter().copied())
                    {
                        self.visit(schema, child, child_times, copied, depth + 1)?;
                    }
                    if let Some(names) = node.names {
                        // Its errors are kept as copies of the key.
                        self.visit(names, Instance::Key(key), child_times, true, depth + 1)?;
                    }
                }
            }
            Value::Array(items) if !(node.prefix.is_empty() && node.each_item.is_empty()) => {
                // Each item taken is charged by its visit.
                let taken = if node.each_item.is_empty() {
                    node.prefix.len()
                } else {
                    items.len()
                };
                for (i, item) in items.iter().take(taken).enumerate() {
                    let child = Instance::Value(item);
                    for schema in node
                        .prefix
                        .get(i)
                        .copied()
                        .into_iter()
                        .chain(node.each_item.iter().copied())
                    {
                        self.visit(schema, child, child_times, copied, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn charge(&mut self, times: u64, work: u64) -> Result<(), Rejection> {
        self.work = self.work.saturating_add(times.saturating_mul(work));
        if self.work > self.budget {
            return Err(Rejection::TooCostly);
        }
        Ok(())
    }
}

/// The JSON values in `value` (strings count per [`STRING_BYTES_PER_STEP`] bytes),
/// counting no further than just past `limit`.
fn count_values(value: &Value, limit: u64) -> u64 {
    let mut count = 0u64;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        count += 1;
        if count > limit {
            break;
        }
        match value {
            Value::String(s) => count += s.len() as u64 / STRING_BYTES_PER_STEP,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    count += key.len() as u64 / STRING_BYTES_PER_STEP;
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    count
}

/// Threads that run validations, so that their CPU time (up to about a second each, by
/// the budgets) and their deep recursion stay off the HTTP runtime.
pub struct ValidationPool {
    threads: rayon::ThreadPool,
    /// One per thread: a request waits for one before its job is queued, at most
    /// [`QUEUE_WAIT`], so a burst queues in bounded time.
    permits: Arc<Semaphore>,
}

impl ValidationPool {
    /// A pool of `threads` threads (at least one), each running `on_start` first (the
    /// server lowers their CPU priority there).
    pub fn new(
        threads: usize,
        on_start: impl Fn() + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .stack_size(VALIDATION_STACK)
            .thread_name(|i| format!("floom-validate-{i}"))
            .start_handler(move |_| on_start())
            .build()?;
        Ok(ValidationPool {
            threads: pool,
            permits: Arc::new(Semaphore::new(threads)),
        })
    }

    /// Validates `inputs` against `schema` on a pool thread; gives `inputs` back when they
    /// are valid.
    pub async fn validate(&self, schema: Arc<Schema>, inputs: Value) -> Result<Value, Rejection> {
        if schema.quick_check(&inputs).is_some() {
            return Ok(inputs);
        }
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Rejection::Busy)?
            .map_err(|_| Rejection::Failed("the validation pool is closed"))?;
        let (done, outcome) = oneshot::channel();
        self.threads.spawn(move || {
            let result =
                match std::panic::catch_unwind(AssertUnwindSafe(|| schema.validate(&inputs))) {
                    Ok(Ok(())) => Ok(inputs),
                    // Refused inputs are freed here, not on the HTTP runtime.
                    Ok(Err(rejection)) => Err(rejection),
                    Err(_) => Err(Rejection::Failed("the validator panicked")),
                };
            // The thread is free for the next request even if this one stopped waiting.
            drop(permit);
            let _ = done.send(result);
        });
        match tokio::time::timeout(TIME_LIMIT, outcome).await {
            Err(_) => Err(Rejection::TimedOut),
            Ok(Err(_)) => Err(Rejection::Failed("the validation thread stopped")),
            Ok(Ok(result)) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(schema: Value) -> (&'static str, String) {
        match Schema::compile(&schema) {
            Err(SchemaError::Refused { rule, detail }) => (rule, detail),
            Err(e) => panic!("not refused by a rule: {e}"),
            Ok(_) => panic!("accepted: {schema}"),
        }
    }

    /// `$defs` d0..d{depth}, each `anyOf` twice the next: 2^depth evaluations of a value.
    fn any_of_chain(depth: usize) -> Value {
        let mut defs = Map::new();
        for i in 0..depth {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert(format!("d{depth}"), json!({"type": "number"}));
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    }

    #[test]
    fn real_schemas_compile_and_validate() {
        let schema = Schema::compile(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["repo"],
            "properties": {
                "repo": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "uniqueItems": true},
                "mode": {"enum": ["fast", "slow"]},
                "child": {"$ref": "#"},
            },
            "additionalProperties": false,
            "$defs": {"tag": {"type": "string", "maxLength": 20}},
        }))
        .unwrap();
        assert!(
            schema
                .validate(&json!({"repo": "a/b", "tags": ["x"], "child": {"repo": "c/d"}}))
                .is_ok()
        );
        let Err(Rejection::Invalid { problems, omitted }) =
            schema.validate(&json!({"repo": "nope", "mode": "other"}))
        else {
            panic!("valid")
        };
        let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["/mode", "/repo"]);
        assert_eq!(omitted, 0);
        // Older drafts still work, with their meta-schemas built in (nothing is fetched).
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"n": {"type": "integer"}}, "items": [{"$ref": "#/definitions/n"}]});
        assert!(
            Schema::compile(&draft7)
                .unwrap()
                .validate(&json!([1]))
                .is_ok()
        );
    }

    #[test]
    fn a_doubling_any_of_chain_is_refused_by_in_place_expansion() {
        // Each level is two `$ref` nodes and their targets: 2^(levels + 2) in all.
        assert!(Schema::compile(&any_of_chain(7)).is_ok());
        let (rule, detail) = refused(any_of_chain(20));
        assert_eq!(rule, "in-place expansion", "{detail}");
        assert!(detail.contains("the limit is 1024"), "{detail}");
    }

    #[test]
    fn an_in_place_cycle_is_refused_but_recursion_through_properties_is_not() {
        let (rule, detail) = refused(json!({
            "$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"$ref": "#/$defs/a"}},
            "$ref": "#/$defs/a",
        }));
        assert_eq!(rule, "in-place expansion");
        assert!(detail.contains("cycle"), "{detail}");
        let tree = json!({"$defs": {"t": {"properties": {"kids": {"items": {"$ref": "#/$defs/t"}}}}},
            "$ref": "#/$defs/t"});
        assert!(Schema::compile(&tree).is_ok());
    }

    #[test]
    fn a_long_in_place_chain_is_refused_by_in_place_depth() {
        let mut defs = Map::new();
        for i in 0..40 {
            defs.insert(
                format!("c{i}"),
                json!({"$ref": format!("#/$defs/c{}", i + 1)}),
            );
        }
        defs.insert("c40".to_owned(), json!({"type": "string"}));
        let (rule, _) = refused(json!({"$defs": defs, "$ref": "#/$defs/c0"}));
        assert_eq!(rule, "in-place depth");
    }

    #[test]
    fn patterns_that_need_backtracking_are_refused() {
        for pattern in [r"^(a|a)+\1$", "^(?=a)a$", "(?<!x)y"] {
            let (rule, detail) = refused(json!({"properties": {"x": {"pattern": pattern}}}));
            assert_eq!(rule, "pattern");
            assert!(
                detail.contains("backreferences and look-around"),
                "{detail}"
            );
            assert!(detail.contains("#/properties/x/pattern"), "{detail}");
        }
        let (rule, _) = refused(json!({"patternProperties": {r"(.)\1": {}}}));
        assert_eq!(rule, "pattern");
        let (rule, detail) = refused(json!({"pattern": "a{1000}{1000}"}));
        assert_eq!(rule, "pattern");
        assert!(detail.contains("byte limit"), "{detail}");
        assert!(Schema::compile(&json!({"pattern": r"^\d{3}-[a-z]+$"})).is_ok());
    }

    #[test]
    fn only_local_json_pointers_are_followed() {
        for reference in [
            "https://example.com/s.json",
            "other.json#/a",
            "#anchor",
            "file:///etc/passwd",
        ] {
            let (rule, detail) =
                refused(json!({"$ref": reference, "$defs": {"a": {"$anchor": "anchor"}}}));
            assert_eq!(rule, "local $ref", "{reference}");
            assert!(
                detail.contains("not a JSON pointer into this schema"),
                "{detail}"
            );
        }
        let (_, detail) = refused(json!({"$ref": "#/$defs/missing"}));
        assert!(detail.contains("points to nothing"), "{detail}");
        let (rule, _) = refused(json!({"$dynamicRef": "#meta"}));
        assert_eq!(rule, "local $ref");
        let (rule, _) = refused(json!({"$defs": {"x": {"$id": "urn:x", "type": "string"}}}));
        assert_eq!(rule, "local $ref");
        // Percent-escapes and `~1` in a pointer are decoded as the validator does.
        let escaped = json!({"$defs": {"a b/c": {"type": "string"}}, "$ref": "#/$defs/a%20b~1c"});
        assert!(
            Schema::compile(&escaped)
                .unwrap()
                .validate(&json!("x"))
                .is_ok()
        );
        // `$id` at the root is fine, and a property merely named `$id` is not an id.
        assert!(
            Schema::compile(&json!({"$id": "https://example.com/s",
            "properties": {"$id": {"type": "string"}}}))
            .is_ok()
        );
    }

    #[test]
    fn size_depth_and_fan_out_are_bounded() {
        let mut deep = json!({"type": "string"});
        for _ in 0..20 {
            deep = json!({"properties": {"x": deep}});
        }
        assert_eq!(refused(deep).0, "depth");
        assert_eq!(
            refused(json!({"enum": vec![0; MAX_SCHEMA_VALUES]})).0,
            "size"
        );
        assert_eq!(
            refused(json!({"enum": ["x".repeat(MAX_SCHEMA_BYTES)]})).0,
            "size"
        );
        let (rule, detail) = refused(json!({"anyOf": vec![json!({}); MAX_BRANCHES + 1]}));
        assert_eq!(rule, "fan-out");
        assert!(detail.contains("`anyOf` at #"), "{detail}");
        assert_eq!(
            refused(json!({"enum": (0..=MAX_ENUM).collect::<Vec<_>>()})).0,
            "fan-out"
        );
        assert!(Schema::compile(&json!({"enum": (0..MAX_ENUM).collect::<Vec<_>>()})).is_ok());
    }

    #[tokio::test]
    async fn costly_inputs_are_refused_before_validating() {
        // Each level of array nesting doubles the evaluations: fine for a real input,
        // exponential for a deep one.
        let schema = Schema::compile(&json!({"$defs": {"t": {"type": ["array", "number"],
            "items": {"anyOf": [{"$ref": "#/$defs/t"}, {"$ref": "#/$defs/t"}]}}},
            "$ref": "#/$defs/t"}))
        .unwrap();
        assert!(schema.validate(&json!([[1, 2], [3]])).is_ok());
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = Value::Array(vec![deep]);
        }
        let started = std::time::Instant::now();
        assert!(matches!(schema.validate(&deep), Err(Rejection::TooCostly)));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        // Too deep for the validator's stack: refused by counting, not by overflowing (on
        // a pool thread, as the walk recurses too).
        let schema = Arc::new(Schema::compile(&json!({"items": {"$ref": "#"}})).unwrap());
        let mut deep = json!(1);
        for _ in 0..3_000 {
            deep = Value::Array(vec![deep]);
        }
        let pool = ValidationPool::new(1, || {}).unwrap();
        assert!(matches!(
            pool.validate(schema, deep).await,
            Err(Rejection::TooDeep)
        ));
    }

    #[test]
    fn errors_are_capped_in_number_and_length() {
        let schema = Schema::compile(&json!({"properties": {"xs": {"items": {"type": "string"}},
            "n": {"type": "number"}}}))
        .unwrap();
        let Err(Rejection::Invalid { problems, omitted }) =
            schema.validate(&json!({"xs": vec![0; 520_000]}))
        else {
            panic!("valid")
        };
        assert_eq!(problems.len(), MAX_LISTED_ERRORS);
        assert_eq!(omitted, 520_000 - MAX_LISTED_ERRORS as u64);

        // A long value is not quoted; a long key is cut in the path.
        let long = "x".repeat(1 << 20);
        let Err(Rejection::Invalid { problems, .. }) = schema.validate(&json!({"n": long})) else {
            panic!("valid")
        };
        assert!(problems[0].message.len() < 100, "{}", problems[0].message);
        let strict = Schema::compile(&json!({"additionalProperties": {"type": "number"}})).unwrap();
        let Err(Rejection::Invalid { problems, .. }) =
            strict.validate(&json!({ long.clone(): "x" }))
        else {
            panic!("valid")
        };
        assert!(problems[0].path.len() <= MAX_MESSAGE_BYTES);
        assert!(problems[0].path.ends_with(floom_runtime::text::CUT_MARK));
    }

    #[test]
    fn too_many_errors_to_list_is_still_invalid() {
        let schema = Schema::compile(&json!({"items": {"type": "string", "minLength": 1,
            "maxLength": 9, "pattern": "^a", "format": "email"}}))
        .unwrap();
        assert!(matches!(
            schema.validate(&json!(vec![0; 200_000])),
            Err(Rejection::Unlisted)
        ));
        assert!(schema.validate(&json!(vec!["ab"; 200_000])).is_ok());
    }

    #[tokio::test]
    async fn the_pool_validates_and_gives_the_inputs_back() {
        let pool = ValidationPool::new(1, || {}).unwrap();
        let schema = Arc::new(Schema::compile(&json!({"type": "object"})).unwrap());
        let inputs = pool
            .validate(schema.clone(), json!({"a": 1}))
            .await
            .unwrap();
        assert_eq!(inputs, json!({"a": 1}));
        assert!(matches!(
            pool.validate(schema, json!(1)).await,
            Err(Rejection::Invalid { .. })
        ));
    }
}
