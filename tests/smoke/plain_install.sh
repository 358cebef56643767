#!/usr/bin/env bash
# The user's install path (README's first command) as a check: build the wheel, install it into
# a fresh venv (.smoke/venv) without the test extra, and run distill against the loopback Hub
# with the tiny model sets: CLI, generate, upscale, doctor, the TUI in a pty, Z-Image-Turbo.
# Needs the dev venv (.venv, the README's test command) for the tiny Hub. Details:
# tests/smoke/plain_install.py.
#   bash tests/smoke/plain_install.sh [--keep] [--skip-tui-generate] [--skip-upscale]
#                                     [--skip-zimage]
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${SMOKE_PYTHON:-python3}"
# the driver stops the fake Hub itself (finally + SIGTERM/SIGINT); this trap forwards signals
"$py" tests/smoke/plain_install.py "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 130' INT TERM
wait "$child"
