"""The dbt project, parsed once: the manifest dbt runs from, and what the build and publication read of it.

dbt is invoked in-process through `dbtRunner` with this manifest (a fraction of a second a build,
against seconds for the dbt CLI). It runs with the project's profile, its `path` set to the working
file as the pipeline opens it (`pipeline_profiles`), so that the process never changes its
environment while its other threads run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

from warehouse.build.configuration import BuildSettings
from warehouse.build.exceptions import ProjectUnparsable

log = logging.getLogger(__name__)


class Project:
    """The parsed manifest and the graph of its models: what a set of changed raw tables selects."""

    def __init__(self, settings: BuildSettings, manifest: Any, profiles_dir: Path) -> None:
        self.settings, self.manifest, self.profiles_dir = settings, manifest, profiles_dir
        nodes = manifest.nodes
        self.depends: dict[str, list[str]] = {
            uid: node.depends_on.nodes for uid, node in nodes.items() if node.resource_type == "model"
        }
        """Per model, what it reads (models and sources): the graph replays select from."""
        self.schemas: list[str] = sorted(
            {nodes[uid].schema for uid in self.depends} | {source.schema for source in manifest.sources.values()}
        )
        """The schemas of the project's sources and models: what dbt plans a build from."""
        metas = {
            node.name: node.config.meta or node.meta or {} for node in nodes.values() if node.resource_type == "model"
        }
        self.exposed: dict[str, list[str]] = {
            name: list(meta.get("primary_key") or []) for name, meta in sorted(metas.items()) if meta.get("expose")
        }
        """The marts marked `meta.expose` in their YAML, what gets published: name -> `meta.primary_key`."""
        self.catalog: dict[str, dict] = {
            node.name: {
                "description": node.description or "",
                "meta": metas[node.name],
                "columns": {name: column.description or "" for name, column in node.columns.items()},
            }
            for node in nodes.values()
            if node.resource_type == "model" and node.name in self.exposed
        }
        """What readers are told of each exposed mart: its description, `meta` and column descriptions."""

    @classmethod
    def parse(cls, settings: BuildSettings) -> Project:
        from dbt.cli.main import dbtRunner

        started = time.perf_counter()
        profiles_dir = pipeline_profiles(settings)
        parsed = dbtRunner().invoke(dbt_args(settings, profiles_dir, "parse"))
        if not parsed.success:
            raise ProjectUnparsable(f"dbt could not parse {settings.dbt_project_dir}: {parsed.exception}")
        log.info("parsed the dbt project in %.2fs", time.perf_counter() - started)
        return cls(settings, parsed.result, profiles_dir)

    def args(self, *args: str) -> list[str]:
        """A dbt command line for this project."""
        return dbt_args(self.settings, self.profiles_dir, *args)

    def node(self, unique_id: str) -> Any:
        return self.manifest.nodes[unique_id]

    def sources_of(self, raw_tables: set[str]) -> list[str]:
        """dbt selectors `source:<name>.<table>+` for the raw tables that changed."""
        return sorted(
            f"source:{source.source_name}.{source.name}+"
            for source in self.manifest.sources.values()
            if source.identifier in raw_tables
        )

    def models_of(self, raw_tables: set[str]) -> list[str]:
        """The models downstream of the raw tables that changed, parents first."""
        sources = self.manifest.sources
        selected = {
            uid
            for uid, ups in self.depends.items()
            if any(p in sources and sources[p].identifier in raw_tables for p in ups)
        }
        while grown := {uid for uid, ups in self.depends.items() if uid not in selected and selected.intersection(ups)}:
            selected |= grown
        return list(
            TopologicalSorter(
                {uid: [p for p in self.depends[uid] if p in selected] for uid in sorted(selected)}
            ).static_order()
        )

    def tests_of(self, raw_tables: set[str]) -> list[str]:
        """The data tests `dbt test --select source:<table>+` runs: those on anything downstream. (dbt
        also runs the models' unit tests, which depend only on the project's code and column types.)"""
        models = set(self.models_of(raw_tables))
        sources = {uid for uid, source in self.manifest.sources.items() if source.identifier in raw_tables}
        return sorted(
            uid
            for uid, node in self.manifest.nodes.items()
            if node.resource_type == "test" and (models | sources).intersection(node.depends_on.nodes)
        )


def dbt_args(settings: BuildSettings, profiles_dir: Path, *args: str) -> list[str]:
    """A dbt command line for the project, with the pipeline's profile and mirador's log and target dirs."""
    return [
        *args,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--log-level",
        "warn",
        "--log-level-file",
        "info",
        "--log-path",
        str(settings.home / "logs" / "dbt"),
        "--target-path",
        str(settings.home / "dbt-target"),
    ]


def pipeline_profiles(settings: BuildSettings) -> Path:
    """A profiles directory holding the project's `profiles.yml` with every output's `path` set to the
    working file, resolved as the session opens it (DuckDB shares one instance between connections to
    one path). One directory per working file, under the home."""
    path = str(settings.warehouse.resolve())
    directory = settings.home / "dbt-profiles" / hashlib.sha256(path.encode()).hexdigest()[:12]
    profiles = yaml.safe_load((settings.dbt_project_dir / "profiles.yml").read_text())
    for profile in profiles.values():
        for output in (profile.get("outputs") or {}).values() if isinstance(profile, dict) else ():
            output["path"] = path
    text = yaml.safe_dump(profiles, sort_keys=False)
    target = directory / "profiles.yml"
    if not target.exists() or target.read_text() != text:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".profiles.yml.{os.getpid()}"
        temporary.write_text(text)
        os.replace(temporary, target)
    return directory
