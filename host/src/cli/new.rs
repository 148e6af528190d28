//! `floom new`: write a small, working app to start from.

use std::path::{Path, PathBuf};

use floom_runtime::is_slug;

use super::client::Failure;

/// Write a new app into ./NAME/: a manifest with an input schema, the code and a README.
///
/// NAME is the app's slug (lowercase letters, digits and dashes). The app counts the
/// words of a text and streams the first ones; build, publish and run it as its README
/// says.
///
/// Examples:
///
///   floom new word-counter                 # Python
///
///   floom new word-counter --lang rust
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct NewArgs {
    /// The app's slug, and the folder it is written into.
    pub name: String,

    /// The language to write it in.
    #[arg(long, value_enum, default_value_t = Lang::Python)]
    pub lang: Lang,

    /// The folder to create it in (default: the current one).
    #[arg(long, default_value = ".")]
    pub into: PathBuf,
}

/// An app language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Built with componentize-py by `floom build`.
    Python,
    /// Built with cargo for wasm32-wasip2.
    Rust,
}

/// The input schema every new app starts with.
const INPUT_SCHEMA: &str = r#"{ type = "object", required = ["text"], properties = { text = { type = "string", description = "The text to count", maxLength = 100000 } }, additionalProperties = false }"#;

const PYTHON_APP: &str = r#""""NAME: counts the words of a text and streams the first ones."""

import floom


@floom.action
def run(inputs: dict) -> dict:
    """Counts the words of `inputs["text"]`."""
    words = inputs["text"].split()
    if not words:
        raise floom.AppError("empty_text", "the text has no words")
    for word in words[:5]:
        floom.emit({"word": word})
    floom.log.info(f"counted {len(words)} words")
    return {"words": len(words)}
"#;

const RUST_APP: &str = r#"//! NAME: counts the words of a text and streams the first ones.

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    text: String,
}

#[derive(Serialize)]
struct Output {
    words: usize,
}

struct WordCounter;

impl App for WordCounter {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let words: Vec<&str> = input.text.split_whitespace().collect();
        if words.is_empty() {
            return Err(Error::new("empty_text", "the text has no words"));
        }
        for word in words.iter().take(5) {
            floom_sdk::emit(&serde_json::json!({ "word": word }))?;
        }
        floom_sdk::info!("counted {} words", words.len());
        Ok(Output { words: words.len() })
    }
}

floom_sdk::export!(WordCounter);
"#;

/// Runs `floom new`.
pub fn run(args: &NewArgs) -> Result<(), Failure> {
    if !is_slug(&args.name) {
        return Err(Failure::refused(format!(
            "{:?} is not a slug: use lowercase letters, digits and dashes, starting with a \
             letter or digit (like word-counter)",
            args.name
        )));
    }
    let dir = args.into.join(&args.name);
    if dir.exists() {
        return Err(Failure::refused(format!(
            "{} already exists: pick another name or folder",
            dir.display()
        )));
    }
    let name = &args.name;
    let (component, build, lang) = match args.lang {
        Lang::Python => (
            "build/app.wasm".to_owned(),
            "\n[build]\npython = \"app.py\"\n",
            "Python",
        ),
        Lang::Rust => (
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
            "",
            "Rust",
        ),
    };
    let manifest = format!(
        "slug = \"{name}\"\ndescription = \"Counts the words of a text\"\ncomponent = \"{component}\"\n\
         public = true\n{build}\n[actions.run]\ndescription = \"Count the words\"\nstreaming = true\n\
         input_schema = {INPUT_SCHEMA}\n"
    );
    let readme = format!(
        "# {name}\n\nA Floom app in {lang}: counts the words of a text, streaming the first ones.\n\n\
         ```sh\nfloom build {name}          # the component, into {component}\nfloom publish {name}\n\
         floom run {name} --input text='to be or not to be'\n```\n"
    );
    let mut files: Vec<(&str, String)> = vec![("floom.toml", manifest), ("README.md", readme)];
    match args.lang {
        Lang::Python => {
            files.push(("app.py", PYTHON_APP.replace("NAME", name)));
            files.push((".gitignore", "build/\n__pycache__/\n".to_owned()));
        }
        Lang::Rust => {
            files.push(("Cargo.toml", cargo_toml(name)));
            files.push(("src/lib.rs", RUST_APP.replace("NAME", name)));
            files.push((".gitignore", "target/\n".to_owned()));
        }
    }
    for (path, contents) in &files {
        write(&dir.join(path), contents)?;
    }
    println!(
        "wrote {} ({lang}); next:\n  floom build {0} && floom publish {0} && floom run {name} --input text='to be or not to be'",
        dir.display()
    );
    Ok(())
}

/// A standalone crate (its own workspace) using the SDK from this floom's sources.
fn cargo_toml(name: &str) -> String {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/rust");
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n\
         floom-sdk = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
         serde_json = \"1\"\n\n# Its own workspace, wherever it is put.\n[workspace]\n\n\
         [profile.release]\nopt-level = \"s\"\nstrip = \"debuginfo\"\n",
        sdk.display().to_string()
    )
}

fn write(path: &Path, contents: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::refused(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, contents)
        .map_err(|e| Failure::refused(format!("cannot write {}: {e}", path.display())))
}
