"""The primary's commit clock: when each record was committed, in bounded memory, for
the lag of replicas however far behind they are."""

from __future__ import annotations

import random

from vectorizer.replication.primary import CommitClock


def test_dates_are_never_late_and_close_to_the_records_age() -> None:
    """An hour of commits (at random gaps, with idle stretches): bounded points, every
    record dated no later than it was committed, and early by at most the clock's
    resolution or its precision times the record's age."""
    rng = random.Random(7)
    clock = CommitClock()
    start = t = 1_000_000.0
    truth: list[float] = []  # truth[seq - 1]: when record seq was committed
    while t < start + 3600:
        t += rng.expovariate(200) if rng.random() > 0.001 else rng.uniform(5, 60)
        truth.append(t)
        clock.committed(len(truth), t)
    now = truth[-1]
    assert len(clock) <= CommitClock.MAX_POINTS
    for seq in [1, 2, *rng.sample(range(1, len(truth) + 1), 5000), len(truth)]:
        dated, true = clock.committed_at(seq), truth[seq - 1]
        age = now - true
        assert dated <= true, seq
        assert true - dated <= max(CommitClock.RESOLUTION_S, CommitClock.PRECISION * age), (
            seq,
            true - dated,
            age,
        )


def test_recent_records_keep_millisecond_dates_beside_an_old_backlog() -> None:
    """A replica gone for a day must not blur the lag of one a few milliseconds behind."""
    clock = CommitClock()
    t = 0.0
    seq = 0
    while t < 86_400:
        seq += 1
        t += 0.5 if t < 86_000 else 0.0005
        clock.committed(seq, t)
    assert len(clock) <= CommitClock.MAX_POINTS
    assert t - clock.committed_at(seq - 10) < 0.01
    day_old = clock.committed_at(1)
    assert day_old <= 0.5 and t - day_old >= 86_000


def test_records_before_the_clock_started_are_dated_at_its_start() -> None:
    clock = CommitClock()
    clock.committed(50, clock.committed_at(0) + 10)
    assert clock.committed_at(49) == clock.committed_at(1)  # the start: an age at least
    assert clock.committed_at(49) < clock.committed_at(50)
