#!/bin/sh
# Takes the README's screenshots of the web pages (the gallery, an app's page after a
# run, the operator's view; 1280 and 375 px wide) in headless Chromium against a real
# server, into docs/screenshots/.
set -eu
cd "$(dirname "$0")/.."
FLOOM_SCREENSHOTS=1 cargo test -p floom-host --test pages -- screenshots
