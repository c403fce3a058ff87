"""The one rule for "which calibration of a key is current": the newest ``calibration_date`` wins, and
everything else of that key goes to ``calibrations/history/``; a partial run does not replace a complete one
(``is_partial``), nor a disturbed run a clearly quieter one (``held_back``), unless the user says so. The
writer, merge and migrate all ask here."""

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


# A run with more than this share of its watched cases flagged (measured while something else ran and never
# re-measured quiet) is a disturbed run: its figures are more the neighbours' than the device's.
DISTURBED_SHARE = 0.10


def disturbed_share(doc: dict[str, Any]) -> tuple[int, int] | None:
    """(flagged, watched) cases of a run, from ``metadata.interference``; None where the run was not watched
    (an older file, an import)."""
    log = (doc.get("metadata") or {}).get("interference")
    if not isinstance(log, dict):
        return None
    flagged, watched = log.get("flagged"), log.get("cases_watched")
    if not isinstance(flagged, int) or not isinstance(watched, int) or isinstance(flagged, bool) or watched <= 0:
        return None
    return flagged, watched


# A run whose pace look never got within this of the current calibration's best (the same look: its method)
# ran whole in a slow episode: its own looks, against its own best, cannot see it.
SLOW_RUN = 1.3


def slow_run(new: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why ``new`` ran in a slow state from start to end, by its pace looks' best per-call time against the
    current calibration's (``metadata.interference.call`` and ``.launch``, where both ran the same look on the
    same framework and Python versions: an upgrade may make the call slower for good, and is no episode)."""
    def looks(doc: dict[str, Any]) -> dict[str, Any]:
        log = (doc.get("metadata") or {}).get("interference")
        return log if isinstance(log, dict) else {}

    versions = ("framework_version", "python_version")
    if any((new.get("metadata") or {}).get(v) != (current.get("metadata") or {}).get(v) for v in versions):
        return None
    for name in ("call", "launch"):
        a, b = looks(new).get(name), looks(current).get(name)
        if not isinstance(a, dict) or not isinstance(b, dict) or a.get("method") != b.get("method"):
            continue
        mine, theirs = a.get("per_call_us_best"), b.get("per_call_us_best")
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and theirs > 0 \
                and mine > SLOW_RUN * theirs:
            return (f"its {name} look's best was {mine:.3g} us a call, {mine / theirs:.2f}x the current calibration's "
                    f"{theirs:.3g} us: the whole run ran in a slow episode of the host, which its own looks (against "
                    "its own best) cannot see")
    return None


def held_back(new: dict[str, Any], current: Any) -> str | None:
    """Why a disturbed run should go to history instead of replacing ``current``; None when it may replace it.

    Newest wins, except over a clearly quieter calibration of the key: a run with more than
    ``DISTURBED_SHARE`` of its cases flagged does not replace a complete one with under half its share (a
    model would load the neighbours' figures in place of good ones), nor does a run whose pace looks never
    came within ``SLOW_RUN`` of the current calibration's (``slow_run``). Nothing is lost: the run is kept in
    history, and the user may make it current (``--file-disturbed``)."""
    if isinstance(current, dict) and not (is_partial(current) and not is_partial(new)):
        slow = slow_run(new, current)
        if slow is not None:
            return slow
    mine = disturbed_share(new)
    if mine is None or mine[0] / mine[1] <= DISTURBED_SHARE or not isinstance(current, dict):
        return None
    if is_partial(current) and not is_partial(new):
        return None
    theirs = disturbed_share(current)
    if theirs is None or theirs[0] / theirs[1] >= mine[0] / mine[1] / 2:
        return None
    return (f"{mine[0]} of its {mine[1]} cases ({mine[0] / mine[1]:.0%}) were measured while something else ran "
            f"and flagged, against {theirs[0]} of {theirs[1]} ({theirs[0] / theirs[1]:.0%}) in the current "
            "calibration")
