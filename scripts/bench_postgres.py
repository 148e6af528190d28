#!/usr/bin/env python3
"""Scale-out benchmark: sync runs of `hello` on the embedded SQLite store and on one
PostgreSQL, with one host and with two hosts on the same database, in one run.

  cargo build --release -p floom-host && python3 scripts/bench_postgres.py [--duration S]

For each setup it measures, with wrk (loopback, release build): runs/s, p50 and p99 at
concurrency 1 and 16. Two hosts share the load: one wrk per host, each with half the
connections (c=1 is one host's figure). On PostgreSQL it also measures the store's work
per run from the server's own counters: statements (pg_stat_statements), commits, rows
written, WAL bytes (pg_stat_wal), and the PostgreSQL processes' CPU time per run, from
which it estimates how many runs per second, and so how many hosts, one primary carries.

PostgreSQL is Debian's (scripts/install-postgres.sh), in a temporary cluster made by
initdb and run as the unprivileged `postgres` user, with its default durability
(fsync on, synchronous_commit on): what a deployment would have.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOM = ROOT / "target" / "release" / "floom"
MASTER_KEY = "b" * 64


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, **kwargs)


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def lua_post(path, body):
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.path = "{path}"\n'
    )
    f.close()
    return f.name


def wrk_start(url, connections, duration, script):
    args = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{duration}s",
            "--latency", "-s", script, url]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def wrk_result(proc):
    out = proc.communicate()[0]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(bad.group(1)) if bad else 0


class Postgres:
    """A temporary cluster with default durability and pg_stat_statements."""

    def __init__(self):
        sh("sh", str(ROOT / "scripts" / "install-postgres.sh"))
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        self.bin = bins[-1]
        self.root = Path(tempfile.mkdtemp(prefix="floom-bench-pg-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = 55432
        self.as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]
        sh(*self.as_postgres, str(self.bin / "initdb"), "--auth=trust", "--username=floom",
           "-D", str(self.data), stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            [*self.as_postgres, str(self.bin / "postgres"), "-D", str(self.data),
             "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
             "-c", f"unix_socket_directories={self.root}",
             "-c", "shared_preload_libraries=pg_stat_statements",
             "-c", "max_connections=300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if self.psql("postgres", "SELECT 1", check=False).returncode == 0:
                break
            time.sleep(0.1)

    def psql(self, db, sql, check=True):
        return subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "floom",
             "-d", db, "-At", "-c", sql],
            capture_output=True, text=True, check=check)

    def database(self, name):
        self.psql("postgres", f"CREATE DATABASE {name}")
        self.psql(name, "CREATE EXTENSION pg_stat_statements")
        return f"postgres://floom@127.0.0.1:{self.port}/{name}"

    def counters(self, db):
        """(statements, commits, rows written, WAL bytes, CPU seconds of every backend)."""
        statements = float(self.psql(db, "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements").stdout)
        stats = self.psql(db, "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
                              "FROM pg_stat_database WHERE datname = current_database()").stdout
        commits, rows = (float(x) for x in stats.strip().split("|"))
        wal = float(self.psql(db, "SELECT wal_bytes FROM pg_stat_wal").stdout)
        return statements, commits, rows, wal, self.cpu_seconds()

    def cpu_seconds(self):
        total = 0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                if "(postgres)" not in stat:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
        return total

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_host(database=None):
    data = tempfile.mkdtemp(prefix="floom-bench-")
    args = [str(FLOOM), "serve", "--examples=rust", "--listen", "127.0.0.1:0", "--data-dir", data,
            "--runs-per-minute", "0", "--max-queue", "10000000", "--max-concurrent-runs", "64",
            "--max-runs-per-app", "64"]
    if database:
        args += ["--database", database]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "FLOOM_SECRET": "bench", "FLOOM_MASTER_KEY": MASTER_KEY})
    for line in proc.stdout:
        if "listening on" in line:
            base = line.split("listening on ")[1].strip()
            break
    else:
        raise RuntimeError("the server did not start")
    # Wait until hello is published (the examples are published once it listens).
    for _ in range(600):
        try:
            import urllib.request
            urllib.request.urlopen(base + "/api/apps/hello")
            break
        except Exception:
            time.sleep(0.1)
    return proc, base


def measure(bases, connections, duration, script):
    """Load split over `bases`; returns (total runs/s, p50 ms, p99 ms, non-2xx): the
    percentiles are the worst host's."""
    per_host = max(connections // len(bases), 1)
    procs = [wrk_start(base + "/", per_host, duration, script) for base in bases[:connections]]
    results = [wrk_result(p) for p in procs]
    return (sum(r[0] for r in results), max(r[1] for r in results), max(r[2] for r in results),
            sum(r[3] for r in results))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sh("apt-get", "install", "-y", "-q", "wrk", stdout=subprocess.DEVNULL)
    if not FLOOM.exists():
        sys.exit("build it first: cargo build --release -p floom-host")
    script = lua_post("/api/apps/hello/run?wait=true", '{"inputs":{"name":"Ada"}}')
    pg = Postgres()
    rows = []
    work = {}
    try:
        setups = [("SQLite, one host", None, 1), ("PostgreSQL, one host", "one", 1),
                  ("PostgreSQL, two hosts", "two", 2)]
        for name, db, hosts in setups:
            url = pg.database(db) if db else None
            servers = [start_host(url) for _ in range(hosts)]
            bases = [base for _, base in servers]
            try:
                measure(bases, 16, 2, script)  # warm-up
                for c in (1, 16):
                    before = pg.counters(db) if db else None
                    figures = measure(bases, c, args.duration, script)
                    rows.append((name, c, *figures))
                    if db:
                        after = pg.counters(db)
                        runs = figures[0] * args.duration
                        work[(name, c)] = [(a - b) / runs for a, b in zip(after, before)]
            finally:
                for proc, _ in servers:
                    proc.terminate()
                    proc.wait()
    finally:
        pg.stop()

    base = {c: rps for name, c, rps, *_ in rows if name.startswith("SQLite")}
    print("| store | c | runs/s | vs SQLite | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, c, rps, p50, p99, bad in rows:
        print(f"| {name} | {c} | {rps:,.0f} | {rps / base[c]:.2f}x | {p50:.2f} | {p99:.2f} | {bad} |")
    print()
    print("| store | c | statements/run | commits/run | rows written/run | WAL bytes/run | PostgreSQL CPU µs/run |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, c), (statements, commits, rows_written, wal, cpu) in work.items():
        print(f"| {name} | {c} | {statements:.1f} | {commits:.1f} | {rows_written:.1f} | {wal:,.0f} | {cpu * 1e6:,.0f} |")
    # The primary's CPU per run bounds what it carries: runs/s per core of PostgreSQL.
    cpu = min(v[4] for v in work.values())
    if cpu > 0:
        per_core = 1 / cpu
        print()
        print(f"PostgreSQL spends {cpu * 1e6:,.0f} µs of CPU per run at best: about {per_core:,.0f} "
              f"runs/s per core of the primary.")


if __name__ == "__main__":
    main()
