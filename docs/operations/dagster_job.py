"""mirador on Dagster: a job that drains Kafka into DuckDB, builds and publishes, then checks freshness,
on a five-minute schedule; and a status-only job for deployments that run `mirador run` as a service.

Load it with `dagster dev -f dagster_job.py` (or from a code location). The ops run the `mirador` CLI
on the host holding MIRADOR_HOME. A transient failure (exit 3) asks Dagster to retry; a stale (exit 5)
or broken (exit 6) status fails the run, with the report as metadata, for Dagster's alerting to page.
"""

import json
import os
import subprocess

import dagster as dg

MIRADOR = os.environ.get("MIRADOR_BIN", "/opt/mirador/.venv/bin/mirador")
TRANSIENT, STALE, BROKEN = 3, 5, 6
STATUS_ENV = {
    # A period and a half of the schedule before the views count as stale.
    "MIRADOR_STATUS_MAX_WATERMARK_AGE": "450",
    "MIRADOR_STATUS_MAX_PUBLICATION_AGE": "450",
    "MIRADOR_STATUS_MAX_LAG_SECONDS": "450",
}


def mirador(context: dg.OpExecutionContext, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([MIRADOR, *args], capture_output=True, text=True, env=os.environ | (env or {}))
    context.log.info(f"mirador {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    if done.returncode == TRANSIENT:
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=30)
    return done


@dg.op
def load(context: dg.OpExecutionContext) -> None:
    done = mirador(context, "load", "--once", "--no-progress")
    if done.returncode != 0:
        raise dg.Failure(f"mirador load exited {done.returncode}", metadata={"stderr": done.stderr[-2000:]})


@dg.op(ins={"after": dg.In(dg.Nothing)})
def build(context: dg.OpExecutionContext) -> None:
    done = mirador(context, "build")
    if done.returncode != 0:
        raise dg.Failure(f"mirador build exited {done.returncode}", metadata={"stderr": done.stderr[-2000:]})


@dg.op(ins={"after": dg.In(dg.Nothing)})
def status(context: dg.OpExecutionContext) -> None:
    done = mirador(context, "status", "--json", env=STATUS_ENV)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise dg.Failure(f"mirador status exited {done.returncode}: {done.stderr.strip()}") from None
    if done.returncode in (STALE, BROKEN):
        raise dg.Failure(
            f"mirador is {report['verdict']}: {report['reason']}",
            metadata={"problems": dg.MetadataValue.json(report["problems"])},
        )
    if done.returncode != 0:
        raise dg.Failure(f"mirador status exited {done.returncode}: {done.stderr.strip()}")


@dg.job
def mirador_refresh() -> None:
    """mirador load --once -> mirador build -> mirador status."""
    status(after=build(after=load()))


@dg.job
def mirador_status() -> None:
    """mirador status alone, beside a `mirador run` service."""
    status()


defs = dg.Definitions(
    jobs=[mirador_refresh, mirador_status],
    schedules=[
        dg.ScheduleDefinition(job=mirador_refresh, cron_schedule="*/5 * * * *"),
        dg.ScheduleDefinition(
            job=mirador_status, cron_schedule="* * * * *", default_status=dg.DefaultScheduleStatus.STOPPED
        ),
    ],
)
