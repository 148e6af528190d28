#!/usr/bin/env python3
"""Soak: mixed load against one server for a long while; its RSS and open file
descriptors must stay flat and it must answer no 5xx but the documented ones.

  scripts/soak.py [--minutes 10] [--connections 16]

The load comes from wrk (installed from Debian if missing) with a Lua script that mixes,
per request: sync runs (hello, ?wait=true), async runs, streamed runs (SSE), runs that
fail (a panicking app), runs that are cancelled (a 300 ms run, then its cancel), and
listings of executions. Every 30 s the script samples the server's RSS and descriptor
count; at the end it prints them, the status counts, and whether the store is intact.
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "target" / "wasm32-wasip2" / "guest"
TOKEN = "soak"

# wrk's Lua: each connection picks the next kind of request at random. Responses are
# counted by status; cancels are sent for the executions of slow runs.
LUA = r"""
counts = {}
local pending_cancels = {}
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

local function post(path, body)
  return wrk.format("POST", path, { ["Content-Type"] = "application/json",
                                   ["Authorization"] = "Bearer soak" }, body)
end

request = function()
  if #pending_cancels > 0 then
    local id = table.remove(pending_cancels)
    return wrk.format("POST", "/api/executions/" .. id .. "/cancel",
                      { ["Authorization"] = "Bearer soak" })
  end
  local r = math.random(100)
  if r <= 35 then
    return post("/api/apps/hello/run?wait=true", '{"inputs":{"name":"Ada"}}')
  elseif r <= 55 then
    return post("/api/apps/hello/run", '{"inputs":{"name":"Bob"}}')
  elseif r <= 70 then
    return post("/api/apps/meeting-action-items/run?stream=true",
                '{"inputs":{"transcript":"Alice: ship it Friday. Bob: I will test it."}}')
  elseif r <= 80 then
    return post("/api/apps/soak/actions/panic/run?wait=true", '{"inputs":{}}')
  elseif r <= 90 then
    return post("/api/apps/soak/actions/sleep/run", '{"inputs":{"ms":300}}')
  else
    return wrk.format("GET", "/api/executions?limit=20", { ["Authorization"] = "Bearer soak" })
  end
end

response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 202 and body:find('"status":"queued"') and #pending_cancels < 100 and math.random(2) == 1 then
    local id = body:match('"execution_id":"(exec_[%w]+)"')
    if id then table.insert(pending_cancels, id) end
  end
end

done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  io.write("STATUS ")
  for status, n in pairs(total) do io.write(status .. "=" .. n .. " ") end
  io.write("\n")
end
"""


def sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "floom-host"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--quiet", "-p", "floom-tests"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="floom-soak-"))
    floom = ROOT / "target" / "release" / "floom"
    env = {**os.environ, "FLOOM_SECRET": TOKEN, "FLOOM_TOKEN": TOKEN}
    server = subprocess.Popen(
        [str(floom), "serve", "--examples", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
         "--runs-per-minute", "0", "--max-concurrent-runs", "16"],
        stdout=subprocess.PIPE, stderr=open(work / "server.log", "w"), text=True, env=env)
    try:
        base = None
        for line in server.stdout:
            if "listening on" in line:
                base = line.split("listening on ")[1].strip()
                break
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        (work / "soak").mkdir()
        actions = "".join(f"[actions.{a}]\n" for a in ("panic", "sleep"))
        (work / "soak" / "floom.toml").write_text(
            f'slug = "soak"\ncomponent = "{GUESTS / "misbehave.wasm"}"\n[limits]\ntimeout_s = 10\n{actions}')
        subprocess.run([str(floom), "publish", str(work / "soak"), "--server", base], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        script = work / "soak.lua"
        script.write_text(LUA)

        seconds = int(args.minutes * 60)
        samples = [(0, *sample(server.pid))]
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.connections}", f"-d{seconds}s", "--latency", "--timeout", "30s",
                                "-s", str(script), base + "/"], stdout=subprocess.PIPE, text=True)
        started = time.time()
        while wrk.poll() is None:
            time.sleep(min(30, max(1, seconds - (time.time() - started))))
            samples.append((int(time.time() - started), *sample(server.pid)))
        out = wrk.stdout.read()
        # Let the queue drain, then sample once more.
        while True:
            with urllib.request.urlopen(base + "/healthz") as r:
                health = json.load(r)
            if health["queued"] == 0 and health["running"] == 0:
                break
            time.sleep(0.5)
        time.sleep(2)
        samples.append((int(time.time() - started), *sample(server.pid)))

        statuses = dict(kv.split("=") for kv in out.split("STATUS ")[1].split())
        print(out.split("STATUS ")[0].strip())
        print()
        print("| t (s) | RSS MiB | open fds |")
        print("|---:|---:|---:|")
        for t, rss, fds in samples:
            print(f"| {t} | {rss} | {fds} |")
        print()
        print("statuses:", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
        bad = {k: v for k, v in statuses.items() if k.startswith("5") and k != "503"}
        db = sqlite3.connect(work / "data" / "floom.db")
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        unfinished = db.execute(
            "SELECT count(*) FROM executions WHERE status IN ('queued', 'running')").fetchone()[0]
        total = db.execute("SELECT count(*) FROM executions").fetchone()[0]
        print(f"executions recorded: {total}, unfinished after the drain: {unfinished}, "
              f"integrity: {integrity}")
        first, last = samples[1], samples[-1]
        print(f"RSS {first[1]} -> {last[1]} MiB, fds {first[2]} -> {last[2]} (from the first sample under load)")
        if bad or integrity != "ok" or unfinished:
            sys.exit(f"FAILED: undocumented 5xx {bad}, integrity {integrity}, unfinished {unfinished}")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
