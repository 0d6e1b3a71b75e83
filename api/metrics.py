"""`/metrics` in Prometheus' text format: requests by route and status, a latency histogram, the
publication's age, read-your-writes waiters and live-stream subscribers (per worker process)."""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import datetime

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter = Counter()
        self.buckets: dict[str, list[int]] = {}
        self.sums: Counter = Counter()
        self.waiters = 0
        self.gauge_values: dict[str, float] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        counts = self.buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self.sums[route] += seconds

    def gauges(self, served, streams) -> None:
        age = float("nan")
        if served.published_at:
            age = time.time() - datetime.fromisoformat(served.published_at).timestamp()
        self.gauge_values = {
            "mirador_api_publication_age_seconds": age,
            "mirador_api_waiters": self.waiters,
            "mirador_api_sse_subscribers": streams.subscribers,
            "mirador_api_served_seq": served.seq,
        }

    def render(self) -> bytes:
        worker = f'worker="{os.getpid()}"'
        lines = ["# TYPE mirador_api_requests_total counter"]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'mirador_api_requests_total{{{worker},route="{route}",status="{status}"}} {n}')
        lines.append("# TYPE mirador_api_request_seconds histogram")
        for route, counts in sorted(self.buckets.items()):
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts):
                running += n
                le = "+Inf" if bound == float("inf") else f"{bound}"
                lines.append(f'mirador_api_request_seconds_bucket{{{worker},route="{route}",le="{le}"}} {running}')
            lines.append(f'mirador_api_request_seconds_sum{{{worker},route="{route}"}} {self.sums[route]:.6f}')
            lines.append(f'mirador_api_request_seconds_count{{{worker},route="{route}"}} {running}')
        for name, value in self.gauge_values.items():
            lines += [f"# TYPE {name} gauge", f"{name}{{{worker}}} {value}"]
        return ("\n".join(lines) + "\n").encode()
