"""The access log without identifiers (访问日志脱敏): uvicorn writes each request's whole address,
query string included, and an address may carry an ID number or a phone (an old client's
search, a mistyped link). Every ID-number- and phone-shaped run is masked before the line is
written, whatever the route; identifiers belong in request bodies, which are never logged."""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote_plus

from phip.privacy import mask_text

#: what stays unescaped when a masked address is written back (as uvicorn logs it: no control
#: character or space, so a line cannot be split or forged)
_SAFE = "/?&=:;,+@!$'()*~-._#[]"


def scrub(text: str) -> str:
    """``text`` with every identifier masked, also one percent-encoded (%32%32…) or written in
    parts: the address is decoded to look, and only when that finds something is it written
    decoded, masked and encoded again."""
    plain = mask_text(text)
    if "%" not in text and "+" not in text:  # nothing encoded: decoding changes nothing
        return plain
    decoded = unquote_plus(text)
    masked = mask_text(decoded)
    if masked == decoded:
        return plain
    return quote(masked, safe=_SAFE)


class ScrubIdentifiers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger once per process (create_app runs per worker)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ScrubIdentifiers) for f in logger.filters):
        logger.addFilter(ScrubIdentifiers())
