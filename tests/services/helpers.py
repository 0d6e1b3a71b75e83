"""What the tests check on every answer."""

from __future__ import annotations

import re
import uuid

import httpx

LSN = re.compile(r"^[0-9A-F]+/[0-9A-F]+$")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def accepted(response: httpx.Response, status: int = 200) -> dict:
    """A command's answer: the id, the new version (also as ETag) and the source position."""
    assert response.status_code == status, response.text
    body = response.json()
    uuid.UUID(body["id"])
    assert isinstance(body["position"]["txid"], int) and body["position"]["txid"] > 0
    assert LSN.match(body["position"]["lsn"])
    if body["version"] is not None:
        assert response.headers["etag"] == f'"{body["version"]}"'
    return body


def refused(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """An error as application/problem+json, naming the rule when there is one."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"]
    if code:
        assert problem["type"] == f"urn:mirador:problem:{code}", problem
    return problem


def invalid_fields(response: httpx.Response) -> set[str]:
    return {error["field"] for error in refused(response, 422, "invalid_request")["errors"]}
