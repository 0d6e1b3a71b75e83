"""A mart that reads a model its touched keys ignore does not build: its rows would go stale unseen.

Each incremental mart recomputes the keys its `<noun>_touched()` macro (dbt_project/macros/marts/)
finds changed. A join added to the mart without a matching branch there would leave the mart's rows
as they were when only the joined model changes, and only a full refresh would show it. The mart's
pre-hook compares the models the mart reads (its `depends_on`, from the project's graph) with those
its touched keys read, and fails the build naming the mart and the model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from warehouse.build.builder import Builder
from warehouse.ingest.land import connect
from warehouse.runtime.configuration import PipelineSettings

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"

UNITS_SOLD = """
sold as (
    -- A join added without telling products_touched: a new line would not rebuild the product.
    select product_id, sum(quantity) as units_sold
    from {{ ref('stg_orders__order_lines') }}
    where not _deleted
    group by product_id
),

final as (
"""


def _build(project: Path, home: Path):
    path = home / "warehouse.duckdb"
    settings = PipelineSettings(home=home, warehouse_path=path, dbt_project_dir=project)
    return Builder(settings).build(lambda: connect(path, settings))


def test_a_mart_reading_a_model_its_touched_keys_ignore_does_not_build(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    mart = project / "models" / "marts" / "product_stock.sql"
    sql = mart.read_text()
    assert sql.count("\nfinal as (\n") == 1
    sql = sql.replace("\nfinal as (\n", UNITS_SOLD, 1)
    sql = sql.replace("    from products\n",
                      "        sold.units_sold,\n    from products\n    left join sold using (product_id)\n")
    mart.write_text(sql)
    unit_tests = project / "models" / "marts" / "_marts.yml"  # dbt asks for the new input's rows
    given = "    model: product_stock\n    overrides:\n      macros: {is_incremental: false}\n    given:\n"
    assert given in unit_tests.read_text()
    unit_tests.write_text(unit_tests.read_text().replace(
        given, given + "      - input: ref('stg_orders__order_lines')\n        rows: []\n"))

    result = _build(project, tmp_path)
    failures = [f for f in result.failures if f.startswith("product_stock:")]
    assert failures and "product_stock reads stg_orders__order_lines, which its touched keys do not" in failures[0]

    # Saying which products a line touches makes it build again.
    touched = project / "macros" / "marts" / "products_touched.sql"
    touched.write_text(touched.read_text().replace(
        "{%- endmacro %}",
        "union\nselect product_id from {{ ref('stg_orders__order_lines') }} where _batch_id > {{ mart_watermark() }}\n"
        "{%- endmacro %}"))
    result = _build(project, tmp_path)
    assert result.success, result.failures
