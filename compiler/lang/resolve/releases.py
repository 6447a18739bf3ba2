"""QEMU releases as the language names them: `since "8.0"` (a machine version, a device type
or a prop appears) and `changed "10.0" = VALUE` (a prop's default changes for every machine
version). Ends at a checked release string; ordering is `model.release_key`'s.
"""

from __future__ import annotations

from compiler.base.diagnostics import Collector
from compiler.base.source import Span
from compiler.lang import model


def release(diags: Collector, text: str, span: Span, keyword: str) -> str:
    """A QEMU release as a `since` or `changed` names it ("8.0"), or "" after reporting a
    malformed one (E1730)."""
    if model.release_key(text) is None:
        diags.error("E1730", f"`{keyword}` must name a QEMU release, not `{text}`", span,
                    help=f'write MAJOR.MINOR, the first release it holds for: `{keyword} '
                    '"8.0"`')
        return ""
    return text


def older(a: str, b: str) -> bool:
    """Is release `a` older than `b`? Both checked (`release`); "" is never older."""
    ka, kb = model.release_key(a), model.release_key(b)
    return ka is not None and kb is not None and ka < kb
