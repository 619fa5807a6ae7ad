"""Every resource PHIP returns passes through ``fhir.resources`` (FHIR's pydantic models).

fhir.resources 8 ships R5 as its default package and R4B (4.3.0) beside it; there is no plain
R4 package. R4B keeps R4's content model for every resource returned here (Patient,
Encounter, Condition, Observation, DiagnosticReport, MedicationRequest, Procedure,
AllergyIntolerance, Bundle, OperationOutcome, CapabilityStatement), so an instance valid in
R4B is a valid R4 instance as long as it uses no element R4B added (none of ours does)."""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel

PACKAGE = "fhir.resources.R4B"


@cache
def model(resource_type: str) -> type[FHIRResourceModel]:
    """The R4B model class of a resource type (``Observation`` → fhir.resources.R4B.observation)."""
    module = import_module(f"{PACKAGE}.{resource_type.lower()}")
    return getattr(module, resource_type)


def checked(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource itself once the model accepts it (raises pydantic's ValidationError for
    anything R4 would refuse). A Bundle's check covers every resource in it, so a searchset is
    checked once; serialising through the model would double the cost and change nothing."""
    model(resource["resourceType"]).model_validate(resource)
    return resource


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as the model validated and serialised it; raises pydantic's
    ValidationError for anything R4 would refuse (a bad code, a missing required element)."""
    obj = model(resource["resourceType"]).model_validate(resource)
    return obj.model_dump(mode="json", exclude_none=True, by_alias=True)
