#!/usr/bin/env python3
"""The Python SDK's tests: tiny apps built with componentize-py, run with ``floom exec``.

    python3 sdk/python/tests/run_tests.py [-k SUBSTRING] [--componentize-py PATH] [--floom PATH]

Each test app (``tests/apps/*``, and the Python examples under ``examples/py-*``) is built
the way ``floom build`` builds it: a generated ``floom_main.py`` that imports the app and
``floom._export.Handler``, then ``componentize-py -d wit -w python-app componentize -p
<entry dir> -p sdk/python -p <app dir> [-p <installed requirements>] floom_main``. Builds
are kept in ``target/python-sdk-tests/`` under a hash of everything they are made of, and
``floom exec`` keeps its compile cache there too, so a second run builds and compiles
nothing but the one compile it times. Each test writes the manifest it needs, runs
``floom exec`` (the real binary, ``target/debug/floom`` unless told otherwise) and checks
its JSON lines. A small HTTP
server on 127.0.0.1 stands in for the APIs the ``floom.http`` tests call.

Prints one line per test, the build and run timings, and ``N passed, N failed`` last; the
exit status is 1 if any test failed.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SDK = ROOT / "sdk" / "python"
APPS = SDK / "tests" / "apps"
WORK = ROOT / "target" / "python-sdk-tests"
WORLD = "python-app"
PURE_PYTHON_ONLY = [
    "--only-binary=:all:",
    "--platform",
    "any",
    "--implementation",
    "py",
    "--abi",
    "none",
    "--python-version",
    "3.14",
]
"""pip options that install pure-Python wheels only, for the CPython 3.14 that
componentize-py 0.25.1 bundles: a package with native code is not found, and pip names it."""


@dataclass
class Tools:
    """The programs the tests drive."""

    componentize_py: Path
    floom: Path


@dataclass
class Run:
    """One ``floom exec``: its event lines, its outcome line, its exit code and duration."""

    events: list[dict[str, Any]]
    outcome: dict[str, Any]
    code: int
    seconds: float
    stderr: str

    @property
    def logs(self) -> list[dict[str, Any]]:
        """The log events."""
        return [e for e in self.events if e.get("type") == "log"]

    @property
    def chunks(self) -> list[Any]:
        """The data of the chunk events."""
        return [e["data"] for e in self.events if e.get("type") == "chunk"]

    def error(self) -> tuple[str | None, str | None, str]:
        """``(code, app_code, message)`` of the outcome's error."""
        error = self.outcome.get("error") or {}
        return error.get("code"), error.get("app_code"), error.get("message", "")


@dataclass
class Timings:
    """What the tests measured, printed at the end."""

    builds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


TIMINGS = Timings()


# --- building ----------------------------------------------------------------------------


def digest(paths: list[Path], extra: str) -> str:
    """A hash over the contents of ``paths`` (files, or every file below folders)."""
    h = hashlib.sha256(extra.encode())
    for base in paths:
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for file in files:
            if "__pycache__" in file.parts or file.is_relative_to(base / "build"):
                continue
            h.update(str(file.relative_to(ROOT)).encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def build(tools: Tools, name: str, entry: Path, requirements: Path | None = None) -> Path:
    """Builds the app whose entry module is ``entry`` as ``floom build`` does; returns the
    component. The component, or what componentize-py said when it refused the app, is
    kept under a hash of the app, the SDK, the WIT and the toolchain."""
    version = subprocess.run(
        [tools.componentize_py, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    inputs = [entry.parent, SDK / "floom", ROOT / "wit"] + ([requirements] if requirements else [])
    out = WORK / f"{name}-{digest(inputs, version)}.wasm"
    refused = out.with_suffix(".refused")
    if out.exists():
        return out
    if refused.exists():
        raise BuildFailed(refused.read_text())
    work = WORK / f".work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "entry").mkdir(parents=True)
    (work / "entry" / "floom_main.py").write_text(
        "import sys\n\nsys.dont_write_bytecode = True  # keep __pycache__ out of the sources\n"
        f"import {entry.stem}  # noqa: E402, F401 (registers the actions)\n"
        "from floom._export import Handler  # noqa: E402, F401\n"
    )
    paths = [work / "entry", SDK, entry.parent]
    if requirements:
        site = work / "site-packages"
        pip = tools.componentize_py.parent / "pip"
        subprocess.run(
            [
                pip,
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                site,
                *PURE_PYTHON_ONLY,
                "-r",
                requirements,
            ],
            check=True,
        )
        paths.append(site)
    command = [tools.componentize_py, "-d", ROOT / "wit", "-w", WORLD, "componentize"]
    for path in paths:
        command += ["-p", path]
    command += ["floom_main", "-o", work / "app.wasm"]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    TIMINGS.builds[name] = time.monotonic() - started
    if result.returncode != 0:
        refused.write_text(result.stderr)
        raise BuildFailed(result.stderr)
    (work / "app.wasm").rename(out)
    shutil.rmtree(work)
    return out


class BuildFailed(Exception):
    """componentize-py refused the app; the exception holds what it printed."""


# --- running -----------------------------------------------------------------------------


def floom_exec(
    tools: Tools,
    component: Path,
    manifest: str,
    action: str | None = None,
    inputs: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Run:
    """Runs ``floom exec`` on ``component`` under ``manifest`` (TOML text)."""
    manifests = WORK / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    path = manifests / f"{hashlib.sha256(manifest.encode()).hexdigest()[:16]}.toml"
    path.write_text(manifest)
    command = [tools.floom, "exec", component, "--manifest", path]
    command += ["--input", json.dumps(inputs or {})]
    if action:
        command += ["--action", action]
    for name in secrets or {}:
        command += ["--secret", name]
    env = dict(os.environ, XDG_CACHE_HOME=str(WORK / "cache"), **(secrets or {}))
    started = time.monotonic()
    result = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.monotonic() - started
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"floom exec printed nothing; stderr: {result.stderr}")
    return Run(lines[:-1], lines[-1], result.returncode, seconds, result.stderr)


# --- the stand-in API server -------------------------------------------------------------


SEEN_AUTHORIZATION: list[str | None] = []
"""The Authorization header of each ``/repos/`` request, in order."""


class Api(http.server.BaseHTTPRequestHandler):
    """The HTTP server the ``floom.http`` tests call: ``/hello``, ``/redirect``, ``/big``,
    ``/echo`` and ``/see-other`` (POST), and a GitHub-like ``/repos/OWNER/NAME``."""

    def do_GET(self) -> None:
        if self.path == "/hello":
            self.answer(200, b"hello from the test server", "text/plain; charset=utf-8")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/hello")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            try:
                for _ in range(16):
                    self.wfile.write(b"x" * (64 << 10))
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client that drops the response unread
        elif self.path.startswith("/repos/"):
            self.repo(self.path.removeprefix("/repos/"))
        else:
            self.answer(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        if self.path == "/see-other":
            self.send_response(303)
            self.send_header("Location", "/hello")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        echo = {
            "method": "POST",
            "content_type": self.headers.get("Content-Type"),
            "body": json.loads(body) if body else None,
        }
        self.answer(200, json.dumps(echo).encode(), "application/json")

    def repo(self, full_name: str) -> None:
        SEEN_AUTHORIZATION.append(self.headers.get("Authorization"))
        if full_name != "floom/runtime":
            self.answer(404, b'{"message": "Not Found"}', "application/json")
            return
        repo = {
            "full_name": full_name,
            "description": "Runs untrusted WebAssembly apps",
            "stargazers_count": 42,
            "forks_count": 7,
            "open_issues_count": 3,
            "language": "Rust",
            "default_branch": "main",
            "private": False,
        }
        self.answer(200, json.dumps(repo).encode(), "application/json")

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


# --- the tests ---------------------------------------------------------------------------

Test = Callable[["Context"], None]
TESTS: list[tuple[str, Test]] = []


def test(function: Test) -> Test:
    """Registers a test."""
    TESTS.append((function.__name__, function))
    return function


@dataclass
class Context:
    """What every test gets: the tools, the built apps (built on first use) and the API."""

    tools: Tools
    port: int
    built: dict[str, Path] = field(default_factory=dict)

    def app(self, name: str) -> Path:
        """The component of the test app ``tests/apps/NAME``."""
        if name not in self.built:
            self.built[name] = build(self.tools, name, APPS / name / "app.py")
        return self.built[name]

    def example(self, folder: str) -> tuple[Path, str]:
        """The component and manifest text of ``examples/FOLDER``, built from its
        ``[build]`` table."""
        manifest_path = ROOT / "examples" / folder / "floom.toml"
        text = manifest_path.read_text()
        if folder not in self.built:
            spec = tomllib.loads(text)["build"]
            requirements = spec.get("requirements")
            self.built[folder] = build(
                self.tools,
                folder,
                manifest_path.parent / spec["python"],
                manifest_path.parent / requirements if requirements else None,
            )
        return self.built[folder], text

    def run(self, app: str, manifest: str, action: str | None = None, **kwargs: Any) -> Run:
        """Runs the test app ``app``."""
        return floom_exec(self.tools, self.app(app), manifest, action, **kwargs)

    def url(self, path: str, host: str = "localhost") -> str:
        """A URL on the stand-in API server."""
        return f"http://{host}:{self.port}{path}"


PROBE_ACTIONS = (
    "stream fail crash secret non_json big_chunk fetch spin hoard recurse deep_output "
    "lazy_import exit missing"
).split()


def probe_manifest(network: bool = False, limits: str = "") -> str:
    """A manifest for the probe app; ``missing`` is an action the app does not have."""
    text = 'slug = "probe"\nsecrets = ["TOKEN", "UNSET"]\n'
    if network:
        text += '[network]\nallowed_hosts = ["localhost"]\n'
    text += f"[limits]\n{limits or 'timeout_s = 30'}\n"
    return text + "".join(f"[actions.{action}]\n" for action in PROBE_ACTIONS)


def check(condition: bool, what: str) -> None:
    """Fails the test with ``what`` unless ``condition``."""
    if not condition:
        raise AssertionError(what)


@test
def chunks_and_logs_stream_in_order_without_network(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "stream", inputs={"count": 3})
    check(run.outcome["status"] == "succeeded", f"{run.outcome}")
    check(run.outcome["output"] == {"count": 3, "inputs": {"count": 3}}, f"{run.outcome}")
    check(run.chunks == [{"i": 0}, {"i": 1}, {"i": 2}], f"{run.events}")
    check(
        [e["type"] for e in run.events] == ["chunk"] * 3 + ["log"] * 6,
        f"chunks come first, then the logs: {run.events}",
    )
    levels = [(e["stream"], e.get("level"), e["line"]) for e in run.logs]
    check(
        levels
        == [
            ("app", "trace", "a trace line"),
            ("app", "debug", "a debug line"),
            ("app", "info", "an info line"),
            ("app", "warn", "a warn line"),
            ("app", "error", "an error line"),
            ("stdout", None, "a line on stdout"),
        ],
        f"{levels}",
    )
    check(run.code == 0, f"exit code {run.code}")


@test
def an_app_error_keeps_its_code_and_message(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "fail", inputs={"code": "empty_text", "message": "m"})
    check(run.outcome["status"] == "failed" and run.code == 1, f"{run.outcome}")
    check(run.error() == ("app_error", "empty_text", "m"), f"{run.outcome}")
    check(run.logs == [], f"an app error logs no traceback: {run.logs}")


@test
def an_uncaught_exception_fails_with_its_type_message_and_traceback(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "crash", inputs={"depth": 2})
    check(run.error() == ("app_error", "internal", "ValueError: bad value"), f"{run.outcome}")
    lines = [e["line"] for e in run.logs]
    check(all(e["level"] == "error" for e in run.logs), f"{run.logs}")
    check(lines[0] == "Traceback (most recent call last):", f"{lines}")
    check(lines[-1] == "ValueError: bad value", f"{lines}")
    check('app.py", line' in lines[1] and lines[1].endswith("in crash"), f"{lines}")
    check(any('helpers.py", line 6, in fail_deeply' in line for line in lines), f"{lines}")
    check(any('raise ValueError("bad value")' in line for line in lines), f"source: {lines}")
    check(not any("_export.py" in line for line in lines), f"no SDK frames: {lines}")


@test
def sys_exit_is_an_uncaught_exception_too(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "exit")
    check(run.error() == ("app_error", "internal", "SystemExit: 3"), f"{run.outcome}")


@test
def a_declared_secret_is_read_and_others_are_none(ctx: Context) -> None:
    manifest = probe_manifest()
    run = ctx.run("probe", manifest, "secret", inputs={"name": "TOKEN"}, secrets={"TOKEN": "t0"})
    check(run.outcome["output"] == {"value": "t0"}, f"{run.outcome}")
    for name in ("UNSET", "UNDECLARED"):
        run = ctx.run("probe", manifest, "secret", inputs={"name": name})
        check(run.outcome["output"] == {"value": None}, f"{name}: {run.outcome}")


@test
def an_action_the_app_lacks_is_an_app_error_naming_its_actions(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "missing")
    code, app_code, message = run.error()
    check((code, app_code) == ("app_error", "unknown_action"), f"{run.outcome}")
    check("no action 'missing'" in message and "crash, deep_output, exit" in message, message)


@test
def a_single_action_answers_to_run(ctx: Context) -> None:
    run = ctx.run("single", 'slug = "single"\n', inputs={"text": "hello world, again"})
    check(run.outcome["output"] == {"summary": "hello worl"}, f"{run.outcome}")
    run = ctx.run("single", 'slug = "single"\n[actions.summarize]\n', inputs={"text": "ab"})
    check(run.outcome["output"] == {"summary": "ab"}, f"{run.outcome}")


@test
def an_output_json_cannot_hold_is_invalid_output(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "non_json")
    code, app_code, message = run.error()
    check((code, app_code) == ("app_error", "invalid_output"), f"{run.outcome}")
    check("set is not JSON serializable" in message, message)


@test
def a_chunk_over_the_cap_raises_emit_error(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "big_chunk", inputs={"size": 100_000})
    output = run.outcome["output"]
    check(output["code"] == "chunk_refused" and "chunk cap" in output["message"], f"{output}")


@test
def http_get_reads_status_headers_and_text(ctx: Context) -> None:
    run = ctx.run(
        "probe",
        probe_manifest(network=True),
        "fetch",
        inputs={"url": ctx.url("/hello")},
        args=("--allow-private-network",),
    )
    check(
        run.outcome["output"]
        == {
            "status": 200,
            "url": ctx.url("/hello"),
            "content_type": "text/plain; charset=utf-8",
            "text": "hello from the test server",
        },
        f"{run.outcome}",
    )


@test
def http_responses_dropped_unread_are_cleaned_up_until_the_request_cap(ctx: Context) -> None:
    manifest, private = probe_manifest(network=True), ("--allow-private-network",)
    run = ctx.run(
        "probe",
        manifest,
        "fetch",
        inputs={"url": ctx.url("/big"), "discard": 99, "stream": True},
        args=private,
    )
    check(run.outcome["status"] == "succeeded", f"{run.outcome}")
    run = ctx.run(
        "probe", manifest, "fetch", inputs={"url": ctx.url("/hello"), "discard": 100}, args=private
    )
    check(run.error()[:2] == ("app_error", "request_denied"), f"{run.outcome}")
    check(any("cap of 100 requests" in e["line"] for e in run.logs), f"{run.events}")


@test
def http_follows_redirects(ctx: Context) -> None:
    run = ctx.run(
        "probe",
        probe_manifest(network=True),
        "fetch",
        inputs={"url": ctx.url("/redirect")},
        args=("--allow-private-network",),
    )
    output = run.outcome["output"]
    check(output["url"] == ctx.url("/hello") and output["status"] == 200, f"{run.outcome}")


@test
def http_post_sends_json(ctx: Context) -> None:
    run = ctx.run(
        "probe",
        probe_manifest(network=True),
        "fetch",
        inputs={"url": ctx.url("/echo"), "method": "POST", "json": {"a": [1, "é"]}},
        args=("--allow-private-network",),
    )
    echo = json.loads(run.outcome["output"]["text"])
    check(
        echo == {"method": "POST", "content_type": "application/json", "body": {"a": [1, "é"]}},
        f"{echo}",
    )


@test
def http_turns_a_post_into_a_get_after_303_and_checks_statuses(ctx: Context) -> None:
    manifest, private = probe_manifest(network=True), ("--allow-private-network",)
    inputs = {"url": ctx.url("/see-other"), "method": "POST", "json": {"a": 1}}
    run = ctx.run("probe", manifest, "fetch", inputs=inputs, args=private)
    output = run.outcome["output"]
    check((output["status"], output["url"]) == (200, ctx.url("/hello")), f"{run.outcome}")
    inputs = {"url": ctx.url("/nowhere"), "raise_for_status": True}
    run = ctx.run("probe", manifest, "fetch", inputs=inputs, args=private)
    code, app_code, message = run.error()
    check((code, app_code) == ("app_error", "http_status") and "404" in message, f"{run.outcome}")


@test
def http_streams_a_large_body(ctx: Context) -> None:
    run = ctx.run(
        "probe",
        probe_manifest(network=True),
        "fetch",
        inputs={"url": ctx.url("/big"), "stream": True},
        args=("--allow-private-network",),
    )
    output = run.outcome["output"]
    check(output["bytes"] == 1 << 20 and output["pieces"] >= 16, f"{run.outcome}")


@test
def http_to_a_host_off_the_allowlist_is_request_denied(ctx: Context) -> None:
    # An IP literal never matches allowed_hosts.
    run = ctx.run(
        "probe",
        probe_manifest(network=True),
        "fetch",
        inputs={"url": ctx.url("/hello", host="127.0.0.1")},
        args=("--allow-private-network",),
    )
    check(run.error()[:2] == ("app_error", "request_denied"), f"{run.outcome}")
    check(any("not in the app's allowed_hosts" in e["line"] for e in run.logs), f"{run.events}")


@test
def http_to_a_private_address_is_request_denied(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(network=True), "fetch", inputs={"url": ctx.url("/hello")})
    check(run.error()[:2] == ("app_error", "request_denied"), f"{run.outcome}")
    check(any("private address" in e["line"] for e in run.logs), f"{run.events}")


@test
def http_without_a_network_grant_traps_naming_it(ctx: Context) -> None:
    run = ctx.run(
        "probe",
        probe_manifest(),
        "fetch",
        inputs={"url": ctx.url("/hello")},
        args=("--allow-private-network",),
    )
    code, _, message = run.error()
    check(code == "trap" and "[network] allowed_hosts" in message, f"{run.outcome}")


@test
def a_spin_loop_times_out(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(limits="timeout_s = 1"), "spin")
    check(run.outcome["status"] == "timed_out", f"{run.outcome}")
    check(run.error()[0] == "timeout", f"{run.outcome}")


@test
def an_allocation_bomb_hits_the_memory_limit(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(limits="memory_mb = 64"), "hoard")
    check(run.error()[0] == "memory_limit", f"{run.outcome}")


@test
def recursion_is_a_recursion_error(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "recurse")
    check(
        run.error()
        == ("app_error", "internal", "RecursionError: maximum recursion depth exceeded"),
        f"{run.outcome}",
    )
    check(len(run.logs) < 200, f"the traceback is cut: {len(run.logs)} lines")


@test
def unbounded_recursion_ends_in_a_limit_not_a_crash(ctx: Context) -> None:
    # Python frames live on the heap: past a raised recursion limit they hit memory_limit.
    run = ctx.run(
        "probe", probe_manifest(limits="memory_mb = 64"), "recurse", inputs={"limit": 10_000_000}
    )
    check(run.error()[0] == "memory_limit", f"{run.outcome}")
    # C code recursing (json.dumps of a deeply nested list) overflows the wasm stack.
    run = ctx.run("probe", probe_manifest(), "deep_output")
    check(run.error()[0] == "trap" and "stack overflow" in run.error()[2], f"{run.outcome}")


@test
def a_module_not_imported_at_build_time_is_explained(ctx: Context) -> None:
    run = ctx.run("probe", probe_manifest(), "lazy_import")
    code, app_code, message = run.error()
    check((code, app_code) == ("app_error", "internal"), f"{run.outcome}")
    check(message.startswith("ModuleNotFoundError: No module named 'colorsys'"), message)
    check("import them at the top of a module" in message, message)


@test
def a_bad_action_name_fails_the_build(ctx: Context) -> None:
    try:
        ctx.app("bad_name")
    except BuildFailed as e:
        check("@floom.action('Bad Name')" in str(e), str(e)[-2000:])
        return
    raise AssertionError("the build succeeded")


MEETINGS = [
    "Alice: Let us ship by Friday. Bob: I will write the release notes by Thursday.\n"
    "Alice: Carol, can you review the API docs before Wednesday?\n"
    "Carol: Sure. Dave needs to update the changelog tomorrow.\nBob: The weather is nice.",
    "Eve: Okay, I'll send the deck by end of the week. Eve: we should book a room on "
    "March 3rd; please fix the build. Frank: I think it went well. TODO: call the vendor",
    "intro words\nAnn Lee: so, we need to hire someone next month! Bo: Ann, could you "
    "draft the post this Friday, please?",
]


@test
def the_meeting_twin_streams_each_item_like_the_rust_app(ctx: Context) -> None:
    component, manifest = ctx.example("py-meeting-action-items")
    rust = ROOT / "target" / "wasm32-wasip2" / "guest" / "meeting_action_items.wasm"
    for transcript in MEETINGS:
        run = floom_exec(ctx.tools, component, manifest, inputs={"transcript": transcript})
        check(run.outcome["status"] == "succeeded", f"{run.outcome}")
        items = run.outcome["output"]["items"]
        check(items and run.chunks == items, f"each item is streamed: {run.events}")
        if rust.exists():
            twin = floom_exec(ctx.tools, rust, manifest, inputs={"transcript": transcript})
            check(
                twin.outcome["output"] == run.outcome["output"],
                f"\nrust:   {twin.outcome['output']}\npython: {run.outcome['output']}",
            )
            check(twin.chunks == run.chunks, "the same chunks")
    if not rust.exists():
        TIMINGS.notes.append(f"{rust} is not built: the twin was not compared")
    run = floom_exec(ctx.tools, component, manifest, inputs={"transcript": "  "})
    check(run.error() == ("app_error", "invalid_input", "transcript is empty"), f"{run.outcome}")


@test
def the_markdown_example_uses_a_package_from_pypi(ctx: Context) -> None:
    component, manifest = ctx.example("py-markdown")
    text = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Code\n\n```\nx = 1\n```\n"
    run = floom_exec(ctx.tools, component, manifest, inputs={"markdown": text})
    output = run.outcome["output"]
    check("<table>" in output["html"] and "<code>x = 1" in output["html"], f"{output}")
    check(
        output["headings"]
        == [
            {"level": 1, "id": "title", "title": "Title"},
            {"level": 2, "id": "code", "title": "Code"},
        ],
        f"{output['headings']}",
    )


@test
def the_github_example_sends_its_secret_to_an_allowed_host(ctx: Context) -> None:
    component, manifest = ctx.example("py-github-repo")
    manifest = manifest.replace('["api.github.com"]', '["localhost"]')
    inputs = {"repo": "floom/runtime", "api_base": ctx.url("")}
    SEEN_AUTHORIZATION.clear()
    run = floom_exec(
        ctx.tools,
        component,
        manifest,
        inputs=inputs,
        secrets={"GITHUB_TOKEN": "t0ken"},
        args=("--allow-private-network",),
    )
    check(
        run.outcome["output"]
        == {
            "full_name": "floom/runtime",
            "description": "Runs untrusted WebAssembly apps",
            "stars": 42,
            "forks": 7,
            "open_issues": 3,
            "language": "Rust",
            "default_branch": "main",
        },
        f"{run.outcome}",
    )
    check(SEEN_AUTHORIZATION == ["Bearer t0ken"], f"{SEEN_AUTHORIZATION}")
    run = floom_exec(
        ctx.tools,
        component,
        manifest,
        inputs={**inputs, "repo": "floom/nope"},
        args=("--allow-private-network",),
    )
    check(run.error()[:2] == ("app_error", "not_found"), f"{run.outcome}")
    check(any("no GITHUB_TOKEN set" in e["line"] for e in run.logs), f"{run.events}")
    # The real manifest allows api.github.com only.
    real = ROOT / "examples" / "py-github-repo" / "floom.toml"
    run = floom_exec(
        ctx.tools, component, real.read_text(), inputs=inputs, args=("--allow-private-network",)
    )
    check(run.error()[:2] == ("app_error", "request_denied"), f"{run.outcome}")


@test
def timings(ctx: Context) -> None:
    """Not a check: how long a Python app takes to compile and to run."""
    component, manifest = ctx.app("probe"), probe_manifest()
    cold = floom_exec(ctx.tools, component, manifest, "stream", args=("--no-cache",))
    warm = [floom_exec(ctx.tools, component, manifest, "stream").seconds for _ in range(5)]
    size = component.stat().st_size / 1e6
    TIMINGS.notes.append(
        f"probe component {size:.1f} MB; floom exec compiling it: {cold.seconds:.1f} s; "
        f"from the compile cache: {min(warm) * 1000:.0f}-{max(warm) * 1000:.0f} ms; "
        f"the run itself: {cold.outcome['usage']['duration_ms']:.1f} ms, "
        f"memory peak {cold.outcome['usage']['memory_peak_bytes'] / 1e6:.1f} MB"
    )


# --- the runner --------------------------------------------------------------------------


def tools_from(args: argparse.Namespace) -> Tools:
    """The componentize-py and floom binaries: from the arguments, the environment
    (``COMPONENTIZE_PY``, ``FLOOM``), or their usual places."""
    componentize_py = (
        args.componentize_py
        or os.environ.get("COMPONENTIZE_PY")
        or shutil.which("componentize-py")
        or "/tmp/cpy/bin/componentize-py"
    )
    floom = args.floom or os.environ.get("FLOOM") or ROOT / "target" / "debug" / "floom"
    for tool in (componentize_py, floom):
        if not Path(tool).exists():
            sys.exit(f"{tool} not found (componentize-py 0.25.1, and `cargo build -p floom-host`)")
    return Tools(Path(componentize_py), Path(floom))


def main() -> int:
    """Runs the tests; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="run only the tests whose name contains this")
    parser.add_argument("--componentize-py", help="the componentize-py program")
    parser.add_argument("--floom", help="the floom binary (default: target/debug/floom)")
    args = parser.parse_args()
    tools = tools_from(args)
    WORK.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ctx = Context(tools, server.server_address[1])
    passed = failed = 0
    for name, function in TESTS:
        if args.k not in name:
            continue
        started = time.monotonic()
        try:
            function(ctx)
        except Exception as e:  # a failing test, reported with its reason
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {type(e).__name__}: {e}")
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - started:.1f} s)")
    server.shutdown()
    for app, seconds in TIMINGS.builds.items():
        print(f"built {app} with componentize-py in {seconds:.1f} s")
    for note in TIMINGS.notes:
        print(note)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
