"""Words and numbers as a person reads them, the same on every surface: sizes, ETAs, paths,
quant pairs, image captions, one-line prompts, the terminal's notification sequence.

UI-free (no textual, no rich, nothing heavy imported): the TUI's screens and widgets and the
headless CLI share it, so a size or an ETA never reads two ways. Styling (theme colours,
``Content``) stays with the widgets; what is here returns plain ``str`` (``image_caption``:
Textual content markup, every value escaped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from distill_tui.textsafe import escape_markup, visible

# ---- sizes ---------------------------------------------------------------------------


def human_size(n: float, precision: int = 1) -> str:
    """1_500_000_000 -> '1.5 GB' (decimal units, as Hugging Face shows sizes)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.{precision}f} {unit}"
        n /= 1000
    return f"{n} TB"


def short_size(n: float) -> str:
    """Size for a row: '2.4 GB', '336 MB' (one decimal above 10 is noise)."""
    text = human_size(n)
    num, _, unit = text.partition(" ")
    try:
        value = float(num)
    except ValueError:
        return text
    if unit and unit != "B" and value >= 10:
        return f"{value:.0f} {unit}"
    return text


def gib(n: float) -> str:
    """Memory (binary units, as GPUs report it): '6.5 GiB'."""
    return f"{n / 1024**3:.1f} GiB"


# ---- time ----------------------------------------------------------------------------


def eta_text(seconds: float | None, unknown: str = "--:--") -> str:
    """``4:05`` / ``1:02:03``; ``unknown`` for an unknown ETA or one beyond 99 h (the rule is
    downloads/rate.py's ``fmt_eta``; ``unknown=""`` leaves it out)."""
    # imported here: the downloads package pulls httpx in, which a screen that shows no
    # download (first paint) does not need
    from distill_tui.downloads.rate import fmt_eta

    return fmt_eta(seconds) or unknown


def record_time(created: str) -> str:
    """A history record's ISO creation time in local time, ``MM-DD HH:MM``."""
    try:
        return datetime.fromisoformat(created).astimezone().strftime("%m-%d %H:%M")
    except ValueError:
        return visible(created[5:16])


# ---- paths ---------------------------------------------------------------------------


def home_path(path: Path | str) -> str:
    """``/home/me/models`` -> ``~/models`` (shorter; no user name on screen)."""
    text = str(path)
    home = str(Path.home())
    if text == home:
        return "~"
    return "~" + text[len(home) :] if text.startswith(home + "/") else text


def shown_path(path: Path | str, *, name_only: bool = False) -> str:
    """A file's path for the screen: ``~`` for home, or only its name (``name_only``: the
    display settings of snapshot tests, where a temporary directory must not show)."""
    return Path(path).name if name_only else home_path(path)


# ---- models and images ---------------------------------------------------------------


def quant_pair(diffusion_quant: str | None, text_encoder_quant: str | None) -> str:
    """``Q4_K_S × Q4_K_M``: a recipe's quants (diffusion first)."""
    return f"{diffusion_quant} × {text_encoder_quant}"


def recipe_label(model_id: str, diffusion_quant: str | None, text_encoder_quant: str | None) -> str:
    """``flux2-klein-4b · Q4_K_S + Q4_K_M``: a model with its quants (the engine status line,
    the image captions)."""
    return f"{model_id} · {diffusion_quant} + {text_encoder_quant}"


def image_caption(
    path_text: str,
    seed: int,
    width: int,
    height: int,
    timings: Mapping[str, float] | None = None,
) -> str:
    """The lines under an image (content markup): its path in bold (``path_text``, as
    :func:`shown_path` made it), seed and size, and the timings when known."""
    parts = [f"[b]{escape_markup(path_text)}[/b]", f"seed {seed} · {width}x{height}"]
    if timings:
        t = timings
        bits = [f"{k} {t[k]:.1f}s" for k in ("load", "encode", "sample", "decode") if t.get(k)]
        if t.get("total"):
            bits.append(f"total {t['total']:.1f}s")
        if bits:
            parts.append(" · ".join(bits))
    return "\n".join(parts)


def one_line(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, control characters shown."""
    flat = visible(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# ---- the terminal --------------------------------------------------------------------


def notification_sequence(message: str, env: Mapping[str, str] | None = None) -> str:
    """OSC 777 (notify) for VTE and urxvt, which ignore OSC 9; OSC 9 for the rest (iTerm2,
    kitty, WezTerm, foot, Ghostty, Windows Terminal). One of them only: terminals that know
    both would otherwise show two notifications."""
    env = os.environ if env is None else env
    text = message.replace("\x1b", "").replace("\x07", "").replace(";", ",")
    if env.get("VTE_VERSION") or env.get("TERM", "").startswith("rxvt"):
        return f"\x1b]777;notify;distill;{text}\x07"
    return f"\x1b]9;{text}\x07"
