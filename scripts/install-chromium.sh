#!/bin/sh
# Installs Debian's headless Chromium and its WebDriver (chromedriver), which the page
# tests (host/tests/pages.rs) drive; does nothing when both are already there. Needs
# root and Debian's package registry, as the developers' machines and CI have.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# fonts-dejavu-core: text in the screenshots renders the same on every machine.
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
