"""The ring's adaptive spin: its state machine driven directly (sr_spin_plan / sr_spin_learn), and the
wake-up latency estimate the budget is derived from."""

from __future__ import annotations

import ctypes

import pytest

from satchel.bindings import _native

US = 1000
MAX_SKIP = 64  # SR_SPIN_MAX_SKIP
WAKE = 150 * US  # a machine whose futex wake-up is slow (a KVM guest with idle vCPUs)
ADAPTIVE = -1  # no SATCHEL_RING_SPIN_US override


@pytest.fixture
def lib():
    return _native.load()


class Strategy:
    """One direction's state, driven as wait_for drives it."""

    def __init__(self, lib, wake_ns: int = WAKE, override_ns: int = ADAPTIVE) -> None:
        self.lib, self.wake, self.override = lib, wake_ns, override_ns
        self.state = _native.SpinState()

    def plan(self) -> int:
        return self.lib.sr_spin_plan(ctypes.byref(self.state), self.wake, self.override)

    def wait(self, waited_ns: int, *, spin_ends_it: bool) -> bool:
        """One wait taking `waited_ns`; whether it spun."""
        budget = self.plan()
        spun = budget > 0
        ended = spun and spin_ends_it and waited_ns <= budget
        self.lib.sr_spin_learn(ctypes.byref(self.state), self.wake, self.override, spun, ended, waited_ns)
        return spun


def test_budget_derives_from_the_wake_up_latency(lib) -> None:
    assert Strategy(lib, wake_ns=150 * US).plan() == 300 * US
    assert Strategy(lib, wake_ns=1 * US).plan() == 10 * US, "at least 10 us"
    assert Strategy(lib, wake_ns=50_000 * US).plan() == 1000 * US, "at most 1 ms"
    assert Strategy(lib, override_ns=7 * US).plan() == 7 * US, "SATCHEL_RING_SPIN_US is the budget"
    assert Strategy(lib, override_ns=0).plan() == 0, "SATCHEL_RING_SPIN_US=0 never spins"


def test_a_long_run_of_slow_waits_never_locks_spinning_out(lib) -> None:
    """Every wait long (the peer takes 5 ms): spinning backs off, but is tried again at least every
    SR_SPIN_MAX_SKIP + 1 waits, forever; the first wait a spin ends brings it back at once."""
    s = Strategy(lib)
    spun = [s.wait(5_000 * US, spin_ends_it=False) for _ in range(10_000)]
    assert spun[0], "a fresh handle spins"
    runs, run = [], 0
    for did in spun:
        run = 0 if did else run + 1
        runs.append(run)
    assert max(runs) == MAX_SKIP, "never more than SR_SPIN_MAX_SKIP waits in a row without a spin"
    assert sum(spun) >= 10_000 // (MAX_SKIP + 1)
    assert spun[-(MAX_SKIP + 1) :].count(True) >= 1
    # the peer is quick again: the next spin ends its wait, and from then on every wait spins
    while not s.wait(40 * US, spin_ends_it=True):
        pass
    assert all(s.wait(40 * US, spin_ends_it=True) for _ in range(100))


def test_back_off_doubles_after_each_wasted_spin(lib) -> None:
    s = Strategy(lib)
    gaps, gap = [], 0
    for _ in range(400):
        if s.wait(5_000 * US, spin_ends_it=False):
            gaps.append(gap)
            gap = 0
        else:
            gap += 1
    assert gaps[:8] == [0, 1, 2, 4, 8, 16, 32, 64]
    assert set(gaps[8:]) == {MAX_SKIP}


def test_a_short_sleep_brings_spinning_back_before_the_back_off_ends(lib) -> None:
    """A wait that slept but, less the wake-up latency, was within the budget: a spin would have ended
    it, so the next wait spins (the rule that used to lock out compared the whole sleep, wake-up
    included, with the budget, which a slow wake-up never meets)."""
    s = Strategy(lib)
    for _ in range(20):
        s.wait(5_000 * US, spin_ends_it=False)
    assert s.state.skip > 0
    while s.wait(WAKE + 40 * US, spin_ends_it=False):  # spun and failed; then skipping: a short sleep
        pass
    assert s.plan() > 0


def test_wake_up_latency_is_measured(lib) -> None:
    wake = lib.sr_probe_wake_ns()
    assert wake > 0 and lib.sr_wake_ns() == wake
    saved = lib.sr_get_spin_ns()
    try:
        lib.sr_set_spin_ns(-1)
        assert lib.sr_get_spin_ns() == -1
        assert lib.sr_spin_budget_ns() == min(max(2 * wake, 10 * US), 1000 * US)
        lib.sr_set_spin_ns(25 * US)
        assert (lib.sr_get_spin_ns(), lib.sr_spin_budget_ns()) == (25 * US, 25 * US)
    finally:
        lib.sr_set_spin_ns(saved)


def test_a_peer_answering_just_after_the_spin_gave_up_grows_the_budget(lib) -> None:
    """Where a real wake-up costs more than the probe measured, the peer's 120 us turnaround outlasts the
    first budget (2 x 25 us) by less than 4 budgets: the budget doubles until a spin ends the wait, then
    stays about twice the turnaround (the rule of a fixed budget left such a machine sleeping for good)."""
    s = Strategy(lib, wake_ns=25 * US)
    assert s.plan() == 50 * US
    spun = [s.wait(120 * US, spin_ends_it=True) for _ in range(200)]
    assert all(spun), "no wait skipped spinning: the budget grew instead of backing off"
    assert 120 * US < s.plan() <= 1000 * US
    assert s.state.budget_ns >= 200 * US, "it follows twice the typical wait"
    # a peer that turns slow (5 ms): far beyond 4 budgets, so spinning backs off rather than growing
    s.wait(5_000 * US, spin_ends_it=False)
    assert s.state.skip == 1 and s.state.budget_ns <= 1000 * US
