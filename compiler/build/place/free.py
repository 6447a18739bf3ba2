"""A bus's taken addresses, and the free values of its notation's scanned field.

Addresses are only ever taken while a machine is built; `release` exists so that a freed
address is found again. Each range the allocator scans keeps a cursor (every value below
it is taken) and the set of values freed below it, so no scan looks at a taken value twice.
Where the job ends: which address a device gets is the notation's (`base/notations.py`).
"""

from __future__ import annotations

from collections.abc import Iterator

from compiler.base import notations


class FreeRange:
    """The free values of `lo..hi`: below `cursor` only those in `holes`."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.cursor = lo
        self.holes: set[int] = set()

    def first_free(self, taken: TakenAddresses) -> int | None:
        if self.holes:
            return min(self.holes)
        while self.cursor <= self.hi and taken.slot_taken(self.cursor):
            self.cursor += 1
        return self.cursor if self.cursor <= self.hi else None

    def took(self, value: int) -> None:
        self.holes.discard(value)

    def freed(self, value: int) -> None:
        if self.lo <= value < self.cursor:
            self.holes.add(value)


class TakenAddresses:
    """A bus's taken addresses → the id holding each (a reservation's or a device's)."""

    def __init__(self, rules: notations.Notation) -> None:
        self.rules = rules
        self._ids: dict[tuple[int, ...], str] = {}
        self._counts: dict[int, int] = {}  # scanned value → addresses keeping it taken
        self._ranges: dict[tuple[int, int], FreeRange] = {}

    def __contains__(self, addr: tuple[int, ...]) -> bool:
        return addr in self._ids

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        return iter(self._ids)

    def get(self, addr: tuple[int, ...]) -> str | None:
        return self._ids.get(addr)

    def holder_of(self, ident: str) -> bool:
        return ident in self._ids.values()

    def take(self, addr: tuple[int, ...], ident: str) -> None:
        if addr not in self._ids:
            value = self.rules.scan_value(addr)
            if value is not None:
                self._counts[value] = self._counts.get(value, 0) + 1
                for r in self._ranges.values():
                    r.took(value)
        self._ids[addr] = ident

    def release(self, addr: tuple[int, ...]) -> None:
        if self._ids.pop(addr, None) is None:
            return
        value = self.rules.scan_value(addr)
        if value is not None:
            self._counts[value] -= 1
            if not self._counts[value]:
                for r in self._ranges.values():
                    r.freed(value)

    def slot_taken(self, value: int) -> bool:
        """Does an address keep `value` of the scanned field (a PCI slot) from others?"""
        return self._counts.get(value, 0) > 0

    def first_free(self, lo: int, hi: int) -> int | None:
        """The lowest free value of the scanned field in `lo..hi` (`notations.FreePlaces`)."""
        r = self._ranges.get((lo, hi))
        if r is None:
            r = self._ranges[(lo, hi)] = FreeRange(lo, hi)
        return r.first_free(self)
