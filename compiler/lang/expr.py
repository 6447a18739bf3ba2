"""Typed condition expressions (`when …`, `check …`), built by `resolve`, evaluated by
`expand` against option values and spec facts, and by `lint` over every option value
(three-valued, so facts unknown at lint time never make a rule look dead).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Union

import attrs

from compiler.base.source import Span

Scalar = Union[bool, int, str]
# Facts about the loose spec that conditions may read; `count(KIND)` counts its items.
SPEC_FACTS = ("cpus.count", "cpus.maxcpus", "cpus.sockets", "cpus.cores", "cpus.threads",
              "memory", "hotplug-slots", "cpus.model")
# the facts that are strings ("" when the spec leaves them out); the others are integers
STRING_FACTS = ("cpus.model",)
SPEC_KINDS = ("disk", "cdrom", "nic", "serial", "graphics", "usb", "rng", "device",
              "filesystem", "pflash")

_span = attrs.field(eq=False, repr=False)


@attrs.frozen
class Const:
    value: Scalar
    span: Span = _span


@attrs.frozen
class Option:
    name: str
    span: Span = _span


@attrs.frozen
class Fact:
    name: str
    span: Span = _span


@attrs.frozen
class Count:
    kind: str
    span: Span = _span


@attrs.frozen
class Not:
    operand: Expr
    span: Span = _span


@attrs.frozen
class And:
    operands: tuple[Expr, ...]
    span: Span = _span


@attrs.frozen
class Or:
    operands: tuple[Expr, ...]
    span: Span = _span


@attrs.frozen
class Cmp:
    left: Expr
    op: str
    right: Expr
    span: Span = _span


Expr = Union[Const, Option, Fact, Count, Not, And, Or, Cmp]
TRUE = Const(True, span=None)  # type: ignore[arg-type]


@attrs.frozen
class Env:
    options: Mapping[str, Scalar]
    facts: Mapping[str, Scalar] = attrs.field(factory=dict)
    counts: Mapping[str, int] = attrs.field(factory=dict)


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def evaluate(expr: Expr, env: Env) -> Scalar:
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Option):
        return env.options[expr.name]
    if isinstance(expr, Fact):
        return env.facts.get(expr.name, "" if expr.name in STRING_FACTS else 0)
    if isinstance(expr, Count):
        return env.counts.get(expr.kind, 0)
    if isinstance(expr, Not):
        return not evaluate(expr.operand, env)
    if isinstance(expr, And):
        return all(evaluate(e, env) for e in expr.operands)
    if isinstance(expr, Or):
        return any(evaluate(e, env) for e in expr.operands)
    return bool(_OPS[expr.op](evaluate(expr.left, env), evaluate(expr.right, env)))


def holds(expr: Expr | None, env: Env) -> bool:
    return expr is None or bool(evaluate(expr, env))


# ---- static analysis for lint --------------------------------------------------------------
UNKNOWN = None


def evaluate3(expr: Expr, options: Mapping[str, Scalar]) -> Scalar | None:
    """Kleene evaluation: facts and counts are unknown (None) at lint time."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Option):
        return options.get(expr.name, UNKNOWN)
    if isinstance(expr, (Fact, Count)):
        return UNKNOWN
    if isinstance(expr, Not):
        v = evaluate3(expr.operand, options)
        return UNKNOWN if v is None else not v
    if isinstance(expr, And):
        vals = [evaluate3(e, options) for e in expr.operands]
        if any(v is not None and not v for v in vals):
            return False
        return UNKNOWN if any(v is None for v in vals) else True
    if isinstance(expr, Or):
        vals = [evaluate3(e, options) for e in expr.operands]
        if any(v is not None and v for v in vals):
            return True
        return UNKNOWN if any(v is None for v in vals) else False
    left, right = evaluate3(expr.left, options), evaluate3(expr.right, options)
    if left is None or right is None:
        return UNKNOWN
    return bool(_OPS[expr.op](left, right))


def options_in(expr: Expr) -> Iterator[str]:
    if isinstance(expr, Option):
        yield expr.name
    elif isinstance(expr, Not):
        yield from options_in(expr.operand)
    elif isinstance(expr, (And, Or)):
        for e in expr.operands:
            yield from options_in(e)
    elif isinstance(expr, Cmp):
        yield from options_in(expr.left)
        yield from options_in(expr.right)


def facts_in(expr: Expr) -> Iterator[str]:
    """The spec facts (`cpus.count`) and counts (`count(disk)`) `expr` reads."""
    if isinstance(expr, Fact):
        yield expr.name
    elif isinstance(expr, Count):
        yield f"count({expr.kind})"
    elif isinstance(expr, Not):
        yield from facts_in(expr.operand)
    elif isinstance(expr, (And, Or)):
        for e in expr.operands:
            yield from facts_in(e)
    elif isinstance(expr, Cmp):
        yield from facts_in(expr.left)
        yield from facts_in(expr.right)


def can_hold(expr: Expr, domains: Mapping[str, tuple[Scalar, ...]]) -> bool:
    """Is there any assignment of the finite options in `expr` that may make it true?"""
    names = sorted(set(options_in(expr)) & set(domains))
    for values in itertools.product(*(domains[n] for n in names)):
        if evaluate3(expr, dict(zip(names, values, strict=True))) is not False:
            return True
    return False


def conjoin(a: Expr | None, b: Expr | None) -> Expr | None:
    """Enclosing conditions flow into nested ones (a device inside a `when` block)."""
    if a is None:
        return b
    if b is None:
        return a
    return And((a, b), span=b.span)
