"""The status column shared by quant rows and the VAE row (not a widget: pure formatting).

A row's state comes from two sources: the inventory (is the verified file on disk?) and the
latest :class:`~distill_tui.downloads.events.DownloadEvent` for the file's key (or an
:class:`~distill_tui.downloads.events.Elsewhere`: another process's download). An active download
wins over "on disk"; a finished one that left a verified file reads "Downloaded".
Everything here is styled with theme variables in content markup, never literal colours.
"""

from __future__ import annotations

import re
from typing import Any

from textual.content import Content

from distill_tui.catalog import CatalogFile
from distill_tui.downloads.events import DownloadEvent, Elsewhere, ShownDownload
from distill_tui.formatting import eta_text, short_size
from distill_tui.recipe import PARAMS
from distill_tui.textsafe import visible

ACTIVE_STATES = frozenset({"queued", "preflight", "downloading", "verifying"})
#: every state class a row may carry (``-missing``, ``-downloading``, ...)
ROW_STATES = (
    "missing",
    "queued",
    "preflight",
    "downloading",
    "verifying",
    "done",
    "failed",
    "cancelled",
    "paused",
)


def state_name(event: ShownDownload | None) -> str | None:
    return None if event is None else str(event.state)


def row_state(present: bool, event: ShownDownload | None) -> str:
    """One of ROW_STATES."""
    s = state_name(event)
    if s in ACTIVE_STATES:
        return s  # type: ignore[return-value]
    if present:
        return "done"
    if s in ("failed", "cancelled", "paused"):
        return s  # type: ignore[return-value]
    return "missing"


def bar(fraction: float, width: int) -> Content:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    done = "━" * filled
    todo = "━" * (width - filled)
    return Content.from_markup(f"[$accent]{done}[/][$panel-lighten-2]{todo}[/]")


#: license pages are always on the Hub itself, never on the HF_ENDPOINT mirror
HF_PAGE = "https://huggingface.co"
_GATED_REPO = re.compile(r"([A-Za-z0-9][\w.-]*/[\w.-]+) is gated")
#: how a running TUI gets a token: the service re-reads the token file before each request
LOGIN_STEP = (
    "run `hf auth login` in another shell, then press r (distill re-reads the token file; "
    "a new HF_TOKEN environment variable needs a restart of distill)"
)


def repo_page(file: CatalogFile) -> str | None:
    """The repository's page on huggingface.co (whatever HF_ENDPOINT points at)."""
    repo = file.repo_id
    return f"{HF_PAGE}/{repo}" if repo else None


def gated_advice(err: str | None, file: CatalogFile) -> str:
    """A gated repository: the license page(s) on huggingface.co and the step that works in a
    running TUI; "no token" and "token not approved" read differently (the service's
    messages differ: ``downloads/hub.py`` ``hub_error``)."""
    repos = list(dict.fromkeys(_GATED_REPO.findall(err or "")))
    if not repos and file.repo_id:
        repos = [file.repo_id]
    names = " and ".join(repos) or "the repository"
    pages = " and ".join(f"{HF_PAGE}/{r}" for r in repos) or f"its page on {HF_PAGE}"
    verb = "are" if len(repos) > 1 else "is"
    if "not approved" in (err or ""):
        return (
            f"{names} {verb} gated and your token is not approved for it yet: accept the "
            f"license at {pages} while logged in with the token's account, then press r. "
            f"For another account: {LOGIN_STEP}."
        )
    return (
        f"{names} {verb} gated and distill has no Hugging Face token: accept the license at "
        f"{pages} while logged in, then {LOGIN_STEP}."
    )


def error_text(event: ShownDownload, file: CatalogFile) -> str:
    """What went wrong, in words a person can act on in the TUI (the core's "rerun" is "press
    r" here: downloads/errors.py for_surface)."""
    from distill_tui.downloads.errors import for_surface

    return for_surface(_error_text(event, file), "tui")


def _error_text(event: ShownDownload, file: CatalogFile) -> str:
    kind, err = event.error_kind, event.error
    if kind == "gated":
        return gated_advice(err, file)
    if kind == "sources" and err and _GATED_REPO.search(err):
        return f"{err.rstrip('.')}. For the gated one: {gated_advice(err, file)}"
    if kind == "auth" and err and "HF_TOKEN" in err:
        return f"{err.rstrip('.')}. In a running distill: {LOGIN_STEP}."
    return str(err or "unknown error")


def fraction_of(event: ShownDownload | None) -> float:
    return 0.0 if event is None else event.fraction


def status_line(
    state: str,
    event: ShownDownload | None,
    *,
    width: int,
    live_times: bool = True,
    unverified: bool = False,
    found: str | None = None,
    gone: str | None = None,
) -> Content:
    """The first line of the status column (at most ``width`` cells). ``unverified``: the file
    is on disk but nothing could check its bytes (no sha256 from the catalog or the Hub).
    ``found``: where a copy of the same size is on this machine ("the HF cache", a folder of
    import_dirs; downloads/localreuse.py): enter links it instead of downloading."""
    key = "[b $accent]{}[/]"
    if state == "missing" and found:
        return Content.assemble(
            Content.styled(f"found in {visible(found)}", "$text-success"),
            Content.from_markup(f" — {key.format('enter')} to link · {key.format('d')} download"),
        )
    if state == "missing" and gone:  # a symlink whose original was removed (issue 23.9)
        return Content.assemble(
            Content.styled(f"the linked original ({visible(gone)}) is gone", "$text-warning"),
            Content.from_markup(f" · {key.format('d')} to fetch it"),
        )
    if state == "missing":
        return Content.from_markup(f"[$text-muted]not downloaded[/] · {key.format('d')} download")
    if state == "done":
        if unverified:
            return Content.styled("Downloaded · unverified (no reference hash)", "$text-warning")
        return Content.from_markup("[$text-success]Downloaded ✓[/]")
    if state in ("queued", "preflight"):
        source = visible(event.source or "") if event is not None else ""  # a file with mirrors
        word = "queued" if state == "queued" else (f"asking {source}…" if source else "checking…")
        note = event.note if event is not None else None  # e.g. waiting for another process
        # the Hub's answer is being retried
        activity = event.activity if isinstance(event, DownloadEvent) else None
        return Content.assemble(
            Content.styled(visible(activity or note or word), "$text-muted"),
            Content.from_markup(f" · {key.format('x')} cancel"),
        )
    frac = fraction_of(event)
    pct = f"{frac * 100:3.0f}%"
    if state == "verifying":
        return Content.from_markup("[$text-muted]verifying sha256…[/]")
    if state == "downloading":
        if event is not None and event.activity:  # retrying, stalled: words, no speed
            return _activity_line(frac, pct, event, width)  # (another process's too)
        extra = ""
        if live_times and event is not None:  # speed and ETA (display settings)
            speed = event.speed
            eta = eta_text(event.eta, unknown="")
            if speed:
                extra += f" {short_size(speed)}/s"
            if eta:  # hidden while unknown (no rate yet) or absurd
                extra += f" ETA {eta}"
        source = visible(event.source or "") if event is not None else ""
        elsewhere = event.pid if isinstance(event, Elsewhere) else None
        if elsewhere:  # run by another distill process (a detached download, another TUI)
            source = f"pid {elsewhere}"
        if source and width - len(pct) - len(extra) - len(source) - 17 >= 10:
            # a file with mirrors: where the bytes come from; another process: which one
            extra += f" in {source}" if elsewhere else f" from {source}"
        tail = f" {pct}{extra} · "
        tail_len = len(tail) + len("x cancel")
        bar_width = max(6, min(24, width - tail_len))
        if bar_width + tail_len > width:  # very narrow: drop speed/ETA first
            tail = f" {pct} · "
            tail_len = len(tail) + len("x cancel")
            bar_width = max(4, min(24, width - tail_len))
        return Content.assemble(
            bar(frac, bar_width), tail, Content.from_markup(f"{key.format('x')} cancel")
        )
    if state == "paused" and isinstance(event, Elsewhere) and event.partial_only:
        # a partial on disk that no process works on (after a restart, or a stopped one)
        return Content.from_markup(
            f"[$text-warning]partial {pct.strip()}[/] · {key.format('d')} resume"
        )
    if state in ("cancelled", "paused"):
        word = "cancelled" if state == "cancelled" else "paused"
        done = event.bytes_done if event is not None else 0
        kept = f" at {pct.strip()}, partial kept" if done else ""
        # nothing kept (cancelled while queued): d starts it, it resumes nothing
        again = "resume" if done else "download"
        return Content.from_markup(f"[$text-warning]{word}{kept}[/] · {key.format('d')} {again}")
    if state == "failed":
        return Content.from_markup(f"[$text-error]✗ Failed[/] · {key.format('r')} retry")
    return Content(state)


def _activity_line(frac: float, pct: str, event: ShownDownload, width: int) -> Content:
    """``━━━━━━  0% retrying (HTTP 503, attempt 3 of 7, next in 4 s) · x cancel``: the bar goes
    first when the words need the room, then the long words give way to the short ones."""
    cancel = Content.from_markup(" · [b $accent]x[/] cancel")
    retry = event.retry
    texts = [visible(event.activity or "")]
    if retry is not None:
        texts.append(visible(retry.text(short=True)))
    for text in texts:
        need = len(pct) + 1 + len(text) + cancel.cell_length
        words = Content.styled(text, "$text-warning")
        if need + 1 + 6 <= width:
            bar_width = min(24, width - need - 1)
            return Content.assemble(bar(frac, bar_width), " ", pct, " ", words, cancel)
        if need <= width:
            return Content.assemble(pct, " ", words, cancel)
    return Content.assemble(pct.strip(), " ", Content.styled(texts[-1], "$text-warning"))


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, max(10, width), break_long_words=True, break_on_hyphens=False) or [
        ""
    ]


def row_lines(
    width: int,
    *,
    glyph: Content | None,
    label: str,
    label_width: int,
    size: int,
    description: str,
    state: str,
    event: ShownDownload | None,
    file: CatalogFile,
    live_times: bool = True,
    fit: Content | None = None,
    unverified: bool = False,
    found: str | None = None,
    gone: str | None = None,
) -> list[Content]:
    """Lines of one file row: ``● Q4_K_S   2.4 GB  <status>`` plus the failure reason below.

    From 100 cells on, the quant description gets its own column; below that it is left out
    (the status column matters more at 80 columns). ``fit`` (a quant row on a machine with a
    known GPU, :func:`fit_mark`) sits after the size.
    """
    width = max(width, 20)
    head: list[Content | str] = []
    if glyph is not None:
        head += [glyph, " "]
    head += [
        Content.styled(label.ljust(label_width), "bold"),
        "  ",
        # "~": the catalog only estimates this size (the Hub tells the exact one at download)
        (("~" if file.size_estimated and size == file.size else "") + short_size(size)).rjust(7),
        " ",
    ]
    if fit is not None:
        head += [fit, " "]
    prefix = Content.assemble(*head)
    indent = prefix.cell_length
    desc_width = 34 if width >= 100 and description else 0
    if desc_width:
        desc = (
            description
            if len(description) <= desc_width - 2
            else description[: desc_width - 3] + "…"
        )
        prefix = Content.assemble(prefix, Content.styled(desc.ljust(desc_width), "$text-muted"))
    status_width = max(width - prefix.cell_length, 10)
    status = status_line(
        state,
        event,
        width=status_width,
        live_times=live_times,
        unverified=unverified,
        found=found,
        gone=gone,
    )
    first = Content.assemble(prefix, status.truncate(status_width, ellipsis=True))
    lines = [first]
    if state == "failed" and event is not None:
        # Below 100 cells the reason gets more room than the status column would give it.
        if width < 100:
            indent = min(indent, 4)
        for part in _wrap(visible(error_text(event, file)), width - indent):
            lines.append(Content.assemble(" " * indent, Content.styled(part, "$text-error")))
    return lines


#: short knob names for the rows' fit column: each recipe.PARAMS row's ``word``
#: (memory_model.KNOB_LABELS has the long ones)
KNOB_SHORT = {p.name: p.word for p in PARAMS if p.word}
FIT_WIDTH = 16


def fit_mark(fit: Any, width: int = FIT_WIDTH) -> Content:
    """``✓ fits`` / ``≈ offload+tiling`` / ``✗ too big`` in a fixed-width column."""
    if fit.level == "fits":
        text, style = "✓ fits", "$text-success"
    elif fit.level == "knobs":
        text, style = "≈ " + "+".join(KNOB_SHORT.get(k, k) for k in fit.knobs), "$text-warning"
    else:
        text, style = "✗ too big", "$text-error"
    if len(text) > width:
        text = text[: width - 1] + "…"
    return Content.styled(text.ljust(width), style)
