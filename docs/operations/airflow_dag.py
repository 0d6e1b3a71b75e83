"""mirador on Airflow: every five minutes drain Kafka into DuckDB, build and publish, then check freshness.

Put this file in the DAGs folder of an Airflow 3 deployment whose workers can run the `mirador` CLI on
the host holding MIRADOR_HOME (the warehouse file is local: one worker, or a pool of one slot). The
status task fails on a stale (exit 5) or broken (exit 6) verdict; `on_failure_callback`, an e-mail or
the deployment's alerting then pages. A transient failure (exit 3: Kafka unreachable, the warehouse
held too long) is retried.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

MIRADOR = os.environ.get("MIRADOR_BIN", "/opt/mirador/.venv/bin/mirador")
ENV = {
    "MIRADOR_HOME": os.environ.get("MIRADOR_HOME", "/var/lib/mirador"),
    # A period and a half of the schedule before the views count as stale.
    "MIRADOR_STATUS_MAX_WATERMARK_AGE": "450",
    "MIRADOR_STATUS_MAX_PUBLICATION_AGE": "450",
    "MIRADOR_STATUS_MAX_LAG_SECONDS": "450",
}


def page(context) -> None:
    """Called when a task fails: replace with the deployment's pager (Slack, PagerDuty, e-mail)."""
    task = context["task_instance"]
    print(f"mirador: {task.task_id} failed in {task.dag_id}, run {context['run_id']}")


with DAG(
    dag_id="mirador_refresh",
    description="mirador load --once -> mirador build -> mirador status",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one writer of the warehouse file at a time
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": page,
        "env": ENV,
        "append_env": True,
    },
    tags=["mirador"],
) as dag:
    load = BashOperator(task_id="load", bash_command=f"{MIRADOR} load --once --no-progress")
    build = BashOperator(task_id="build", bash_command=f"{MIRADOR} build")
    # No retries: a stale or broken verdict is the news, and the next run checks again.
    status = BashOperator(task_id="status", bash_command=f"{MIRADOR} status", retries=0)
    load >> build >> status
