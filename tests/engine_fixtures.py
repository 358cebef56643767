"""Fixtures for the tiny synthetic FLUX.2 Klein model set (filled in by the engine work)."""
