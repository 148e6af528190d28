#!/bin/sh
# Installs Debian's PostgreSQL server binaries (initdb, postgres), which the scale-out
# tests and benchmarks start in a temporary folder as the unprivileged `postgres` user
# the package creates; does nothing when they are already there. Needs root and Debian's
# package registry, as the developers' machines and CI have. The package's own cluster
# is not used (nor started: policy-rc.d refuses it, there being no init system here).
set -eu
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && id postgres >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null && id postgres >/dev/null
