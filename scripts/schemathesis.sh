#!/usr/bin/env bash
# Runs schemathesis (from PyPI) with every check against a fresh `floom serve` with the
# example apps, authenticated as the admin. Fails on any server error or any response
# that breaks the OpenAPI document.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
max_examples="${1:-50}"

python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
cargo build --quiet -p floom-host

data_dir="$(mktemp -d)"
secret="schemathesis-$(date +%s)"
log="$data_dir/server.log"
FLOOM_SECRET="$secret" target/debug/floom serve --examples --listen 127.0.0.1:0 \
    --data-dir "$data_dir" --max-timeout-s 5 >"$data_dir/stdout" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data_dir"' EXIT
for _ in $(seq 1 100); do
    url="$(sed -n 's/^floom listening on //p' "$data_dir/stdout")"
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "${url:-}" ] || { echo "the server did not start:"; cat "$log"; exit 1; }

schemathesis --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --checks all \
    --max-examples "$max_examples" \
    --header "Authorization: Bearer $secret" \
    --request-timeout 20
