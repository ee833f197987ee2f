"""Checking bodies against the schemas of an OpenAPI document (``/openapi.json``).

``Contract(doc)`` resolves the document's ``#/components`` references. Its checks are
strict: an object schema that lists its properties admits no others unless it says so
(``additionalProperties``), so a field the server sends that the document does not name
is a failure, not silently allowed.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_BASE = "urn:openapi"


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#/"):
            out["$ref"] = _BASE + out["$ref"]
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


class Contract:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        strict = _strict(copy.deepcopy(doc))
        self._strict_doc = strict
        resource = Resource.from_contents(strict, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(_BASE, resource)

    def operation(self, method: str, path: str) -> dict[str, Any]:
        op: dict[str, Any] = self.doc["paths"][path][method.lower()]
        return op

    def response(self, method: str, path: str, status: int) -> dict[str, Any]:
        """The response the document gives for ``status`` (exact, then ``NXX``, then
        ``default``)."""
        responses = self.operation(method, path)["responses"]
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                found: dict[str, Any] = responses[key]
                return found
        raise AssertionError(f"{method} {path}: no response for {status}")

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        validator = Draft202012Validator(_strict(schema), registry=self._registry)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in validator.iter_errors(instance)
        ]

    def check_response(
        self, method: str, path: str, status: int, content_type: str, body: Any
    ) -> None:
        """``body`` (decoded JSON, or text) is what the document says ``status`` carries."""
        response = self.response(method, path, status)
        media = content_type.split(";")[0].strip()
        content = response.get("content", {})
        assert media in content, f"{method} {path} {status}: {media!r} not in {list(content)}"
        schema = content[media].get("schema")
        assert schema is not None, f"{method} {path} {status}: no schema for {media}"
        problems = self.errors(schema, body)
        assert not problems, f"{method} {path} {status}: {body!r:.500}\n" + "\n".join(problems)

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        """What the document's schema finds wrong with a JSON request body."""
        rb = self.operation(method, path)["requestBody"]
        return self.errors(rb["content"]["application/json"]["schema"], body)
