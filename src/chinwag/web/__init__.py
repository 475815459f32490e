"""The web client's files (``static/``), shipped as package data and served by the HTTP listener."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""The directory the HTTP listener serves at ``/``: index.html, the CSS and the ES modules."""

__all__ = ["STATIC_DIR"]
