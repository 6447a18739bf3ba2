"""The jinja2 templates of `compiler.present` (dot, mermaid, HTML, the reference's Markdown)."""

from pathlib import Path

DIRECTORY = str(Path(__file__).resolve().parent)
