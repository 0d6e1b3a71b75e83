"""HTTP load with wrk: each request's path from a template, with `{}` replaced by a random line of a
file (an order id, a customer id) picked per request, or the same path every time. The Lua script
reports requests, errors and the latency percentiles as one JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = r"""
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  local template, source = args[1], args[2]
  math.randomseed(os.time() * 1000 + (id or 0))
  local at = template:find("{}", 1, true)
  if at == nil then
    fixed = wrk.format("GET", template)
    return
  end
  prefix, suffix = template:sub(1, at - 1), template:sub(at + 2)
  items = {}
  for line in io.lines(source) do
    if #line > 0 then items[#items + 1] = line end
  end
end

function request()
  if fixed then return fixed end
  return wrk.format("GET", prefix .. items[math.random(#items)] .. suffix)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Failed connections, reads, writes, time-outs and responses other than 2xx/3xx."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def write_script(directory: Path) -> Path:
    path = directory / "pick.lua"
    path.write_text(SCRIPT)
    return path


def run(
    base: str,
    template: str,
    items: Path | None,
    seconds: float,
    *,
    script: Path,
    threads: int = 2,
    connections: int = 64,
) -> Result:
    """wrk against `base` + `template` for `seconds`."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
        "--",
        template,
        str(items or ""),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((line for line in done.stdout.splitlines() if line.startswith("WRK ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(line[4:])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000, errors)
