"""The ingest raises the garbage collector's generation-0 threshold, and never lowers it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cityos_knowledge.ingest.apply import raise_gc_threshold


@pytest.fixture
def restored_threshold() -> Iterator[tuple[int, int, int]]:
    original = gc.get_threshold()
    try:
        yield original
    finally:
        gc.set_threshold(*original)


def test_the_threshold_is_raised_but_never_lowered(
    restored_threshold: tuple[int, int, int],
) -> None:
    _, *older = restored_threshold
    gc.set_threshold(700, *older)
    raise_gc_threshold(50_000)
    assert gc.get_threshold() == (50_000, *older)
    raise_gc_threshold(10_000)  # e.g. the MQTT ingestion's, in the same process
    assert gc.get_threshold() == (50_000, *older)


def test_a_collector_turned_off_by_threshold_stays_off(
    restored_threshold: tuple[int, int, int],
) -> None:
    _, *older = restored_threshold
    gc.set_threshold(0, *older)
    raise_gc_threshold(50_000)
    assert gc.get_threshold()[0] == 0
