"""Reading the platform's own YAML data files (the standard, quality rules, report measures).

The standard alone is 72 data-set files: PyYAML's pure-Python loader took 1.3 s to parse
them, paid by every process that validates (each CLI command, the validation process of
every collector and push worker); libyaml's ``CSafeLoader`` builds the same objects in
0.2 s. It is used when PyYAML was built with libyaml (the manylinux wheels are), else the
pure loader. Files that users write (collection mappings) keep ``yaml.safe_load``: they are
small, and its error messages are the ones the users' documentation shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    """The document of a UTF-8 YAML file, loaded safely (plain data only)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a safe loader
