#!/usr/bin/env python3
"""What an MCP tool call costs next to a REST sync run of the same app, in one run.

  scripts/bench_mcp.py [--requests N] [--rounds R] [--binary PATH]

Starts a release `floom serve --examples=rust` on a free loopback port and sends, over
one keep-alive connection per kind, interleaved rounds of N sequential requests:
  - REST: POST /api/apps/hello/run?wait=true
  - MCP 2025-11-25: POST /mcp tools/call of the tool `hello` (handshake era headers)
  - MCP 2026-07-28: the same with the per-request _meta and Mcp-Method/Mcp-Name headers
Each answer is checked (the greeting, status succeeded). Prints p50/p99 per kind and the
ratio of the MCP p50s to the REST p50. Build first: cargo build --release -p floom-host.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, data_dir):
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--examples=rust", "--runs-per-minute", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "FLOOM_SECRET": "bench-secret"},
    )
    for line in server.stdout:
        if line.startswith("floom listening on"):
            return server, port
    raise SystemExit("floom serve exited before listening")


def rest(conn):
    body = json.dumps({"inputs": {"name": "Ada"}})
    conn.request("POST", "/api/apps/hello/run?wait=true", body,
                 {"content-type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    assert answer["output"] == {"greeting": "Hello, Ada!"}, answer


def mcp(conn, modern, n):
    params = {"name": "hello", "arguments": {"name": "Ada"}}
    headers = {"content-type": "application/json",
               "accept": "application/json, text/event-stream"}
    if modern:
        params["_meta"] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                           "io.modelcontextprotocol/clientCapabilities": {}}
        headers.update({"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
                        "mcp-name": "hello"})
    else:
        headers["mcp-protocol-version"] = "2025-11-25"
    body = json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params})
    conn.request("POST", "/mcp", body, headers)
    answer = json.loads(conn.getresponse().read())
    assert answer["result"]["structuredContent"] == {"greeting": "Hello, Ada!"}, answer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--binary", default=str(ROOT / "target/release/floom"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server, port = start(args.binary, data_dir)
        try:
            kinds = {
                "REST sync run": lambda c, n: rest(c),
                "MCP tools/call 2025-11-25": lambda c, n: mcp(c, False, n),
                "MCP tools/call 2026-07-28": lambda c, n: mcp(c, True, n),
            }
            conns = {k: http.client.HTTPConnection("127.0.0.1", port) for k in kinds}
            samples = {k: [] for k in kinds}
            for kind, call in kinds.items():  # warm-up
                for n in range(200):
                    call(conns[kind], n)
            for _ in range(args.rounds):
                for kind, call in kinds.items():
                    for n in range(args.requests):
                        started = time.perf_counter()
                        call(conns[kind], n)
                        samples[kind].append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait()
    rest_p50 = statistics.median(samples["REST sync run"])
    print(f"{'what':28} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'p50 / REST':>11}")
    for kind, times in samples.items():
        times.sort()
        p50 = statistics.median(times)
        p99 = times[len(times) * 99 // 100]
        print(f"{kind:28} {len(times):>9} {p50 * 1000:>8.3f} {p99 * 1000:>8.3f} "
              f"{p50 / rest_p50:>10.2f}x")


if __name__ == "__main__":
    sys.exit(main())
