"""The whole schema: every area's tables on the store's one metadata (``Base.metadata``).

Each area declares its tables in its own ``tables`` module on :class:`phip.store.models.Base`;
the store imports none of them, so whoever needs the complete metadata (Alembic's
autogenerate, the test fixtures) imports it from here.
"""

from __future__ import annotations

import phip.audit.tables  # noqa: F401
import phip.collect.tables  # noqa: F401
import phip.empi.tables  # noqa: F401
import phip.orgs.tables  # noqa: F401
import phip.federation.tables  # noqa: F401
import phip.quality.tables  # noqa: F401
import phip.reports.tables  # noqa: F401
import phip.accounts.tables  # noqa: F401
import phip.share.tables  # noqa: F401
from phip.store.models import Base

__all__ = ["Base"]
