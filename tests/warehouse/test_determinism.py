"""The replay executes what dbt would (README): no model or data test it may record renders SQL that differs
from one run to the next. Checked on the project itself, and shown to name what it finds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from warehouse.build.builder import Builder
from warehouse.build.determinism import nondeterministic_nodes
from warehouse.build.exceptions import NondeterministicSQL
from warehouse.build.project import Project
from warehouse.runtime.configuration import PipelineSettings

FIXED = Path(__file__).resolve().parents[1] / "fixtures" / "recording"

MORE = {
    "models/stamped.sql": "select '{{ run_started_at }}' as built_at, 1 as id",
    "models/from_data.sql": "select {{ newest_amount() }} as amount",
    "models/checked.sql": "select {{ 1 if relation_exists('balances') else 0 }} as present",
    "macros/newest_amount.sql": """
        {% macro newest_amount() -%}
            {%- if execute -%}{{ run_query('select max(amount) from ' ~ ref('balances')).columns[0].values()[0] }}
            {%- else -%}0{%- endif -%}
        {%- endmacro %}""",
    "macros/relation_exists.sql": """
        {% macro relation_exists(name) -%}
            {{ return(adapter.get_relation(this.database, this.schema, name) is not none) }}
        {%- endmacro %}""",
    "tests/recent.sql": "select * from {{ ref('balances') }} where _batch_id > {{ modules.datetime.date.today().day }}",
}


def test_the_project_renders_the_same_sql_on_every_run(tmp_path):
    findings = nondeterministic_nodes(Project.parse(PipelineSettings(home=tmp_path)).manifest)
    assert not findings, str(NondeterministicSQL(findings))


def test_a_node_that_would_render_other_sql_is_refused_by_name(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(FIXED, project, ignore=shutil.ignore_patterns("golden.json"))
    for name, text in MORE.items():
        (project / name).parent.mkdir(exist_ok=True)
        (project / name).write_text(text)
    settings = PipelineSettings(
        home=tmp_path, warehouse_path=tmp_path / "w.duckdb", dbt_project_dir=project, run_replay=True
    )
    parsed = Project.parse(settings)
    with pytest.raises(NondeterministicSQL) as refused:
        Builder(settings, parsed)
    assert refused.value.findings == {
        "model.contract.stamped": ["run_started_at in its SQL (differs on every run)"],
        "model.contract.from_data": ["run_query in macro newest_amount (renders SQL from query results)"],
        "model.contract.checked": ["a catalog lookup in macro relation_exists (renders SQL from the catalog)"],
        next(uid for uid in parsed.manifest.nodes if uid.startswith("test.contract.recent")): [
            "modules.datetime in its SQL (reads the clock)"
        ],
    }
    assert "model.contract.stamped: run_started_at in its SQL" in str(refused.value)
    # Without the replay, dbt runs every node every time: nothing to refuse.
    assert Builder(settings.model_copy(update={"run_replay": False}), parsed).recordings is None
