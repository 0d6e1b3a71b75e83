"""A reader process for the concurrency test: hammers the published view tables like an API worker.

    python -m tests.warehouse.readers <published dir> <stop file> <out.json>

Each read follows `current.json` to a publication file, opens it read-only, checks the file is the
publication the pointer names, and records (build id, order count, total of order totals). Errors
are recorded, never raised: the test asserts there are none.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

from warehouse.publish import current_publication


def hammer(published: Path, stop: Path, limit: float = 600) -> dict:
    """Read until `stop` exists (or `limit` seconds pass)."""
    reads, errors, observed = 0, [], []
    deadline = time.monotonic() + limit
    while not stop.exists() and time.monotonic() < deadline:
        publication = current_publication(published)
        if publication is None:
            time.sleep(0.05)
            continue
        try:
            with duckdb.connect(str(publication.path(published)), read_only=True) as conn:
                build_id = conn.execute("select build_id from _publication").fetchone()[0]
                count, total = conn.execute(
                    "select count(*), coalesce(sum(order_total), 0)::varchar from orders_with_invoices"
                ).fetchone()
            if build_id != publication.build_id:
                errors.append(f"pointer names {publication.build_id}, file holds {build_id}")
            observed.append([build_id, count, total])
            reads += 1
        except Exception as err:  # every failure is a finding
            errors.append(f"{type(err).__name__}: {err}")
    return {"reads": reads, "errors": errors, "observed": observed}


if __name__ == "__main__":
    result = hammer(Path(sys.argv[1]), Path(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(result))
