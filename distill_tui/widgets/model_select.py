"""The model selector above the prompt: ready models, "· needs setup" ones, and the
"Manage Models…" entry. Choosing a not-ready model or the last entry opens the Model Manager
(the selection then snaps back to the active model)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Select

from distill_tui.context import CoreContext
from distill_tui.textsafe import visible

MANAGE = "__manage__"
#: after a model that is not ready. Short: at 80 columns the selector shows 29 cells, and
#: "FLUX.2 Klein 9B · needs setup" is 29 (the longer "(Setup Required)" was cut)
SETUP_REQUIRED = " · needs setup"


def model_options(core: CoreContext) -> list[tuple[Content | str, str]]:
    """(label, value) per image-generation model, then "Manage Models…"."""
    out: list[tuple[Content | str, str]] = []
    for m in core.catalog.models:
        if m.type != "image-generation":
            continue
        ready = core.resolver.is_model_ready(m.id)
        # Content: a catalog name is never parsed as markup (the overlay and the shown value)
        out.append((Content(visible(m.name) + ("" if ready else SETUP_REQUIRED)), m.id))
    out.append(("Manage Models…", MANAGE))
    return out


class ModelSelect(Select[str]):
    """A Select of model ids; see :func:`model_options`."""

    DEFAULT_CSS = """
    ModelSelect > SelectCurrent #label { text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, core: CoreContext, *, id: str | None = None) -> None:
        self.core = core
        options = model_options(core)
        active = core.settings.settings.active_model_id
        value = active if any(v == active for _l, v in options) else options[0][1]
        self._loaded = options
        super().__init__(options, value=value, allow_blank=False, id=id, compact=True)

    def reload(self) -> None:
        """Rebuild the options (readiness may have changed in the Model Manager)."""
        options = model_options(self.core)
        active = self.core.settings.settings.active_model_id
        target = active if any(v == active for _l, v in options) else options[0][1]
        if options == self._loaded and self.value == target:
            return
        self._loaded = options
        with self.prevent(Select.Changed):
            self.set_options(options)
            # set_options() re-selects the first option; when that is already the value the
            # Select keeps showing the OLD label (e.g. "… · needs setup"): step through
            # another value so the shown label is rebuilt from the new options.
            other = next(v for _l, v in options if v != target)  # "Manage Models…" exists
            self.value = other
            self.value = target
