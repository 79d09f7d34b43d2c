"""The suite's own schedule (tests/conftest.py): the long tests start at once on every worker."""

from __future__ import annotations

import pytest

from tests.conftest import spread_first


@pytest.mark.parametrize("workers", [2, 3, 4, 6])
def test_each_workers_share_begins_with_its_part_of_the_long_tests(workers: int) -> None:
    items = list(range(50))
    long = {7, 8, 20, 33, 34, 35, 49}
    order = spread_first(items, workers, lambda item: item in long)
    assert sorted(order) == items, "every test once"
    shares, left, start = [], len(order), 0
    for worker in range(workers):  # cut as xdist's work stealing cuts: len(pending) // workers left
        size = left // (workers - worker)
        shares.append(order[start : start + size])
        start, left = start + size, left - size
    firsts = [share[: len(long) // workers] for share in shares]
    assert all(item in long for first in firsts for item in first), "each share starts with long tests"
    others = [item for item in order if item not in long]
    assert others == sorted(others), "the other tests keep their order (module fixtures stay together)"
