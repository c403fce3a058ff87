"""The one rule for "which calibration of a key is current": the newest ``calibration_date`` wins, and
everything else of that key goes to ``calibrations/history/``. The writer, merge and migrate all ask here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

T = TypeVar("T")
# Clocks of a fleet disagree by seconds, not minutes: a current calibration dated further ahead than this
# is a wrong clock, and it may not win over every new run.
FUTURE_SKEW_S = 300.0


def is_future(date: datetime, now: datetime | None = None) -> bool:
    """Whether ``date`` lies more than ``FUTURE_SKEW_S`` ahead of ``now`` (this host's clock)."""
    now = now or datetime.now(timezone.utc)
    return date - now > timedelta(seconds=FUTURE_SKEW_S)


def split_newest(items: Sequence[T], date_of: Callable[[T], datetime],
                 current_date: datetime | None) -> tuple[T | None, list[T]]:
    """(the item that becomes current, the items that go to history, oldest first).

    The newest item becomes current unless the key's current calibration is newer than it; a tie goes to
    the new item (the one it replaces is kept in history, so nothing is lost either way). Items of equal
    date keep their given order, so a caller's tie-break (e.g. by source path) holds. A current date in the
    future (``is_future``) counts as not newer than anything: a wrong clock must not pin a key forever.
    """
    if current_date is not None and is_future(current_date):
        current_date = None
    ordered = sorted(items, key=date_of)
    if ordered and (current_date is None or date_of(ordered[-1]) >= current_date):
        return ordered[-1], ordered[:-1]
    return None, ordered


def is_partial(doc: dict[str, Any]) -> bool:
    """A calibration of a partial run (``-k``, ``-m``, ``--sizes``, one benchmark file): it may not replace
    a complete calibration of its key unless the user says so (``--allow-partial``)."""
    selection = (doc.get("metadata") or {}).get("selection") or {}
    return bool(isinstance(selection, dict) and selection.get("partial", False))
