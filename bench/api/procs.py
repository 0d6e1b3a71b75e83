"""What a server's processes hold, read from /proc: each process's RSS and CPU seconds, and the
established connections to a port each one holds (which uvicorn worker took which subscriber)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: int) -> list[int]:
    """`root` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """CPU time of all its threads: from schedstat (nanoseconds) where the kernel keeps it, else in ticks."""
    try:
        return (
            sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
        )
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError):
        return 0.0


def workers(root: int) -> dict[int, str]:
    """pid -> role of a server's processes that do the work (not multiprocessing's resource tracker)."""
    roles, n = {}, 0
    for pid in sorted(tree(root)):
        line = cmdline(pid)
        if "resource_tracker" in line:
            continue
        if pid == root:
            roles[pid] = "main"
        else:
            n += 1
            roles[pid] = f"worker {n}"
    return roles


def connections(pids: list[int], port: int) -> dict[int, int]:
    """pid -> established TCP connections accepted on `port` that it holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    held = {}
    for pid in pids:
        count = 0
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(fd.path)
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    count += 1
        except OSError:
            pass
        held[pid] = count
    return held


class PeakRss(threading.Thread):
    """Samples the summed RSS of a process tree every `every` seconds until stopped; `.peak` in MB."""

    def __init__(self, root: int | None, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.every, self.peak = root, every, 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while self.root is not None and not self.done.is_set():
            self.peak = max(self.peak, sum(rss_mb(pid) for pid in tree(self.root)))
            self.done.wait(self.every)

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=2)
