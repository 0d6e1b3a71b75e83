"""What the replay must not record: SQL that a node would render differently on another run.

A replay executes what two dbt runs of a node agreed on (warehouse/build/recordings.py). A node whose
SQL depends on the run or the clock never agrees, and silently costs a dbt run every cycle; one
rendered from data, or from a catalog the recordings' digest does not cover, can agree twice and then
go stale, and the replay would execute SQL dbt no longer renders. So before anything is recorded,
every model and data test of the project, with the project's macros they call and their hooks, is
read for what makes rendered SQL differ from run to run; a node that uses any of it is named.

dbt's own macros (its materializations, generic tests) are not read: what they render is pinned by
the recording contract test (tests/warehouse/test_recording_contract.py), and what they look up in
the catalog is in the schemas the recordings' digest covers.
"""

from __future__ import annotations

import re
from typing import Any

NONDETERMINISTIC: dict[str, tuple[re.Pattern, str]] = {
    "run_query": (re.compile(r"\brun_query\s*\("), "renders SQL from query results"),
    "load_result": (re.compile(r"\bload_result\s*\("), "renders SQL from query results"),
    "run_started_at": (re.compile(r"\brun_started_at\b"), "differs on every run"),
    "invocation_id": (re.compile(r"\binvocation_id\b"), "differs on every run"),
    "modules.datetime": (re.compile(r"\bmodules\s*\.\s*datetime\b"), "reads the clock"),
    "modules.time": (re.compile(r"\bmodules\s*\.\s*time\b"), "reads the clock"),
    "a catalog lookup": (
        re.compile(
            r"\badapter\s*\.\s*(?:get_relation|get_columns_in_relation|list_relations_without_caching"
            r"|get_relations_by_pattern|list_schemas|check_schema_exists)\b|\bload_(?:cached_)?relation\s*\("
        ),
        "renders SQL from the catalog",
    ),
}
"""Name -> (what finds it in Jinja source, why the SQL it renders can change between runs)."""

DIGESTED_LOOKUPS = {"raw_source"}
"""Project macros whose catalog lookups only ask whether a source's raw table exists: its schema is
among those whose tables the recordings' digest covers, so a change there forgets every recording."""


def nondeterministic_nodes(manifest: Any) -> dict[str, list[str]]:
    """Per model or data test of the root project that uses something from `NONDETERMINISTIC`: what and where."""
    project = manifest.metadata.project_name
    findings: dict[str, list[str]] = {}
    for uid, node in sorted(manifest.nodes.items()):
        if node.package_name != project or not (
            node.resource_type == "test" or (node.resource_type == "model" and node.language == "sql")
        ):
            continue
        sources = [("its SQL", node.raw_code or "")]
        sources += [
            (f"its {kind.replace('_', '-')}", hook.sql)
            for kind in ("pre_hook", "post_hook")
            for hook in getattr(node.config, kind, None) or []
        ]  # tests have no hooks
        sources += [(f"macro {macro.name}", macro.macro_sql) for macro in _project_macros(manifest, node, project)]
        reasons = []
        for where, text in sources:
            for name, (pattern, why) in NONDETERMINISTIC.items():
                if pattern.search(text) and not (
                    name == "a catalog lookup" and where.removeprefix("macro ") in DIGESTED_LOOKUPS
                ):
                    reasons.append(f"{name} in {where} ({why})")
        if reasons:
            findings[uid] = list(dict.fromkeys(reasons))
    return findings


def _project_macros(manifest: Any, node: Any, project: str) -> list[Any]:
    """The root project's macros `node` calls, directly or through each other."""
    seen: dict[str, Any] = {}
    pending = list(node.depends_on.macros)
    while pending:
        uid = pending.pop()
        macro = manifest.macros.get(uid)
        if uid in seen or macro is None or macro.package_name != project:
            continue
        seen[uid] = macro
        pending += macro.depends_on.macros
    return [seen[uid] for uid in sorted(seen)]
