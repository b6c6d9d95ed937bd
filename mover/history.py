"""Paging an IP's history for export: oldest first, resumable from the last record seen.

The history entity keeps the newest ``limits.historySize`` records of an IP (500 by
default), oldest first, and drops the oldest beyond that. An export walks them in
that order, a page at a time; the cursor is the request id of the last record it
got. When that record has been dropped meanwhile, records between it and the oldest
kept one may be gone too: the export says so (410 ``cursor_gone``) instead of
silently skipping them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .access import ApiError
from .intake import parse_request_id

__all__ = ["DEFAULT_EXPORT_PAGE", "ExportPage", "export_page", "parse_export_query"]

DEFAULT_EXPORT_PAGE = 100


@dataclass(frozen=True)
class ExportPage:
    """Records of one page, oldest first, and the cursor of the next page (None: done)."""

    records: list[dict[str, Any]]
    next_after: str | None


def parse_export_query(params: dict[str, str], history_size: int) -> tuple[str | None, int]:
    """``after`` (a request id, or absent) and ``limit`` (1..history_size). Raises ApiError."""
    after = params.get("after")
    if after is not None:
        after = parse_request_id(after)
    text = params.get("limit", str(DEFAULT_EXPORT_PAGE))
    try:
        limit = int(text)
    except ValueError:
        raise ApiError(400, "invalid_body", "limit must be a whole number") from None
    if not 1 <= limit <= history_size:
        raise ApiError(400, "invalid_body", f"limit must be 1..{history_size}")
    return after, limit


def export_page(records: list[dict[str, Any]], after: str | None, limit: int) -> ExportPage:
    """The page of ``records`` (as stored: oldest first) that follows request ``after``.

    Raises ApiError(410, cursor_gone) when ``after`` is no longer in the history.
    """
    start = 0
    if after is not None:
        index = next((i for i, r in enumerate(records) if r.get("requestId") == after), None)
        if index is None:
            raise ApiError(
                410,
                "cursor_gone",
                f"request {after} is no longer in the history (it keeps the newest "
                f"{len(records)} records): records after it may have been dropped too; "
                "export again from the start",
            )
        start = index + 1
    page = records[start : start + limit]
    more = start + limit < len(records)
    return ExportPage(page, page[-1]["requestId"] if more and page else None)
