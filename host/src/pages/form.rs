//! An action's `input_schema` as a form: a tree of [`Field`]s, one per property, that
//! `field.html` renders and `floom.js` reads back into the inputs object.
//!
//! Each field carries the schema's own limits (lengths, bounds, pattern, item counts) as
//! data the script checks before sending; the server still validates, and its `errors`
//! paths land on the fields by JSON Pointer. What the form cannot express (`oneOf`, a
//! tuple, a map of free keys, a schema nested past [`MAX_DEPTH`]) becomes a JSON text
//! field, so every schema gets a form that can send any valid input.

use askama::Template;
use serde_json::{Map, Value};

/// Deepest nesting of objects and arrays drawn as fields; deeper values are JSON text.
pub const MAX_DEPTH: usize = 6;
/// Most fields one form draws: a schema of a few KiB can fan out (a `$ref` used in many
/// places), and the page must stay small; past this, values are JSON text.
pub const MAX_FIELDS: usize = 300;
/// Strings allowed at most this long (`maxLength`) get a one-line input; longer or
/// unbounded ones a textarea.
pub const SHORT_TEXT: u64 = 200;
/// Most `$ref` hops followed to find one field's schema.
const MAX_REFS: usize = 8;

/// One input of the form.
#[derive(Debug, Clone, Template)]
#[template(path = "field.html")]
pub struct Field {
    /// The DOM id of its control (and the prefix of its help and error ids).
    pub id: String,
    /// The property name; empty for the whole input and for array items.
    pub name: String,
    /// What the label says: the schema's `title`, else the property name.
    pub label: String,
    /// The schema's `description`.
    pub help: Option<String>,
    /// The limits in words ("at most 100 characters").
    pub hints: Vec<String>,
    /// Whether the parent object requires it.
    pub required: bool,
    /// How it is entered.
    pub kind: Kind,
}

/// How a field is entered, with the limits its script checks.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A string: a one-line input, or a textarea when `multiline`.
    Text {
        /// A textarea.
        multiline: bool,
        /// The filled-in value.
        value: String,
        /// `minLength`.
        min_length: Option<u64>,
        /// `maxLength`.
        max_length: Option<u64>,
        /// `pattern`.
        pattern: Option<String>,
    },
    /// A number or an integer.
    Number {
        /// Whole numbers only.
        integer: bool,
        /// The filled-in value.
        value: String,
        /// `minimum`.
        minimum: Option<String>,
        /// `maximum`.
        maximum: Option<String>,
        /// `exclusiveMinimum`.
        exclusive_minimum: Option<String>,
        /// `exclusiveMaximum`.
        exclusive_maximum: Option<String>,
        /// `multipleOf`.
        multiple_of: Option<String>,
    },
    /// A boolean: a checkbox.
    Boolean {
        /// Checked at first.
        checked: bool,
    },
    /// One of the `enum` values: a select.
    Choice {
        /// The values.
        options: Vec<Choice>,
    },
    /// An object: a group of fields.
    Object {
        /// Its properties, in the schema's order.
        fields: Vec<Field>,
    },
    /// A list: items that can be added and removed.
    Array {
        /// What a new item looks like (its ids hold [`ITEM`], replaced when added).
        template: Box<Field>,
        /// What the button that adds one says.
        add: String,
        /// The items filled in at first.
        items: Vec<Field>,
        /// `minItems`.
        min_items: Option<u64>,
        /// `maxItems`.
        max_items: Option<u64>,
    },
    /// A file (SPEC section 10): a property of the top-level object with `"format":
    /// "binary"` or a `contentMediaType`, sent as a part of a multipart request.
    File {
        /// What the file picker offers first: the `contentMediaType`.
        accept: Option<String>,
    },
    /// Any JSON value, typed as text.
    Json {
        /// The filled-in value, pretty JSON.
        value: String,
    },
}

/// One value of a select.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The value as JSON text (what the script sends, parsed).
    pub json: String,
    /// What the option says.
    pub label: String,
    /// Selected at first.
    pub selected: bool,
}

/// The placeholder in a new item's ids, replaced by a fresh number when it is added.
pub const ITEM: &str = "__item__";

impl Field {
    /// The field's kind as the script knows it (`data-kind`).
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Text { .. } => "text",
            Kind::Number { integer: true, .. } => "integer",
            Kind::Number { .. } => "number",
            Kind::Boolean { .. } => "boolean",
            Kind::Choice { .. } => "choice",
            Kind::Object { .. } => "object",
            Kind::Array { .. } => "array",
            Kind::File { .. } => "file",
            Kind::Json { .. } => "json",
        }
    }

    /// The ids that describe the control: its help (when any) and its error slot.
    pub fn described_by(&self) -> String {
        if self.help.is_some() || !self.hints.is_empty() {
            format!("{0}-help {0}-error", self.id)
        } else {
            format!("{}-error", self.id)
        }
    }
}

/// The form of one action: its fields, or one JSON field for the whole input when the
/// schema is not an object with properties. `prefix` makes the ids unique on the page.
pub fn form(schema: Option<&Value>, prefix: &str) -> Field {
    let empty = Value::Object(Map::new());
    let root = schema.unwrap_or(&empty);
    let mut builder = Builder {
        root,
        fields: 0,
        next_id: 0,
        prefix: prefix.to_owned(),
    };
    let resolved = builder.resolve(root);
    let seed = resolved
        .get("default")
        .or_else(|| first_example(resolved))
        .cloned();
    if resolved.get("properties").is_some_and(Value::is_object) {
        builder.object("", "Inputs".to_owned(), resolved, seed.as_ref(), true, 0)
    } else {
        let id = builder.id();
        Field {
            id,
            name: String::new(),
            label: "Inputs (JSON object)".to_owned(),
            help: Some("The inputs as a JSON object, such as {\"text\": \"...\"}".to_owned()),
            hints: Vec::new(),
            required: true,
            kind: Kind::Json {
                value: pretty(seed.as_ref().unwrap_or(&empty)),
            },
        }
    }
}

struct Builder<'a> {
    root: &'a Value,
    fields: usize,
    next_id: usize,
    prefix: String,
}

impl<'a> Builder<'a> {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.prefix, self.next_id)
    }

    /// Follows local `$ref`s (`#` or `#/json/pointer`) to the schema that says what the
    /// value is; a broken or endless chain stops where it is.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..MAX_REFS {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(target) = reference
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(&percent_decode(pointer)))
            else {
                break;
            };
            schema = target;
        }
        schema
    }

    /// The field for property `name` (or an item, when `name` is empty).
    fn field(
        &mut self,
        name: &str,
        schema: &'a Value,
        seed: Option<&Value>,
        required: bool,
        depth: usize,
    ) -> Field {
        self.fields += 1;
        let schema = self.resolve(schema);
        let label = schema
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| humanize(name));
        let seed = seed
            .or_else(|| schema.get("default"))
            .or_else(|| first_example(schema))
            .cloned();
        let too_much = depth > MAX_DEPTH || self.fields > MAX_FIELDS;
        let types = types(schema);
        // Only the top-level properties take uploads (the server puts a file's path
        // there); a deeper one stays what its type says.
        let file = depth == 1 && crate::runs::is_file_property(schema);
        let choice = schema.get("enum").is_some() || schema.get("const").is_some();
        let mut field = match types.as_deref() {
            _ if file => self.file(name, label, schema, required),
            _ if too_much => self.json(name, label, seed.as_ref(), required),
            _ if choice => self.choice(name, label, schema, seed.as_ref(), required),
            Some("string") => self.text(name, label, schema, seed.as_ref(), required),
            Some(kind @ ("number" | "integer")) => self.number(
                name,
                label,
                schema,
                seed.as_ref(),
                required,
                kind == "integer",
            ),
            Some("boolean") => Field {
                id: self.id(),
                name: name.to_owned(),
                label,
                help: None,
                hints: Vec::new(),
                required,
                kind: Kind::Boolean {
                    checked: seed.as_ref().and_then(Value::as_bool).unwrap_or(false),
                },
            },
            Some("object") if schema.get("properties").is_some_and(Value::is_object) => {
                self.object(name, label, schema, seed.as_ref(), required, depth)
            }
            Some("array") if schema.get("items").is_some_and(Value::is_object) => {
                self.array(name, label, schema, seed.as_ref(), required, depth)
            }
            _ => self.json(name, label, seed.as_ref(), required),
        };
        field.help = schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        field
    }

    fn file(&mut self, name: &str, label: String, schema: &Value, required: bool) -> Field {
        let accept = schema
            .get("contentMediaType")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let hints = match &accept {
            Some(media_type) => vec![format!("a file ({media_type})")],
            None => vec!["a file".to_owned()],
        };
        Field {
            id: self.id(),
            name: name.to_owned(),
            label,
            help: None,
            hints,
            required,
            kind: Kind::File { accept },
        }
    }

    fn text(
        &mut self,
        name: &str,
        label: String,
        schema: &Value,
        seed: Option<&Value>,
        required: bool,
    ) -> Field {
        let min_length = schema.get("minLength").and_then(Value::as_u64);
        let max_length = schema.get("maxLength").and_then(Value::as_u64);
        let pattern = schema
            .get("pattern")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut hints = Vec::new();
        match (min_length, max_length) {
            (Some(min), Some(max)) => hints.push(format!("{min} to {max} characters")),
            (Some(min), None) => hints.push(format!("at least {min} {}", plural(min, "character"))),
            (None, Some(max)) => hints.push(format!("at most {max} {}", plural(max, "character"))),
            (None, None) => {}
        }
        if let Some(pattern) = &pattern {
            hints.push(format!("matches {pattern}"));
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str) {
            hints.push(format!("format: {format}"));
        }
        Field {
            id: self.id(),
            name: name.to_owned(),
            label,
            help: None,
            hints,
            required,
            kind: Kind::Text {
                multiline: max_length.is_none_or(|max| max > SHORT_TEXT),
                value: match seed {
                    Some(Value::String(text)) => text.clone(),
                    _ => String::new(),
                },
                min_length,
                max_length,
                pattern,
            },
        }
    }

    fn number(
        &mut self,
        name: &str,
        label: String,
        schema: &Value,
        seed: Option<&Value>,
        required: bool,
        integer: bool,
    ) -> Field {
        let bound = |key: &str| {
            schema
                .get(key)
                .filter(|v| v.is_number())
                .map(Value::to_string)
        };
        let minimum = bound("minimum");
        let maximum = bound("maximum");
        let exclusive_minimum = bound("exclusiveMinimum");
        let exclusive_maximum = bound("exclusiveMaximum");
        let multiple_of = bound("multipleOf");
        let mut hints = Vec::new();
        if integer {
            hints.push("a whole number".to_owned());
        }
        match (&minimum, &maximum) {
            (Some(min), Some(max)) => hints.push(format!("from {min} to {max}")),
            (Some(min), None) => hints.push(format!("at least {min}")),
            (None, Some(max)) => hints.push(format!("at most {max}")),
            (None, None) => {}
        }
        if let Some(min) = &exclusive_minimum {
            hints.push(format!("more than {min}"));
        }
        if let Some(max) = &exclusive_maximum {
            hints.push(format!("less than {max}"));
        }
        if let Some(step) = &multiple_of {
            hints.push(format!("a multiple of {step}"));
        }
        Field {
            id: self.id(),
            name: name.to_owned(),
            label,
            help: None,
            hints,
            required,
            kind: Kind::Number {
                integer,
                value: seed
                    .filter(|v| v.is_number())
                    .map(Value::to_string)
                    .unwrap_or_default(),
                minimum,
                maximum,
                exclusive_minimum,
                exclusive_maximum,
                multiple_of,
            },
        }
    }

    fn choice(
        &mut self,
        name: &str,
        label: String,
        schema: &Value,
        seed: Option<&Value>,
        required: bool,
    ) -> Field {
        let values: Vec<&Value> = match (schema.get("enum"), schema.get("const")) {
            (Some(Value::Array(values)), _) => values.iter().collect(),
            (_, Some(value)) => vec![value],
            _ => Vec::new(),
        };
        let options = values
            .into_iter()
            .map(|value| Choice {
                json: value.to_string(),
                label: match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                },
                selected: seed == Some(value),
            })
            .collect();
        Field {
            id: self.id(),
            name: name.to_owned(),
            label,
            help: None,
            hints: Vec::new(),
            required,
            kind: Kind::Choice { options },
        }
    }

    fn object(
        &mut self,
        name: &str,
        label: String,
        schema: &'a Value,
        seed: Option<&Value>,
        required: bool,
        depth: usize,
    ) -> Field {
        let id = self.id();
        let needed: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .map(|(key, property)| {
                        let seed = seed.and_then(|s| s.get(key));
                        self.field(
                            key,
                            property,
                            seed,
                            needed.contains(&key.as_str()),
                            depth + 1,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Field {
            id,
            name: name.to_owned(),
            label,
            help: None,
            hints: Vec::new(),
            required,
            kind: Kind::Object { fields },
        }
    }

    fn array(
        &mut self,
        name: &str,
        label: String,
        schema: &'a Value,
        seed: Option<&Value>,
        required: bool,
        depth: usize,
    ) -> Field {
        let id = self.id();
        let items_schema = &schema["items"];
        let min_items = schema.get("minItems").and_then(Value::as_u64);
        let max_items = schema.get("maxItems").and_then(Value::as_u64);
        let item_title = items_schema.get("title").and_then(Value::as_str);
        let item_label = item_title
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{label} item"));
        let add = match item_title {
            Some(title) => format!("Add {title}"),
            None => format!("Add to {label}"),
        };
        // The template's ids hold the placeholder, replaced when the item is added.
        let saved = std::mem::replace(&mut self.prefix, format!("{id}-{ITEM}"));
        let saved_next = std::mem::take(&mut self.next_id);
        let mut template = self.field("", items_schema, None, true, depth + 1);
        template.label = item_label.clone();
        self.prefix = format!("{id}-i");
        let filled: Vec<Value> = match seed {
            Some(Value::Array(values)) => values.iter().take(MAX_FIELDS).cloned().collect(),
            // Room for the items the schema asks for at least, to be filled in.
            _ => vec![Value::Null; min_items.unwrap_or(0).min(10) as usize],
        };
        let items = filled
            .iter()
            .map(|value| {
                let seed = (!value.is_null()).then_some(value);
                let mut item = self.field("", items_schema, seed, true, depth + 1);
                item.label = item_label.clone();
                item
            })
            .collect();
        self.prefix = saved;
        self.next_id = saved_next;
        let mut hints = Vec::new();
        match (min_items, max_items) {
            (Some(min), Some(max)) => hints.push(format!("{min} to {max} items")),
            (Some(min), None) => hints.push(format!("at least {min} {}", plural(min, "item"))),
            (None, Some(max)) => hints.push(format!("at most {max} {}", plural(max, "item"))),
            (None, None) => {}
        }
        Field {
            id,
            name: name.to_owned(),
            label,
            help: None,
            hints,
            required,
            kind: Kind::Array {
                template: Box::new(template),
                add,
                items,
                min_items,
                max_items,
            },
        }
    }

    fn json(&mut self, name: &str, label: String, seed: Option<&Value>, required: bool) -> Field {
        Field {
            id: self.id(),
            name: name.to_owned(),
            label,
            help: None,
            hints: vec!["JSON".to_owned()],
            required,
            kind: Kind::Json {
                value: seed.map(pretty).unwrap_or_default(),
            },
        }
    }
}

/// The one non-null type a schema names, if it names exactly one (or implies it).
fn types(schema: &Value) -> Option<String> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.clone()),
        Some(Value::Array(kinds)) => {
            let kinds: Vec<&str> = kinds
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| *k != "null")
                .collect();
            match kinds.as_slice() {
                [one] => Some((*one).to_owned()),
                _ => None,
            }
        }
        Some(_) => None,
        None if schema.get("properties").is_some() => Some("object".to_owned()),
        None if schema.get("items").is_some() => Some("array".to_owned()),
        None => None,
    }
}

fn first_example(schema: &Value) -> Option<&Value> {
    schema.get("examples")?.as_array()?.first()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// `excerpt_chars` → `Excerpt chars`.
pub fn humanize(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Value".to_owned(),
    }
}

/// Decodes `%XX` escapes of a `$ref` fragment (a bad escape is left as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(root: &Field) -> &[Field] {
        match &root.kind {
            Kind::Object { fields } => fields,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn each_type_gets_its_input_with_its_limits() {
        let schema = json!({
            "type": "object",
            "required": ["title"],
            "properties": {
                "title": {"type": "string", "maxLength": 80, "title": "The title"},
                "notes": {"type": "string", "description": "Anything"},
                "long": {"type": "string", "maxLength": 500},
                "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                "ratio": {"type": "number", "exclusiveMaximum": 1},
                "loud": {"type": "boolean", "default": true},
                "mode": {"enum": ["fast", "slow"], "default": "slow"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "default": ["a", "b"]},
                "owner": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "maybe": {"type": ["string", "null"]},
            }
        });
        let root = form(Some(&schema), "f");
        let kinds: Vec<(&str, &str)> = fields(&root)
            .iter()
            .map(|f| (f.name.as_str(), f.kind_name()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("title", "text"),
                ("notes", "text"),
                ("long", "text"),
                ("count", "integer"),
                ("ratio", "number"),
                ("loud", "boolean"),
                ("mode", "choice"),
                ("tags", "array"),
                ("owner", "object"),
                ("either", "json"),
                ("maybe", "text"),
            ]
        );
        let f = fields(&root);
        assert_eq!(f[0].label, "The title");
        assert!(f[0].required && !f[1].required);
        assert!(matches!(
            f[0].kind,
            Kind::Text {
                multiline: false,
                max_length: Some(80),
                ..
            }
        ));
        assert!(
            matches!(
                f[1].kind,
                Kind::Text {
                    multiline: true,
                    ..
                }
            ),
            "no maxLength"
        );
        assert!(
            matches!(
                f[2].kind,
                Kind::Text {
                    multiline: true,
                    ..
                }
            ),
            "maxLength over 200"
        );
        assert_eq!(f[1].help.as_deref(), Some("Anything"));
        match &f[3].kind {
            Kind::Number {
                integer,
                value,
                minimum,
                maximum,
                ..
            } => {
                assert!(integer);
                assert_eq!(value, "3");
                assert_eq!(
                    (minimum.as_deref(), maximum.as_deref()),
                    (Some("1"), Some("10"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f[3].hints, ["a whole number", "from 1 to 10"]);
        assert!(matches!(f[5].kind, Kind::Boolean { checked: true }));
        match &f[6].kind {
            Kind::Choice { options } => {
                let selected: Vec<_> = options
                    .iter()
                    .map(|o| (o.json.as_str(), o.selected))
                    .collect();
                assert_eq!(selected, [("\"fast\"", false), ("\"slow\"", true)]);
            }
            other => panic!("{other:?}"),
        }
        match &f[7].kind {
            Kind::Array {
                template,
                items,
                max_items,
                ..
            } => {
                assert_eq!(*max_items, Some(3));
                assert_eq!(items.len(), 2, "the default's items are filled in");
                assert!(template.id.contains(ITEM));
                assert!(items.iter().all(|i| !i.id.contains(ITEM)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fields(&f[8])[0].name, "name");
        assert!(fields(&f[8])[0].required);
        let mut ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), f.len(), "ids are unique");
    }

    #[test]
    fn refs_are_followed_and_recursion_ends_as_json() {
        let schema = json!({
            "type": "object",
            "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
            "properties": {"tree": {"$ref": "#/$defs/node"}}
        });
        let root = form(Some(&schema), "f");
        let mut field = &fields(&root)[0];
        let mut depth = 0;
        while let Kind::Object { fields } = &field.kind {
            field = &fields[0];
            depth += 1;
        }
        assert_eq!(field.kind_name(), "json");
        assert!(depth <= MAX_DEPTH + 1, "{depth}");
    }

    #[test]
    fn a_wide_recursive_schema_stays_small() {
        // Each level refers to the root eight times: 8^6 fields if drawn in full.
        let props: serde_json::Map<String, Value> = (0..8)
            .map(|i| (format!("p{i}"), json!({"$ref": "#"})))
            .collect();
        let schema = json!({"type": "object", "properties": props});
        let root = form(Some(&schema), "f");
        let html = root.to_string();
        assert!(html.len() < 2 << 20, "{} bytes", html.len());
    }

    #[test]
    fn top_level_file_properties_get_a_file_picker() {
        let schema = json!({
            "type": "object",
            "required": ["csv"],
            "properties": {
                "csv": {"type": "string", "format": "binary", "contentMediaType": "text/csv"},
                "photo": {"type": "string", "contentMediaType": "image/png"},
                "blob": {"type": "string", "format": "binary"},
                "nested": {"type": "object", "properties": {
                    "inner": {"type": "string", "format": "binary"}
                }},
            }
        });
        let root = form(Some(&schema), "f");
        let fields = fields(&root);
        let kinds: Vec<&str> = fields.iter().map(Field::kind_name).collect();
        assert_eq!(kinds, ["file", "file", "file", "object"]);
        assert!(fields[0].required);
        assert_eq!(fields[0].hints, ["a file (text/csv)"]);
        // Uploads fill top-level properties only: a nested one is typed as text.
        assert_eq!(self::fields(&fields[3])[0].kind_name(), "text");
        let html = root.to_string();
        assert!(
            html.contains("type=\"file\"") && html.contains("accept=\"text/csv\""),
            "{html}"
        );
    }

    #[test]
    fn no_schema_or_a_free_object_is_one_json_field() {
        assert_eq!(form(None, "f").kind_name(), "json");
        let free = json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert_eq!(form(Some(&free), "f").kind_name(), "json");
    }

    #[test]
    fn untrusted_text_is_escaped() {
        let schema = json!({
            "type": "object",
            "properties": {"<script>x</script>": {
                "type": "string", "title": "<img src=x onerror=alert(1)>",
                "description": "\"><b>", "default": "</textarea><script>"
            }}
        });
        let html = form(Some(&schema), "f").to_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("\"><b>"), "{html}");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{html}"
        );
        assert!(
            html.contains("&#60;/textarea&#62;&#60;script&#62;"),
            "{html}"
        );
    }
}
