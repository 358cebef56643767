"""Fixtures for the fake Hugging Face Hub (filled in by the downloads work)."""
