"""List paging shared by every collection: opaque page tokens, newest first, ``nextPageToken`` only when more."""

from __future__ import annotations

import base64
import json

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


def page(session, query, page_size: int | None, page_token: str | None) -> tuple[list, str]:
    """One page of ``query`` (already ordered) and the token of the next page ("" when this is the last)."""
    size = min(max(1, page_size or DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    offset = decode_token(page_token)
    rows = session.scalars(query.offset(offset).limit(size + 1)).all()
    return list(rows[:size]), (encode_token(offset + size) if len(rows) > size else "")


def page_json(key: str, items: list[dict], token: str) -> dict:
    out: dict = {key: items}
    if token:
        out["nextPageToken"] = token
    return out
