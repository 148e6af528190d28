//! Calls a JSON API with a declared secret as a bearer token: the GitHub repository API.
//! The token (`GITHUB_TOKEN`, optional for public repositories) never leaves the host
//! except in the request's Authorization header.

use floom_sdk::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// `owner/name`.
    repo: String,
    /// The API's base URL: GitHub's, or a GitHub Enterprise server's (which must be in the
    /// manifest's allowed_hosts too).
    #[serde(default = "default_api")]
    api_base: String,
}

fn default_api() -> String {
    "https://api.github.com".to_owned()
}

/// The fields of GitHub's repository answer this app returns.
#[derive(Deserialize, Serialize)]
struct Repo {
    full_name: String,
    description: Option<String>,
    #[serde(rename(deserialize = "stargazers_count"))]
    stars: u64,
    #[serde(rename(deserialize = "forks_count"))]
    forks: u64,
    #[serde(rename(deserialize = "open_issues_count"))]
    open_issues: u64,
    language: Option<String>,
    default_branch: String,
}

struct GithubRepo;

impl App for GithubRepo {
    type Input = Input;
    type Output = Repo;

    fn run(_ctx: &Context, input: Input) -> Result<Repo, Error> {
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let Some((owner, name)) = input
            .repo
            .split_once('/')
            .filter(|(o, n)| valid(o) && valid(n))
        else {
            return Err(Error::invalid_input("repo must look like owner/name"));
        };
        let url = format!(
            "{}/repos/{owner}/{name}",
            input.api_base.trim_end_matches('/')
        );
        let mut request = floom_sdk::http::Request::get(&url)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "floom-github-repo");
        match floom_sdk::secret("GITHUB_TOKEN") {
            Some(token) => request = request.bearer(&token),
            None => floom_sdk::info!("no GITHUB_TOKEN set: anonymous request (lower rate limit)"),
        }
        let response = request.send()?;
        match response.status() {
            200 => response.json(),
            404 => Err(Error::new(
                "not_found",
                format!("no repository {}", input.repo),
            )),
            401 | 403 => Err(Error::new(
                "unauthorized",
                format!("the API refused the request ({})", response.status()),
            )),
            other => Err(Error::new(
                "upstream_error",
                format!("the API answered {other}"),
            )),
        }
    }
}

floom_sdk::export!(GithubRepo);
