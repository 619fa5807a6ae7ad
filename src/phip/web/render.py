"""Jinja2 rendering with autoescaping on: institution and patient names are data, never markup."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


def render(template: str, **context: object) -> str:
    return _env.get_template(template).render(**context)
