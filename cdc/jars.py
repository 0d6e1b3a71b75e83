"""Resolve the Kafka, Connect and Debezium jars from Maven Central into the state dir, once."""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import subprocess
from pathlib import Path

from cdc.config import StackSettings
from cdc.errors import StackError

log = logging.getLogger(__name__)

POM = Path(__file__).with_name("pom.xml")
PLUGIN = "debezium-connector-postgres"


def kafka_classpath(settings: StackSettings) -> str:
    return str(settings.jars / "kafka" / "*")


def plugin_path(settings: StackSettings) -> Path:
    return settings.jars / "plugins"


def _stamp(settings: StackSettings) -> Path:
    return settings.jars / ".resolved"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def is_cached(settings: StackSettings) -> bool:
    stamp = _stamp(settings)
    return stamp.exists() and stamp.read_text().strip() == _pom_digest()


def require_maven(settings: StackSettings) -> None:
    if shutil.which(settings.maven) is None:
        raise StackError(
            f"Maven ({settings.maven}) is not on PATH and the jars are not cached in {settings.jars}",
            "install Maven (apt-get install maven) or set MIRADOR_MAVEN to its path",
        )


def resolve(settings: StackSettings, *, force: bool = False) -> Path:
    """Copy the jars into `<jars>/kafka` and `<jars>/plugins/debezium-connector-postgres`.

    Cached by the pom's digest: once resolved, no network and no Maven are needed.
    """
    if is_cached(settings) and not force:
        return settings.jars
    require_maven(settings)
    staging = settings.jars.with_name(settings.jars.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    targets = {
        "kafka": (staging / "kafka", []),
        "debezium": (staging / "plugins" / PLUGIN, ["-DexcludeGroupIds=org.apache.kafka"]),
    }
    for profile, (out, extra) in targets.items():
        log.info("resolving %s jars from Maven Central (cached in ~/.m2 after the first time)", profile)
        cmd = [
            settings.maven,
            "-B",
            "-q",
            *shlex.split(settings.maven_args),
            "-f",
            str(POM),
            "-P",
            profile,
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out}",
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = "\n".join(f"    {line}" for line in (proc.stdout + proc.stderr).splitlines()[-15:])
            raise StackError(
                f"Maven could not resolve the {profile} jars and they are not cached in {settings.jars}",
                "check that Maven Central is reachable (or a mirror in ~/.m2/settings.xml), then run "
                "`mirador stack jars` again",
                output,
            )
    shutil.rmtree(settings.jars, ignore_errors=True)
    settings.jars.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(settings.jars)
    _stamp(settings).write_text(_pom_digest() + "\n")
    log.info("jars ready in %s (%.1f MiB)", settings.jars, size_mib(settings.jars))
    return settings.jars


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*.jar")) / 2**20
