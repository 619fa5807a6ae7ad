"""FHIR reads and searches under the sharing policy: the reader's access is decided by
phip.share (authorizations in force, break-the-glass, merged persons), each resource is kept
only if an authorization covers its record, and every answer, refusals included, is one audit
event in the same transaction (the resident's "谁看过我的档案" lists them)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from sqlalchemy import Connection, Engine, select

from phip.accounts import SessionInfo
from phip.accounts.trail import audit
from phip.share.policy import Access, access, golden_id
from phip.store.models import Record

from . import docrefs, records
from .ids import cursor, parse_resource_id
from .mapping import ResourceMap, load_mapping
from .outcome import FhirError
from .params import SearchParams, parse, query_string
from .patient import patient_resource
from .validation import checked

NO_AUTHORIZATION = ("NO_AUTHORIZATION", "未获得患者授权，不能查看病历内容：请患者授权同意、提供授权码，或在紧急情况下使用紧急调阅")


def resource_types() -> list[str]:
    return ["Patient", *load_mapping().resources, docrefs.RESOURCE]


def _root(base: str) -> str:
    """The server's address from the FHIR base (``…/fhir/R4``): the CDA documents are there."""
    return base.rsplit("/fhir/", 1)[0]


def _rmap(rtype: str) -> ResourceMap | None:
    if rtype not in ("Patient", docrefs.RESOURCE) and rtype not in load_mapping().resources:
        raise FhirError("UNKNOWN_RESOURCE_TYPE", f"不支持的资源类型：{rtype}（支持 {'、'.join(resource_types())}）", 404)
    return load_mapping().resources.get(rtype)


def _not_found(rtype: str, rid: str) -> FhirError:
    return FhirError("NOT_FOUND", f"资源 {rtype}/{rid} 不存在", 404)


def _refuse(conn: Connection, who: SessionInfo, acc: Access, target: str, address: str | None) -> FhirError:
    audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target=f"fhir:{target}")
    return FhirError(*NO_AUTHORIZATION, 403)


def _patient_grant(acc: Access) -> int | None:
    """The authorization a Patient read rests on: the resident's own (0), else a consent or code
    before a break-the-glass (only that one is flagged for the auditor)."""
    if acc.own:
        return 0
    ordered = sorted(acc.grants, key=lambda g: (g.kind == "break_glass", g.id))
    return ordered[0].id if ordered else None


def read(engine: Engine, who: SessionInfo, rtype: str, rid: str, address: str | None = None,
         base: str = "") -> dict[str, Any]:
    """One resource by id; 404 when absent or outside the reader's scope, 403 when the reader
    holds no authorization on its patient."""
    rmap = _rmap(rtype)
    if rtype == docrefs.RESOURCE:
        return checked(docrefs.read(engine, who, rid, address, _root(base)))
    refusal: FhirError | None = None
    with engine.begin() as conn:
        if rmap is None:
            acc = access(conn, who, rid) if len(rid) <= 32 else None
            if acc is None:
                raise _not_found(rtype, rid)
            grant = _patient_grant(acc)
            if grant is None:
                refusal = _refuse(conn, who, acc, f"Patient/{rid}", address)
            else:
                body = patient_resource(conn, acc.person_id, acc.ids, who.role)
                audit(conn, who, "fhir.read", address=address, person_id=acc.person_id, authorization=grant or None,
                      flagged=acc.break_glass({grant}), target=f"Patient/{acc.person_id}")
        else:
            body, refusal = _read_record(conn, who, rmap, rid, address)
    if refusal is not None:
        raise refusal
    return checked(body)


def _read_record(conn: Connection, who: SessionInfo, rmap: ResourceMap, rid: str,
                 address: str | None) -> tuple[dict[str, Any], FhirError | None]:
    parsed = parse_resource_id(rid)
    head = None
    if parsed is not None:
        r = Record
        head = conn.execute(select(r.id, r.org_code, r.dataset, r.person_id).where(r.id == parsed[0])).first()
    source = rmap.source(head.dataset) if head is not None else None
    if head is None or head.person_id is None or source is None or source.part(parsed[1]) is None:
        raise _not_found(rmap.type, rid)
    acc = access(conn, who, golden_id(conn, head.person_id))
    if not acc.any:
        return {}, _refuse(conn, who, acc, f"{rmap.type}/{rid}", address)
    # the patient's matching resources of this data set and institution: the same rules
    # (conditions, groups, scope) as a search, so a read finds exactly what a search lists
    found = [m for m in records.find(conn, rmap, acc, sources=[source])
             if m.id == rid and m.org_code == head.org_code]
    if not found:
        audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target=f"fhir:{rmap.type}/{rid}")
        return {}, _not_found(rmap.type, rid)
    body = records.resources(conn, rmap, found, acc.person_id, acc.ids)[0]
    audit(conn, who, "fhir.read", address=address, person_id=acc.person_id, authorization=found[0].grant or None,
          flagged=acc.break_glass({found[0].grant}), target=f"{rmap.type}/{rid}",
          detail={"dataset": head.dataset, "org_code": head.org_code})
    return body, None


def _page(matches: list[records.Match], params: SearchParams) -> tuple[int, int]:
    """[start, end) of the page: found by the cursor's sort key (keyset), so records stored or
    corrected meanwhile never shift a page or show a resource twice."""
    keys = [m.key for m in matches]
    if params.cursor is None:
        start = 0
    elif params.cursor[0] == "a":
        start = bisect_right(keys, params.cursor[1])
    else:
        start = max(0, bisect_left(keys, params.cursor[1]) - params.count)
    return start, min(len(keys), start + params.count)


def _sources(rmap: ResourceMap, params: SearchParams) -> list[Any]:
    if params.categories is None:
        return list(rmap.sources)
    return [s for s in rmap.sources if s.category is not None and any(
        code == s.category[1] and (system is None or system == s.category[0]) for system, code in params.categories)]


def search(engine: Engine, who: SessionInfo, rtype: str, items: list[tuple[str, str]], base: str,
           address: str | None = None) -> dict[str, Any]:
    """A searchset Bundle of one patient's resources of ``rtype``, newest record first."""
    rmap = _rmap(rtype)
    params = parse(items)
    if rtype == "Patient":
        if params.patient:
            raise FhirError("UNSUPPORTED_SEARCH_PARAM", "Patient 检索请使用 _id", 400, "patient")
        wanted = [v for n, v in items if n == "_id"]
        if len(wanted) != 1:
            raise FhirError("PATIENT_REQUIRED", "Patient 检索须提供一个 _id（患者主索引ID）；按身份证号查找患者请使用共享调阅接口", 400, "_id")
        return _bundle(base, rtype, [read(engine, who, "Patient", wanted[0], address)], 1, params, None, None)
    if not params.patient:
        raise FhirError("PATIENT_REQUIRED", "检索须指定患者：patient=Patient/<患者主索引ID>", 400, "patient")
    if rmap is None:  # the one resource not mapped from records
        return _documents(engine, who, params, base, address)
    refusal = None
    with engine.begin() as conn:
        acc = access(conn, who, params.patient)
        if not acc.any:
            refusal = _refuse(conn, who, acc, rtype, address)
        else:
            matches = records.find(conn, rmap, acc, sources=_sources(rmap, params), since=params.since,
                                   until=params.until, codes=params.codes)
            start, end = _page(matches, params)
            page = matches[start:end]
            bodies = records.resources(conn, rmap, page, acc.person_id, acc.ids)
            grants = {m.grant for m in page}
            audit(conn, who, "fhir.search", address=address, person_id=acc.person_id,
                  authorization=min(grants, default=0) or None, flagged=acc.break_glass(grants), target=rtype,
                  detail={"returned": len(page), "total": len(matches), "authorizations": sorted(grants)})
    if refusal is not None:
        raise refusal
    after = cursor("a", page[-1].key) if page and end < len(matches) else None
    before = cursor("b", page[0].key) if page and start > 0 else None
    return _bundle(base, rtype, bodies, len(matches), params, after, before)


def _documents(engine: Engine, who: SessionInfo, params: SearchParams, base: str, address: str | None) -> dict[str, Any]:
    """DocumentReference search: the document query's answer, paged by the same keyset."""
    for name, given in (("category", params.categories), ("code", params.codes)):
        if given is not None:
            raise FhirError("UNSUPPORTED_SEARCH_PARAM", f"DocumentReference 检索不支持参数 {name}（支持 patient、date、_count）",
                            400, name)
    _, keyed, make = docrefs.search(engine, who, params.patient, params.since, params.until, address, _root(base))
    start, end = _page(keyed, params)  # type: ignore[arg-type] - Keyed has the .key the pager reads
    page = keyed[start:end]
    after = cursor("a", page[-1].key) if page and end < len(keyed) else None
    before = cursor("b", page[0].key) if page and start > 0 else None
    return _bundle(base, docrefs.RESOURCE, make(page), len(keyed), params, after, before)


def _bundle(base: str, rtype: str, resources: list[dict[str, Any]], total: int, params: SearchParams,
            after: str | None, before: str | None) -> dict[str, Any]:
    def link(relation: str, page: str | None = None) -> dict[str, str]:
        extra = [("_cursor", page)] if page else []
        return {"relation": relation, "url": f"{base}/{rtype}?{query_string([*params.given, *extra, ('_count', params.count)])}"}

    links = [link("self", None if params.cursor is None else cursor(*params.cursor))]
    if after:
        links.append(link("next", after))
    if before:
        links.append(link("previous", before))
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
              "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                        for r in resources]}
    return checked(bundle)  # every resource in it with it
