"""The instance language, expanded: props written `NAME = (EXPR)` are computed when the
machine is built, from its options and the spec's facts (tests/lang/good/
prop-expression-ok.machine; a wrong-typed one is E0173); `for I in LO..HI` stands for one
instance per value (tests/lang/good/instance-loop-ok.machine; with `at`, E0174)."""

from __future__ import annotations

from pathlib import Path

from compiler import driver
from compiler.build import expand
from compiler.lang import expr

CASE = Path(__file__).resolve().parent / "lang" / "good" / "prop-expression-ok.machine"


def gic_props(options: dict[str, expr.Scalar], count: int) -> dict[str, object]:
    library = driver.lint([CASE])
    m = library.machines["t-prop-expression"]
    env = expr.Env({**{n: o.default for n, o in m.options.items()}, **options},
                   facts={"cpus.count": count})
    (gic,) = expand.machine_devices(m, env)
    return dict(gic.props)


def test_props_follow_options_and_facts() -> None:
    assert gic_props({}, 4) == {"num-cpu": 4, "has-security-extensions": False,
                                "revision": 3}
    assert gic_props({"secure": True, "gic-version": 2}, 1) == {
        "num-cpu": 1, "has-security-extensions": True, "revision": 2}


LOOP = Path(__file__).resolve().parent / "lang" / "good" / "instance-loop-ok.machine"


def test_a_loop_stands_for_one_instance_per_value() -> None:
    """`mmio: t-mmio for i in 0..31 { bus virtio "virtio-mmio-bus.{i}" }`: 32 devices
    `mmio0`…`mmio31`, each with its numbered bus; its `when` applies to each."""
    m = driver.lint([LOOP]).machines["t-instance-loop"]
    devices = expand.machine_devices(m, expr.Env({"mmio": True}))
    assert [d.id for d in devices] == [f"mmio{k}" for k in range(32)]
    assert [b.name for d in devices for b in d.buses] == [
        f"virtio-mmio-bus.{k}" for k in range(32)]
    assert expand.machine_devices(m, expr.Env({"mmio": False})) == ()
