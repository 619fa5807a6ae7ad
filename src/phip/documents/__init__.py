"""Shared documents (共享文档, WS/T 500 电子病历 / WS/T 483 健康档案): CDA R2 documents rendered
from stored records and received documents mapped onto the standard's data sets, both driven
by the templates kept as data (docs/interop.md)."""

from .exchange import Received, export, receive, receive_many, template_of
from .inbound import Mapped, read
from .problems import CODES, DocumentRefused, Problem
from .query import documents_of
from .render import render
from .templates import Template, Templates, load_templates

__all__ = ["CODES", "DocumentRefused", "documents_of", "Mapped", "Problem", "Received", "Template", "Templates", "export",
           "load_templates", "read", "receive", "receive_many", "render", "template_of"]
