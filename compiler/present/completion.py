"""Shell completion through argcomplete: command names and options come from the argparse
parser itself; machine names, a machine's option names (`--option K=`), diagnostic codes
and device types from the shipped library. Imported only when the shell asks
(`_ARGCOMPLETE` in the environment), so no other run pays for argcomplete.

Activate it once per shell: `eval "$(register-python-argcomplete mschema)"` (bash, zsh;
argcomplete's `activate-global-python-argcomplete` works too)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

Completer = Callable[..., Iterable[str]]


def machines(**_kwargs: object) -> list[str]:
    from compiler.lang import resolve

    return resolve.load_library().names()


def _machine_of(parsed: argparse.Namespace) -> str | None:
    for name in ("machine", "target", "a"):
        value = getattr(parsed, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def options(prefix: str = "", parsed_args: argparse.Namespace | None = None,
            **_kwargs: object) -> list[str]:
    """`K=` for each option of the machine named before (`mschema show q35 --option s<TAB>`),
    then `K=VALUE` for the values of a finite type once `K=` is typed."""
    from compiler.lang import resolve

    name = _machine_of(parsed_args) if parsed_args is not None else None
    schema = resolve.load_library().machine(name) if name else None
    if schema is None:
        return []
    key, sep, _value = prefix.partition("=")
    if not sep:
        return [f"{k}=" for k in sorted(schema.options)]
    spec = schema.options.get(key)
    domain = spec.type.domain() if spec is not None else None
    if domain is None:
        return []
    words = {True: "on", False: "off"}
    return [f"{key}={words.get(v, v) if isinstance(v, bool) else v}" for v in domain]


def topics(**_kwargs: object) -> list[str]:
    """What `explain` takes: diagnostic codes, device types and machine names."""
    from compiler.lang import resolve
    from compiler.present import reference

    library = resolve.load_library()
    return [*(c.code for c in reference.codes()), *sorted(library.devices),
            *library.names()]


# argument dest → its completer, in every subcommand that has it
COMPLETERS: dict[str, Completer] = {
    "machine": machines, "a": machines, "b": machines, "target": machines,
    "option": options, "code": topics,
}


def attach(parser: argparse.ArgumentParser) -> None:
    """Give every argument its completer (argcomplete reads `action.completer`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                attach(sub)
        elif action.dest in COMPLETERS:
            action.completer = COMPLETERS[action.dest]  # type: ignore[attr-defined]


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell and exit (argcomplete's protocol); returns only when the shell did
    not ask."""
    import argcomplete

    attach(parser)
    # files stay completable for SPEC/BLOB/PATH arguments (argcomplete's default)
    argcomplete.autocomplete(parser)
