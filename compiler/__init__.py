"""mschema: a declarative machine-schema compiler for QEMU virtual hardware.

Stages, in order (imports flow forward only): source → diagnostics → parse → resolve →
schema_checks → expand → … → emit; `driver` strings them together and `cli` is the command.
"""

__version__ = "0.1.0"
