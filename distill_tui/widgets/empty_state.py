"""The Generate screen's empty state: what to do before the first image.

Not a widget: the text for the image pane's placeholder (content markup; catalog names are
escaped). With no model ready it says what F3 will download and how big it is; with the
active model ready it says how to generate.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from distill_tui.catalog import COMPONENT_LABELS
from distill_tui.guide import setup_need
from distill_tui.textsafe import escape_markup, visible

READY = "No image yet — type a prompt and press ctrl+g"


def busy_keys(app: Any) -> list[str]:
    """Keys of the files the App downloads now (``DistillApp.running_downloads``)."""
    return list(app.running_downloads())


def empty_state_text(core: Any, busy: Collection[str] = (), prefer: Any = None) -> str:
    """Markup for the placeholder. ``busy``: keys of files being downloaded now."""
    active = core.settings.settings.active_model_id
    model = core.catalog.get(active)
    if model is None:
        return (
            f"[b]Model {escape_markup(visible(active))} is not in the catalog[/b] — "
            "F3 to choose one"
        )
    if core.resolver.is_model_ready(active):
        return READY
    others = [
        m
        for m in core.catalog.models
        if m.type == "image-generation" and m.id != active and core.resolver.is_model_ready(m.id)
    ]
    name = escape_markup(visible(model.name))
    head = f"[b]{name} is not ready[/b]" if others else "[b]No model ready[/b]"
    need = setup_need(core.catalog, core.settings, core.inventory, active, prefer)
    if need is None or not need.missing:
        what = "F3 to choose its quants (enter on a downloaded quant)"
    elif all(f.file in busy for _c, _q, f in need.missing):
        what = f"downloading the {need.which}, {need.size_text} — F3 shows the progress"
    else:
        what = f"F3 to download the {need.which}, {need.size_text}"
    lines = [head, what]
    if need is not None and need.missing:
        parts = [
            f"{COMPONENT_LABELS.get(c, c).removesuffix(' Model').lower()} {escape_markup(visible(q))}"
            if q
            else COMPONENT_LABELS.get(c, c)  # a component of one file: "VAE"
            for c, q, _f in need.missing
        ]
        lines.append(f"{name}: {' + '.join(parts)}")
    if others:
        lines.append("or choose a ready model above")
    return "\n".join(lines)
