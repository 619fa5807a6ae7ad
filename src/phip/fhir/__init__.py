"""FHIR R4 read API (issue 25): the platform's stored records and EMPI golden records as FHIR
resources, read and searched under the sharing policy (phip.share) and audited like every
other read of personal data. The mapping is data (``data/mapping.yaml``); every resource is
validated by ``fhir.resources.R4B`` before it leaves (docs/interop.md, "FHIR R4")."""

from .capability import capability_statement
from .outcome import FhirError, operation_outcome
from .params import check_format
from .service import read, search

__all__ = ["FhirError", "capability_statement", "check_format", "operation_outcome", "read", "search"]
