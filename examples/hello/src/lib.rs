//! The smallest Floom app: greets you by name.

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    name: Option<String>,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

struct Hello;

impl App for Hello {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let name = input.name.as_deref().map(str::trim).unwrap_or("world");
        if name.is_empty() {
            return Err(Error::invalid_input("name must not be blank"));
        }
        Ok(Output {
            greeting: format!("Hello, {name}!"),
        })
    }
}

floom_sdk::export!(Hello);
