"""An inline image pane: one image (or a batch strip) fitted to the pane, and a caption.

The renderer comes from ``app.image_renderer`` ("auto", "sixel", "kitty", "halfcell",
"unicode"); "auto" uses whatever textual-image detected at import (see
``app.prepare_image_support``). Files are decoded off the event loop; a file that no longer
exists is shown as "missing", never as an error.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Middle, Vertical
from textual.widget import Widget
from textual.widgets import Static

from distill_tui import image_probe
from distill_tui.textsafe import escape_markup

if TYPE_CHECKING:
    from PIL import Image as PILImage

RENDERERS: tuple[str, ...] = ("auto", "sixel", "kitty", "halfcell", "unicode")
#: seconds after the pane appears that textual-image is imported on a thread (see image_probe)
PREWARM_AFTER = 0.5


def image_widget_class(renderer: str) -> type[Widget]:
    """The textual-image widget class for a renderer name (unknown names: auto)."""
    tw = image_probe.widget_module()

    classes: dict[str, Any] = {
        "sixel": tw.SixelImage,
        "kitty": tw.TGPImage,
        "halfcell": tw.HalfcellImage,
        "unicode": tw.UnicodeImage,
    }
    return classes.get(renderer, tw.Image)


@dataclass
class Frame:
    """One image of the strip: a file, or in-memory PNG bytes (a preview)."""

    path: str | None = None
    data: bytes | None = None
    caption: str = ""
    label: str = ""  # how to name the file when it is missing (default: the path)


def load_image(frame: Frame) -> PILImage.Image | None:
    """Decode a frame fully (call off the loop). None when the file is missing/unreadable."""
    from PIL import Image as PILImage  # not before the first paint (~30 ms)

    try:
        src: Path | io.BytesIO = (
            io.BytesIO(frame.data) if frame.data is not None else Path(frame.path or "")
        )
        with PILImage.open(src) as im:
            im.load()
            return im.convert("RGB") if im.mode not in ("RGB", "RGBA") else im.copy()
    except (OSError, ValueError):
        return None


class ImageView(Vertical, can_focus=True):
    """Shows ``frames[index]`` fitted into the pane; ``[`` / ``]`` move through a batch."""

    DEFAULT_CSS = """
    ImageView { height: 1fr; }
    ImageView > #image-pane { height: 1fr; }
    ImageView > #image-pane Middle { height: 1fr; }
    ImageView #image-widget { width: auto; height: auto; }
    ImageView #image-placeholder { color: $text-muted; width: 100%; text-align: center; }
    ImageView > #image-caption { height: auto; max-height: 6; color: $text-muted; }
    ImageView:focus > #image-caption { color: $text; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "[",
            "previous_image",
            "Prev image",
            id="image.previous",
            tooltip="Previous image of the batch",
        ),
        Binding(
            "]", "next_image", "Next image", id="image.next", tooltip="Next image of the batch"
        ),
    ]

    def __init__(
        self,
        placeholder: str = "No image yet",
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.placeholder = placeholder
        self.frames: list[Frame] = []
        self.index = 0
        self.renderer = ""
        self._image: Widget | None = None
        self._seq = 0
        self.last_paint_seconds: float | None = None
        self.painted_at: float | None = None
        self.shown: PILImage.Image | None = None
        self.shown_frame: Frame | None = None  # the frame whose image is on screen now
        self.missing = False

    def compose(self) -> ComposeResult:
        with Vertical(id="image-pane"), Middle(), Center():
            yield Static(self.placeholder, id="image-placeholder")
        yield Static("", id="image-caption")

    def on_mount(self) -> None:
        self.renderer = self._wanted_renderer()
        # textual-image (numpy, Pillow) loads after the first paint, before the first image
        self.set_timer(PREWARM_AFTER, self._prewarm)

    @work(thread=True, group="image-prewarm", exit_on_error=False)
    def _prewarm(self) -> None:
        image_probe.widget_module()

    def _wanted_renderer(self) -> str:
        wanted = getattr(self.app, "image_renderer", None) or "auto"
        if wanted == "auto" and self.app.is_web:
            # textual-serve: no terminal was probed (textual-image's automatic choice is the
            # monochrome "unicode" shades); the browser draws every cell colour
            return "halfcell"
        return wanted

    # ---- public API ------------------------------------------------------------------
    def set_frames(self, frames: list[Frame], index: int = 0) -> None:
        self.frames = list(frames)
        self.index = max(0, min(index, len(frames) - 1)) if frames else 0
        self._show_current()

    def show_preview(self, data: bytes, caption: str) -> None:
        """Draw a small in-memory PNG (a sampling preview) at once, on the loop."""
        frame = Frame(data=data, caption=caption)
        self.frames, self.index = [frame], 0
        self._seq += 1
        im = load_image(frame)
        self._apply(im, frame, self._seq, time.perf_counter())

    def clear(self, message: str | None = None) -> None:
        self.frames, self.index = [], 0
        if message is not None:
            self.placeholder = message
        self._seq += 1
        self._apply(None, None, self._seq, time.perf_counter())

    def set_caption(self, caption: str) -> None:
        if self.frames:
            self.frames[self.index].caption = caption
        self._update_caption()

    def refresh_renderer(self) -> None:
        """Rebuild the image widget when ``app.image_renderer`` changed."""
        if self._wanted_renderer() != self.renderer:
            self.renderer = self._wanted_renderer()
            if self._image is not None:
                self._image.remove()
                self._image = None
            self._show_current()

    @property
    def current(self) -> Frame | None:
        return self.frames[self.index] if self.frames else None

    # ---- actions ---------------------------------------------------------------------
    def action_previous_image(self) -> None:
        if len(self.frames) > 1:
            self.index = (self.index - 1) % len(self.frames)
            self._show_current()

    def action_next_image(self) -> None:
        if len(self.frames) > 1:
            self.index = (self.index + 1) % len(self.frames)
            self._show_current()

    # ---- internals -------------------------------------------------------------------
    def _show_current(self) -> None:
        self._seq += 1
        frame = self.current
        if frame is None:
            self._apply(None, None, self._seq, time.perf_counter())
            return
        self._load(frame, self._seq, time.perf_counter())

    @work(group="image-decode", exclusive=True, exit_on_error=False)
    async def _load(self, frame: Frame, seq: int, t0: float) -> None:
        im = await asyncio.to_thread(load_image, frame)
        self._apply(im, frame, seq, t0)

    def _apply(self, im: PILImage.Image | None, frame: Frame | None, seq: int, t0: float) -> None:
        if seq != self._seq or not self.is_mounted:
            return
        center = self.query_one("#image-pane Center")
        placeholder = self.query_one("#image-placeholder", Static)
        self.shown = im
        self.shown_frame = frame
        self.missing = frame is not None and im is None
        if im is None:
            if self._image is not None:
                self._image.display = False
            if frame is None:
                placeholder.update(self.placeholder)
            else:
                placeholder.update(
                    f"[b]missing[/b]: {escape_markup(frame.label or frame.path or 'preview')}"
                )
            placeholder.display = True
        else:
            placeholder.display = False
            if self._image is None:
                cls = image_widget_class(self.renderer or self._wanted_renderer())
                self._image = cls(im, id="image-widget")  # type: ignore[call-arg,arg-type]
                center.mount(self._image)
            else:
                self._image.image = im  # type: ignore[attr-defined]
                self._image.display = True
        self._update_caption()

        def painted() -> None:
            self.painted_at = time.perf_counter()
            self.last_paint_seconds = self.painted_at - t0

        self.call_after_refresh(painted)

    def _update_caption(self) -> None:
        frame = self.current
        text = frame.caption if frame else ""
        if len(self.frames) > 1:
            text = f"[b]{self.index + 1}/{len(self.frames)}[/b] (\\[ ] to move)  " + text
        self.query_one("#image-caption", Static).update(text)
