"""OpenAPI 3.1 for the views served now: per view, its typed filters and its row schema, with the dbt
manifest's descriptions; and the interactive docs page."""

from __future__ import annotations

from api.catalogue import View

OPERATORS = {"ne": "not equal", "gt": "greater than", "gte": "at least", "lt": "less than", "lte": "at most"}


def _problem(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _parameters(view: View) -> list[dict]:
    params = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
        {
            "name": "order_by",
            "in": "query",
            "description": "Columns, comma-separated, `-col` for descending; "
            f"default {', '.join(('-' if d else '') + n for n, d in view.default_order) or 'the primary key'}.",
            "schema": {"type": "string"},
        },
        {
            "name": "fields",
            "in": "query",
            "description": "Columns to return, comma-separated.",
            "schema": {"type": "string"},
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "The `next` of the previous page.",
            "schema": {"type": "string"},
        },
        {
            "name": "count",
            "in": "query",
            "description": "`exact`: count the matching rows (slower).",
            "schema": {"type": "string", "enum": ["exact", "none"]},
        },
        {
            "name": "after",
            "in": "query",
            "description": "Read your writes: `<service>:<lsn>` positions a command "
            "returned, comma-separated; the answer waits for a publication that includes them.",
            "schema": {"type": "string"},
        },
        {
            "name": "wait",
            "in": "query",
            "description": "Most seconds to wait for `after`.",
            "schema": {"type": "number", "minimum": 0},
        },
    ]
    for column in view.columns:
        base = column.json_schema()
        value = {k: v for k, v in base.items() if k != "description"}
        if isinstance(value.get("type"), list):
            value["type"] = value["type"][0]
        value.pop("pattern", None)
        params.append(
            {
                "name": column.name,
                "in": "query",
                "description": f"Equal to. {column.description}".strip(),
                "schema": value or {"type": "string"},
            }
        )
        if column.comparable:
            for op, words in OPERATORS.items():
                params.append(
                    {
                        "name": f"{column.name}__{op}",
                        "in": "query",
                        "description": words,
                        "schema": value or {"type": "string"},
                    }
                )
        params.append(
            {
                "name": f"{column.name}__in",
                "in": "query",
                "description": "One of, comma-separated.",
                "schema": {"type": "string"},
            }
        )
        params.append({"name": f"{column.name}__is_null", "in": "query", "schema": {"type": "boolean"}})
        if column.kind == "text":
            params += [
                {
                    "name": f"{column.name}__like",
                    "in": "query",
                    "description": "SQL LIKE, `%` and `_` wildcards, ASCII case-insensitive.",
                    "schema": {"type": "string"},
                },
                {"name": f"{column.name}__startswith", "in": "query", "schema": {"type": "string"}},
            ]
    return params


def document(views: dict[str, View]) -> dict:
    paths, schemas = (
        {},
        {
            "Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            },
        },
    )
    errors = {
        "400": _problem("A bad filter, order, field, limit or cursor, named in the answer."),
        "401": _problem("A bearer token is needed."),
        "404": _problem("No such view or row."),
        "503": _problem("Nothing published yet, or `after` not reached within `wait`."),
    }
    for name, view in sorted(views.items()):
        row = f"{name}_row"
        schemas[row] = {
            "type": "object",
            "description": view.description,
            "properties": {c.name: c.json_schema() for c in view.columns},
        }
        paths[f"/views/{name}"] = {
            "get": {
                "summary": view.description or name,
                "operationId": f"list_{name}",
                "parameters": _parameters(view),
                "responses": {
                    "200": {
                        "description": "A page of rows; `next` is the cursor of the following page.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "rows": {"type": "array", "items": {"$ref": f"#/components/schemas/{row}"}},
                                        "next": {"type": ["string", "null"]},
                                        "count": {"type": "integer"},
                                    },
                                }
                            },
                            "text/csv": {},
                            "application/vnd.apache.arrow.stream": {},
                            "application/vnd.apache.parquet": {},
                        },
                    },
                    "304": {"description": "Not modified (If-None-Match)."},
                    **errors,
                },
            }
        }
        paths[f"/views/{name}/{{key}}"] = {
            "get": {
                "summary": f"One row of {name} by {', '.join(view.primary_key)}"
                + (" (values comma-separated in that order)" if len(view.primary_key) > 1 else ""),
                "operationId": f"get_{name}",
                "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "The row.",
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{row}"}}},
                    },
                    "304": {"description": "Not modified."},
                    **errors,
                },
            }
        }
        paths[f"/views/{name}/changes"] = {
            "get": {
                "summary": f"Live changes of {name} (Server-Sent Events)",
                "operationId": f"changes_{name}",
                "responses": {
                    "200": {
                        "description": "`change` events: build_id, watermark, upserted and deleted keys.",
                        "content": {"text/event-stream": {}},
                    }
                },
            }
        }
    paths["/views"] = {
        "get": {
            "summary": "The views served, their columns and freshness",
            "operationId": "views",
            "responses": {"200": {"description": "The catalogue.", "content": {"application/json": {}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mirador read API",
            "version": "1",
            "description": "The view tables, read-only. Commands go to the write services.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def docs_page() -> bytes:
    return b"""<!doctype html><html><head><title>mirador read API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div><script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
<noscript>The API's description is at <a href="/openapi.json">/openapi.json</a>.</noscript></body></html>"""
