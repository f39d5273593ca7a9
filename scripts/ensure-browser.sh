#!/usr/bin/env bash
# Make sure the headless browser the browser tests drive is installed: Debian's chromium.
#
# The tests (tests/conftest.py, `browser` fixture) run /usr/bin/chromium through the
# `playwright` Python package (a dev dependency; Playwright's own browser download is not
# used). HOTSPOT_TEST_CHROMIUM names another executable. When the executable is missing
# and this runs as root, `apt-get install chromium` installs it (non-interactive, quiet;
# about 26 packages, 115 MB of them chromium's own, some 20 s on Debian 12); otherwise it
# exits non-zero saying what to install.
set -euo pipefail

CHROMIUM=${HOTSPOT_TEST_CHROMIUM:-/usr/bin/chromium}

say() { printf 'ensure-browser: %s\n' "$*"; }
err() { printf 'ensure-browser: %s\n' "$*" >&2; }

if [[ -x $CHROMIUM ]]; then
    say "chromium present at $CHROMIUM"
    exit 0
fi
if [[ $CHROMIUM != /usr/bin/chromium ]]; then
    err "HOTSPOT_TEST_CHROMIUM=$CHROMIUM is not an executable file"
    exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
    err "$CHROMIUM is missing and this is not root: install Debian's chromium package" \
        "(sudo apt-get install chromium) or set HOTSPOT_TEST_CHROMIUM to a Chromium executable"
    exit 1
fi
command -v apt-get >/dev/null || { err "$CHROMIUM is missing and apt-get is not available"; exit 1; }

say "$CHROMIUM is missing; installing Debian's chromium package with apt-get"
export DEBIAN_FRONTEND=noninteractive
# Without recommends (upower, udev, mesa, printer tools: none is needed headless), but
# with fonts-liberation so pages render readable text in screenshots.
apt_install() {
    apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
}
# The package lists may be missing or stale on a fresh machine: update once, then retry.
if ! apt_install; then
    say "apt-get install failed; running apt-get update and trying again"
    apt-get update -qq
    apt_install
fi
[[ -x $CHROMIUM ]] || { err "apt-get installed chromium but $CHROMIUM is still missing"; exit 1; }
say "installed: $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
