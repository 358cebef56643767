#!/usr/bin/env bash
# Sixel demonstration: distill in an xterm with sixel support (vt340) under Xvfb, one
# generation on the tiny synthetic model set, then a screenshot of the X screen.
#
#   apt-get install -y xterm xvfb imagemagick xdotool
#   bench/sixel_demo.sh [renderer=sixel|auto] [out.png] [display=:77] [size=512]
#
# The image must appear as pixels (sixel), not half-cell blocks. Everything it starts is
# ended by pid at the end; the demo home lives under /tmp/i6-sixel-home.
set -euo pipefail
RENDERER=${1:-sixel}
OUT=${2:-/tmp/i6-sixel.png}
DISP=${3:-:77}
SIZE=${4:-256}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOME_DIR=/tmp/i6-sixel-home
rm -rf "$HOME_DIR"
EXPORTS=$("$ROOT/.venv/bin/python" -m bench.demo_home "$HOME_DIR" | grep '^export' | tr '\n' ';')

Xvfb "$DISP" -screen 0 1400x900x24 >/dev/null 2>&1 &
XVFB=$!
sleep 1
# no stderr redirect: Textual draws on stderr
DISPLAY=$DISP xterm -ti vt340 -xrm 'XTerm*decTerminalID: vt340' \
    -xrm 'XTerm*numColorRegisters: 256' -geometry 160x50 \
    -e bash -c "$EXPORTS cd /tmp; $ROOT/.venv/bin/distill --image-renderer $RENDERER" &
XTERM=$!
trap 'kill $XTERM 2>/dev/null || true; kill $XVFB 2>/dev/null || true' EXIT
sleep 8  # app start + textual-image's terminal probe
export DISPLAY=$DISP
WID=$(xdotool search --pid $XTERM | head -1 || true)
[ -n "$WID" ] && xdotool windowfocus "$WID" 2>/dev/null || true
xdotool type --delay 20 "a red lighthouse on a cliff"
xdotool key Tab; sleep 0.3; xdotool key Tab; sleep 0.3  # prompt -> negative -> width
xdotool type "$SIZE"; sleep 0.3  # a focused Input has its text selected: typing replaces it
xdotool key Tab; sleep 0.3
xdotool type "$SIZE"; sleep 0.3
xdotool key ctrl+g
sleep ${WAIT:-25}
import -window root "$OUT"
echo "screenshot: $OUT"
