"""distill_tui: a keyboard-first terminal studio for local image generation."""

__version__ = "0.1.0"
