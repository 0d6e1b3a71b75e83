"""Launching the stack's JVM processes: Java check, log4j2 config, heap sizing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cdc.config import StackSettings
from cdc.errors import StackError

LOG4J2 = """\
# Written by mirador: a size-rolled file per component.
status = warn
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def require_java(settings: StackSettings) -> str:
    java = shutil.which(settings.java)
    if java is None:
        raise StackError(
            f"Java ({settings.java}) is not on PATH; Kafka and Kafka Connect need Java 17 or newer",
            "install it (apt-get install openjdk-17-jre-headless) or set MIRADOR_JAVA to its path",
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise StackError(
            f"{java} is not Java 17 or newer ({out.splitlines()[0] if out else '?'})",
            "install Java 17 or set MIRADOR_JAVA to a Java 17+ executable",
        )
    return java


def command(settings: StackSettings, name: str, heap: str, classpath: str, main: str, *args: str) -> list[str]:
    """A JVM command line for component `name`, marked with the home so `down` finds only ours."""
    config = settings.run / f"{name}-log4j2.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(LOG4J2.format(log=settings.logs / f"{name}.log"))
    return [
        require_java(settings),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config}",
        f"-Dmirador.home={settings.home}",
        "-cp",
        classpath,
        main,
        *args,
    ]


def marker(settings: StackSettings) -> str:
    return f"-Dmirador.home={settings.home}"


def out_file(settings: StackSettings, name: str) -> Path:
    """Where a JVM's own stdout/stderr (start-up failures, crashes) goes."""
    return settings.logs / f"{name}.out"
