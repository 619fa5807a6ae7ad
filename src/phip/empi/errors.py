"""The EMPI's refusals (患者主索引错误)."""

from __future__ import annotations

from phip.errors import PhipError



class EmpiError(PhipError):
    """A request the EMPI refuses; ``code`` is stable, ``message`` Chinese for the operator.
    ``status`` is the HTTP status the API answers with (``phip.api.errors.HTTP_STATUS`` reads
    it): one class's refusals span 400/403/404/409, and the CLI shares the class."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None):
        super().__init__(code, message, field)
        self.status = status

