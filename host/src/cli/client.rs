//! The HTTP client the CLI commands share: where the server is, which token to send,
//! and how API problems become messages and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Exit status when the server refused the request (a 4xx problem).
pub const EXIT_REFUSED: u8 = 2;
/// Exit status when the server could not be reached or failed (5xx).
pub const EXIT_SERVER: u8 = 3;

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "FLOOM_API_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub server: String,

    /// The token to send; without one, the admin token of the local data dir is used
    /// when there is one.
    #[arg(long, env = "FLOOM_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// The local data dir, for its admin token.
    #[arg(
        long,
        env = "FLOOM_DATA_DIR",
        default_value = "./floom-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// A CLI failure, with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    /// What to print after `error: `.
    pub message: String,
    /// The exit status.
    pub code: u8,
}

impl Failure {
    /// A refused request.
    pub fn refused(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_REFUSED,
        }
    }

    /// Prints the failure and returns its exit status.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        let mut message = format!("cannot talk to the server: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Failure {
            message,
            code: EXIT_SERVER,
        }
    }
}

/// A configured API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `args`.
    pub fn new(args: &ServerArgs) -> Result<Self, Failure> {
        // reqwest is built without a default crypto provider; install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("floom-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure {
                message: format!("cannot set up HTTP: {e}"),
                code: EXIT_SERVER,
            })?;
        let token = args.token.clone().or_else(|| {
            std::fs::read_to_string(args.data_dir.join("admin-token"))
                .ok()
                .map(|t| t.trim().to_owned())
        });
        Ok(Client {
            http,
            base: args.server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// A request to `path` (which starts with `/`), with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and decodes a successful JSON answer; a problem becomes a failure.
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let response = request.send().await?;
        let response = check(response).await?;
        response.json().await.map_err(Failure::from)
    }
}

/// Turns a problem answer into a failure that says what the server said.
pub async fn check(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let detail = body["detail"].as_str().unwrap_or("(no detail)");
    let code = body["code"].as_str().unwrap_or("unknown");
    let mut message = format!("{} {code}: {detail}", status.as_u16());
    if let Some(errors) = body["errors"].as_array() {
        for error in errors {
            let path = error["path"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("(inputs)");
            message.push_str(&format!(
                "\n  {path}: {}",
                error["message"].as_str().unwrap_or("")
            ));
        }
    }
    Err(Failure {
        message,
        code: if status.is_server_error() {
            EXIT_SERVER
        } else {
            EXIT_REFUSED
        },
    })
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot print the answer: {e}"),
    }
}
