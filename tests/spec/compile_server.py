"""`tests/lang/lint_server.py`, warmed up for `compile` as well.

Used by `tests/test_spec_corpus.py`: the same protocol (one JSON request per line on stdin,
`{"id", "argv"}`; one reply per run on stdout), the same forked children that each run
`python -m compiler ARGV...` from scratch. Only the warm-up differs: the modules `compile`
imports (lazily, in the CLI) are imported here once; no spec, schema or stdlib file is read,
so each child still does all of that work itself.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


def main() -> None:
    sys.path[0] = os.getcwd()  # the script's directory → the current one, as with `-m`
    import tomllib  # noqa: F401


    for optional in ("compiler.build.validate", "compiler.spec.precise", "compiler.base.units"):
        try:
            importlib.import_module(optional)
        except ImportError:
            pass
    here = Path(__file__).resolve().parent.parent / "lang" / "lint_server.py"
    spec = importlib.util.spec_from_file_location("lint_server", here)
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    server.main()


if __name__ == "__main__":
    main()
