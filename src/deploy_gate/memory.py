"""Whether a model keeps growing as it serves: the resident memory of its process over the
many calls of the latency measurements, and over a second span of calls when the first grew.

A model that keeps something of every call (a list of the inputs it saw, a cache without a
bound, a handle never closed) answers every check right and runs its serving process out of
memory within minutes or hours: one that kept 1 MiB per call grew by 1.6 GiB during a gate
run, stayed under the model process's memory limit, and was approved.

No verdict here is a wall-clock figure: growth is in bytes and calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MiB = 2**20
#: Growth over the latency measurements below which the process is steady: allocator arenas,
#: caches filled on first use and the inputs the timing loops keep in the model process grow
#: by a few MiB (1-3 MiB on the models of the test suite, tens on wide data).
SUSPECT_GROWTH = 64 * MiB
#: A growth past ``SUSPECT_GROWTH`` is a leak when a second span of calls grows as well: by at
#: least this share of what the first span's rate per call predicts, and by ``CONFIRM_FLOOR``.
#: A bounded cache that filled during the first span, or inputs kept once, do not grow again.
#: The first span counts its timed calls only (not the warm-up and calibration calls around
#: them), so its rate runs high: a model keeping 100 KiB per call measured 197 KiB per call
#: there and grew at half that rate in the second span.
CONFIRM_SHARE = 0.25
CONFIRM_FLOOR = 4 * MiB


def resident_bytes(pid: int) -> int | None:
    """The resident memory of process ``pid`` in bytes, from ``/proc/<pid>/statm`` (Linux);
    None where there is no ``/proc`` or the process is gone.

    Read by hand: psutil would add a compiled dependency for this one number, which on Linux
    it reads from the same file.
    """
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def format_mib(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


@dataclass(frozen=True)
class MemoryGrowth:
    """Resident memory of a model process before and after ``calls`` calls, and, when that
    grew past ``SUSPECT_GROWTH``, the growth over ``more_calls`` calls made afterwards."""

    before: int
    after: int
    calls: int
    more_calls: int = 0
    more_growth: int = 0

    @property
    def growth(self) -> int:
        return self.after - self.before

    @property
    def suspect(self) -> bool:
        """Grew enough over the first span to be looked at again."""
        return self.calls > 0 and self.growth >= SUSPECT_GROWTH

    @property
    def per_call(self) -> float:
        return self.growth / self.calls if self.calls else 0.0

    def calls_to_confirm(self, in_time: int) -> int:
        """How many calls the second span makes: as many as fit in the time it is given
        (``in_time`` calls), at most as many as the first span made, and few enough that the
        first span's rate predicts at most twice ``SUSPECT_GROWTH`` (a leak is seen well before
        it meets the memory limit)."""
        bounded = int(2 * SUSPECT_GROWTH / self.per_call) if self.per_call > 0 else self.calls
        return max(1, min(in_time, self.calls, bounded))

    @property
    def leaking(self) -> bool:
        """Grew past ``SUSPECT_GROWTH`` and kept growing at a like rate over the second span."""
        if not self.suspect or self.more_calls <= 0:
            return False
        expected = self.per_call * self.more_calls
        return self.more_growth >= max(CONFIRM_SHARE * expected, CONFIRM_FLOOR)

    def message(self) -> str:
        first = (
            f"the model process grew from {format_mib(self.before)} to "
            f"{format_mib(self.after)} over {self.calls:,} calls of the latency measurements "
            f"({self.per_call / 1024:,.1f} KiB per call)"
        )
        if not self.suspect:
            return f"{first}: steady (a growth under {format_mib(SUSPECT_GROWTH)})"
        second = (
            f"then by {format_mib(self.more_growth)} over {self.more_calls:,} calls more "
            f"(a like rate predicts {format_mib(self.per_call * self.more_calls)})"
        )
        if self.leaking:
            return (
                f"{first}, {second}: a model that keeps something of every call (the inputs it "
                "saw, a cache without a bound) runs its serving process out of memory"
            )
        return f"{first}, {second}: it stopped growing (a cache filled once), steady"
