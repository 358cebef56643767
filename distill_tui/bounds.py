"""The one bound of every generation input, declared once (issue 19.12; issue 20's recipe
absorbs this table).

Each value a person gives the engine - image size, steps, cfg, batch, seed, threads, img2img
strength, LoRA weight, prompt and negative prompt - is one :class:`Bound` row of
:data:`BOUNDS`, named by its engine-protocol field. Every surface asks the same question and
shows the answer as it is, so the same value gets the same decision and the same words from
``distill generate``, ``distill compare``, the Generate form, the settings and, as the last
guard before the engine, the protocol's request validation:

* :func:`problem` - a value (int, float or str) -> the reason it is refused, or None;
* :func:`text_problem` - a form field's text -> the same reason (plus "a whole number" /
  "a number" when the text is not one);
* :func:`refusal` - ``"<what> <value>: <reason>"``, the line the CLI and the protocol print.

The limits (README "Bounds"):

========================  ================================================================
width, height             64 .. 4096 pixels, a multiple of 16 (the engine's latent grid)
steps                     1 .. 200
cfg                       0 .. 50, finite (``inf``/``nan`` are refused)
batch                     1 .. 16 images
seed                      -1 (random) or 0 .. 2^63-1, batch included (image i uses seed + i)
threads                   -1 (auto) or 1 .. 2 x this machine's CPUs
strength (img2img)        0 .. 1
LoRA weight               -10 .. 10, finite
prompt, negative prompt   at most 8,000 bytes of UTF-8 text
========================  ================================================================

Why the prompt limit: stable-diffusion.cpp parses the prompt's attention syntax with a
recursive ``std::regex``; a run of ~26,000 bytes without ``( ) [ ] : \\ B`` overflows an 8 MB
stack and the engine dies of SIGSEGV (measured with the tiny model: ASCII 25,625 bytes ok /
26,250 crash; 3-byte characters 8,000 (24,000 bytes) ok / 9,000 (27,000 bytes) crash; with a
2 MB stack 8,000 bytes already crashed - the engine child now raises its soft stack limit).
Long prompts are slow too: 8,000 bytes of words took ~17 s of CPU to encode on the tiny model
before the first step, 20,000 ~116 s. Why threads: 100,000 engine threads killed the engine
(SIGSEGV; 4,096 ran); more threads than CPUs only slow it down.

No textual or pydantic import (the form imports this at start-up).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

SIZE_STEP = 16
MIN_SIZE = 64
MAX_SIZE = 4096
MAX_STEPS = 200
MAX_CFG = 50.0
MAX_BATCH = 16
#: stable-diffusion.cpp takes an int64 seed; image i of a batch uses seed + i
MAX_SEED = 2**63 - 1
MAX_LORA_WEIGHT = 10.0
#: UTF-8 bytes of a prompt (and of a negative prompt); the engine crashed at ~26,000
MAX_PROMPT_BYTES = 8000
#: GiB, the engine's segmented-execution budget (0: off)
MAX_VRAM_GIB = 1024.0
#: the engine's step caches that skip steps through this binding (it leaves
#: ``max_cached_steps`` at 0, so dbcache / taylorseer / cachedit never skip one: not offered)
CACHE_MODES = ("disabled", "easycache", "ucache", "spectrum")
#: the modes that read a threshold (spectrum has its own forecast parameters)
THRESHOLD_CACHE_MODES = ("easycache", "ucache")


def cpu_count() -> int:
    return os.cpu_count() or 1


def max_threads() -> int:
    """The most engine threads accepted: 2 x this machine's CPUs."""
    return 2 * cpu_count()


Kind = Literal["int", "float", "text"]


@dataclass(frozen=True)
class Bound:
    """One input's rule. ``lo``/``hi``: the range (``hi`` may be computed: threads);
    ``step``: an int must be a multiple of it; ``auto``: a value outside the range that
    means automatic/random (``auto_word`` names it)."""

    name: str  # the engine protocol's field (GenerateRequest / LoadRequest)
    kind: Kind
    lo: float
    hi: float | Callable[[], float]
    auto: int | None = None
    auto_word: str = ""
    step: int = 1
    own_label: str = ""  #: the label of an input with no recipe row (a LoRA's weight)

    @property
    def label(self) -> str:
        """What the form calls it: its ``recipe.PARAMS`` row's form label."""
        from distill_tui.recipe import BY_NAME

        row = BY_NAME.get(self.name)
        return row.short if row is not None else self.own_label

    @property
    def flag(self) -> str:
        """The CLI flag: its ``recipe.PARAMS`` row's ("": none, the positional prompt)."""
        from distill_tui.recipe import BY_NAME

        row = BY_NAME.get(self.name)
        return row.flag if row is not None else ""

    @property
    def high(self) -> float:
        return self.hi() if callable(self.hi) else self.hi

    def _range(self) -> str:
        lo, hi = self.lo, self.high
        if self.kind == "float":
            text = f"between {lo:g} and {hi:g}"
        else:
            text = f"between {int(lo)} and {int(hi)}"
        if self.name == "n_threads":
            text += f" (2 × this machine's {cpu_count()} CPUs)"
        if self.auto is not None:
            text = f"{self.auto} ({self.auto_word}) or {text}"
        return text

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (the words every surface shows), or None."""
        if self.name == "seed":
            return seed_problem(value)
        if self.kind == "text":
            n = len(str(value).encode("utf-8", "surrogatepass"))
            if n > self.high:
                return (
                    f"too long: {n:,} bytes of UTF-8, at most {int(self.high):,} "
                    "(longer prompts crash the engine)"
                )
            return None
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"a whole number {self._range()}"
            if self.auto is not None and value == self.auto:
                return None
            if value < self.lo or value > self.high:
                return self._range()
            if self.step > 1 and value % self.step:
                lo = value - value % self.step
                return (
                    f"a multiple of {self.step} (try {max(lo, int(self.lo))} or {lo + self.step})"
                )
            return None
        try:
            v = float(value)
        except (TypeError, ValueError):
            return f"a number {self._range()}"
        if isinstance(value, bool) or not math.isfinite(v) or v < self.lo or v > self.high:
            return self._range()
        return None

    def text_problem(self, text: str) -> str | None:
        """The same rule for a form field's text."""
        t = text.strip()
        if self.kind == "text":
            return self.problem(text)
        if not t:
            return "required"
        if self.kind == "int":
            body = t[1:] if t[:1] in "+-" else t
            if not body.isdigit():
                return "a whole number"
            return self.problem(int(t))
        try:
            float(t)
        except ValueError:
            return "a number"
        return self.problem(t)


BOUNDS: dict[str, Bound] = {
    b.name: b
    for b in (
        Bound("width", "int", MIN_SIZE, MAX_SIZE, step=SIZE_STEP),
        Bound("height", "int", MIN_SIZE, MAX_SIZE, step=SIZE_STEP),
        Bound("steps", "int", 1, MAX_STEPS),
        Bound("cfg_scale", "float", 0.0, MAX_CFG),
        Bound("batch_count", "int", 1, MAX_BATCH),
        Bound("seed", "int", 0, MAX_SEED, auto=-1, auto_word="random"),
        Bound("n_threads", "int", 1, max_threads, -1, "auto"),
        Bound("strength", "float", 0.0, 1.0),
        Bound("lora_weight", "float", -MAX_LORA_WEIGHT, MAX_LORA_WEIGHT, own_label="LoRA weight"),
        Bound("prompt", "text", 0, MAX_PROMPT_BYTES),
        Bound("negative_prompt", "text", 0, MAX_PROMPT_BYTES),
        # the engine knobs of issue 20.4 (0 max VRAM: off; flow shift / threshold: the
        # protocol's None is the engine's default and is not checked)
        Bound("max_vram", "float", 0.0, MAX_VRAM_GIB),
        Bound("cache_threshold", "float", 0.0, 10.0),
        Bound("flow_shift", "float", 0.1, 100.0),
    )
}


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` of input ``name`` is refused, or None."""
    return BOUNDS[name].problem(value)


def text_problem(name: str, text: str) -> str | None:
    """Why a form field's ``text`` for input ``name`` is refused, or None."""
    return BOUNDS[name].text_problem(text)


def shown(name: str, value: Any) -> str:
    """A value as a refusal line shows it (a prompt by its size, not its text)."""
    if BOUNDS[name].kind == "text":
        return f"({len(str(value)):,} characters)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def refusal(name: str, value: Any, reason: str, what: str | None = None) -> str:
    """``"<what> <value>: <reason>"``: ``what`` defaults to the CLI flag (or the label)."""
    b = BOUNDS[name]
    return f"{what or b.flag or b.label.lower()} {shown(name, value)}: {reason}"


def seed_problem(seed: int, batch_count: int = 1) -> str | None:
    """Why ``seed`` cannot be sent to the engine, or None (-1 = random). Image i of a batch
    uses seed + i, so the last one must fit too (a seed beyond int64 ran as 0 but was
    recorded as asked)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < -1:
        return "a whole number ≥ 0, or -1 for random"
    if seed + max(batch_count, 1) - 1 > MAX_SEED:
        return f"too large (the engine takes seeds up to 2^63-1 = {MAX_SEED}, batch included)"
    return None


def check_all(values: dict[str, Any]) -> tuple[str, Any, str] | None:
    """The first refused (name, value, reason) of ``values`` (names of :data:`BOUNDS`; the
    seed is checked with the batch), or None."""
    for name, value in values.items():
        if name == "seed":
            reason = seed_problem(value, values.get("batch_count", 1) or 1)
        else:
            reason = problem(name, value)
        if reason is not None:
            return name, value, reason
    return None
