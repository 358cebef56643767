"""distill_tui: a keyboard-first terminal studio for local image generation."""

import sys as _sys

__version__ = "0.1.0"

# `import httpx` also imports httpx's own command-line tool (httpx._main: click, rich's console,
# pygments) - about 50 ms of every distill start-up, for a tool distill never runs. Marked
# absent, httpx falls back to its stub (its __init__ catches that ImportError); nothing else
# changes. (Issue 14.5: a download is timed from process start to exit.)
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
