"""List paging shared by every collection: opaque page tokens, newest first, ``nextPageToken`` only when more."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tuneforge.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except Exception:
        raise InvalidArgument("pageToken is not valid; pass the nextPageToken of the previous page") from None


def page(session: Session, query: Select[Any], page_size: int | None, page_token: str | None) -> tuple[list[Any], str]:
    """One page of ``query`` (already ordered) and the token of the next page ("" when this is the last)."""
    size = min(max(1, page_size or DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    offset = decode_token(page_token)
    rows = session.scalars(query.offset(offset).limit(size + 1)).all()
    return list(rows[:size]), (encode_token(offset + size) if len(rows) > size else "")


def list_page(
    s: Session, table: Any, project: str, location: str, page_size: int | None, page_token: str | None, *conditions: Any
) -> tuple[list[Any], str]:
    """One page of a collection's rows in ``projects/{project}/locations/{location}``, newest first."""
    q = (
        select(table)
        .where(table.project == project, table.location == location, *conditions)
        .order_by(table.create_time.desc(), table.id.desc())
    )
    return page(s, q, page_size, page_token)
