"""Diagnostics for CI systems: SARIF 2.1.0 (code scanning) and GitHub Actions workflow
annotation lines. The same `Diagnostic`s as the text and JSON renderers: rule ids are the
codes, each rule's help is the code's explanation from the diagnostics registry, labels
(the other places involved) are related locations. Only the standard library: a command
asked for one of these formats pays for nothing more."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from urllib.parse import quote

from compiler import __version__
from compiler.base.diagnostics import Diagnostic
from compiler.base.source import Span

FORMATS = ("sarif", "github")
SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


_NOT_FROM_LINT = re.compile(r"^\*not from `lint`\*: ")


def _plain(markdown: str) -> str:
    """An explanation as plain text: links become their labels, the registry's own remark
    (which command does not report it) goes."""
    return _LINK.sub(lambda m: m.group(1), _NOT_FROM_LINT.sub("", markdown)).replace("*", "")


def explanations() -> dict[str, str]:
    """code → its explanation (Markdown) from the registry, or {} where it is not shipped."""
    from compiler.present import reference

    return {c.code: c.meaning for c in reference.codes()}


def _uri(path: str) -> str:
    return quote(PurePath(path).as_posix(), safe="/:@!$&'()*+,;=-._~")


def _region(span: Span) -> dict[str, int]:
    region = {"startLine": max(1, span.line), "startColumn": max(1, span.col)}
    if span.end > span.start:
        region |= {"endLine": max(1, span.end_line), "endColumn": max(1, span.end_col)}
    return region


def _location(span: Span) -> dict[str, object] | None:
    """A physical location, or None for a place that is no file (`<command line>`)."""
    if span.path.startswith("<"):
        return None
    physical: dict[str, object] = {"artifactLocation": {"uri": _uri(span.path)}}
    if span.source.text:
        physical["region"] = _region(span)
    return {"physicalLocation": physical}


def _full_message(d: Diagnostic) -> str:
    lines = [d.message, *(f"note: {n}" for n in d.notes)]
    if d.help:
        lines.append(f"help: {d.help}")
    return "\n".join(lines)


def sarif(diagnostics: Sequence[Diagnostic], command: Sequence[str],
          explained: Mapping[str, str] | None = None) -> str:
    """One SARIF 2.1.0 log with one run; its rules are the codes that occur, in code order."""
    explained = explanations() if explained is None else explained
    codes = sorted({d.code for d in diagnostics})
    rules = []
    for code in codes:
        text = explained.get(code, "")
        rule: dict[str, object] = {"id": code, "name": code}
        if text:
            plain = _plain(text)
            rule |= {"shortDescription": {"text": plain.split("; ")[0][:200]},
                     "fullDescription": {"text": plain},
                     "help": {"text": f"{code}: {plain} (mschema explain {code})",
                              "markdown": f"**{code}**: {_NOT_FROM_LINT.sub('', text)}\n\n"
                              f"`mschema explain {code}` "
                              "shows a case that triggers it."}}
        rules.append(rule)
    results = []
    for d in diagnostics:
        result: dict[str, object] = {
            "ruleId": d.code, "ruleIndex": codes.index(d.code),
            "level": "error" if d.severity == "error" else "warning",
            "message": {"text": _full_message(d)},
        }
        where = _location(d.span)
        if where is not None:
            result["locations"] = [where]
        related = []
        for i, label in enumerate(d.labels):
            place = _location(label.span)
            if place is not None:
                related.append({"id": i, **place, "message": {"text": label.message}})
        if related:
            result["relatedLocations"] = related
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "mschema", "version": __version__, "rules": rules}},
            "invocations": [{"commandLine": " ".join(["mschema", *command]),
                             "executionSuccessful": not any(
                                 d.severity == "error" for d in diagnostics)}],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, indent=2, sort_keys=False) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(diagnostics: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands, one line per diagnostic: `::error file=…,line=…,
    col=…,endLine=…,endColumn=…,title=CODE::MESSAGE` (notes and help on further lines of the
    message; labels as `note:` lines with their places)."""
    out = []
    for d in diagnostics:
        props = []
        if not d.span.path.startswith("<"):
            props.append(f"file={_escape_property(PurePath(d.span.path).as_posix())}")
            if d.span.source.text:
                region = _region(d.span)
                props += [f"line={region['startLine']}", f"col={region['startColumn']}"]
                if "endLine" in region:
                    props += [f"endLine={region['endLine']}",
                              f"endColumn={region['endColumn']}"]
        props.append(f"title={_escape_property(f'mschema {d.code}')}")
        message = _full_message(d)
        for label in d.labels:
            message += f"\nnote: {label.span}: {label.message}"
        kind = "error" if d.severity == "error" else "warning"
        out.append(f"::{kind} {','.join(props)}::{_escape_data(f'[{d.code}] {message}')}\n")
    return "".join(out)


def render(fmt: str, diagnostics: Sequence[Diagnostic], command: Sequence[str]) -> str:
    return sarif(diagnostics, command) if fmt == "sarif" else github(diagnostics)
