"""Calls a JSON API with a declared secret as a bearer token: the GitHub repository API.

The Python twin of ``examples/github-repo`` (Rust). The token (``GITHUB_TOKEN``, optional
for public repositories) never leaves the host except in the request's Authorization
header; the host only lets the request through to a host in ``[network] allowed_hosts``.
"""

import re

import floom

DEFAULT_API = "https://api.github.com"
"""GitHub's API; a GitHub Enterprise server's base URL may be given instead (and must be in
the manifest's allowed_hosts too)."""

NAME_PART = re.compile(r"[A-Za-z0-9_.-]+")

FIELDS = {
    "full_name": "full_name",
    "description": "description",
    "stars": "stargazers_count",
    "forks": "forks_count",
    "open_issues": "open_issues_count",
    "language": "language",
    "default_branch": "default_branch",
}
"""The fields of GitHub's answer this app returns: output name, then GitHub's name."""


@floom.action
def run(inputs: dict) -> dict:
    """Looks up ``inputs["repo"]`` (``owner/name``)."""
    unknown = sorted(set(inputs) - {"repo", "api_base"})
    if unknown:
        raise floom.AppError("invalid_input", f"unknown field {unknown[0]!r}")
    repo, api_base = inputs.get("repo"), inputs.get("api_base", DEFAULT_API)
    if not isinstance(api_base, str):
        raise floom.AppError("invalid_input", "api_base must be a string")
    owner, _, name = repo.partition("/") if isinstance(repo, str) else ("", "", "")
    if not (NAME_PART.fullmatch(owner) and NAME_PART.fullmatch(name)):
        raise floom.AppError("invalid_input", "repo must look like owner/name")
    headers = {"accept": "application/vnd.github+json", "user-agent": "floom-py-github-repo"}
    token = floom.secret("GITHUB_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    else:
        floom.log.info("no GITHUB_TOKEN set: anonymous request (lower rate limit)")
    response = floom.http.get(f"{api_base.rstrip('/')}/repos/{owner}/{name}", headers=headers)
    if response.status == 200:
        answer = response.json()
        missing = [theirs for theirs in FIELDS.values() if theirs not in answer]
        if missing:
            raise floom.AppError("invalid_json", f"the API's answer has no {missing[0]}")
        return {ours: answer[theirs] for ours, theirs in FIELDS.items()}
    response.close()
    if response.status == 404:
        raise floom.AppError("not_found", f"no repository {repo}")
    if response.status in (401, 403):
        raise floom.AppError("unauthorized", f"the API refused the request ({response.status})")
    raise floom.AppError("upstream_error", f"the API answered {response.status}")
