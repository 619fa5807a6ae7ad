"""The access log without identifiers (访问日志脱敏): uvicorn writes each request's whole address,
query string included, and an address may carry an ID number or a phone (an old client's
search, a mistyped link). Every ID-number- and phone-shaped run is masked before the line is
written, whatever the route; identifiers belong in request bodies, which are never logged."""

from __future__ import annotations

import logging

from phip.privacy import mask_text


class ScrubIdentifiers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger once per process (create_app runs per worker)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ScrubIdentifiers) for f in logger.filters):
        logger.addFilter(ScrubIdentifiers())
