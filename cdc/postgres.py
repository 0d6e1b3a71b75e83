"""The PostgreSQL side of the stack: a native cluster with logical WAL, and the service databases.

Run as root, the cluster belongs to the unprivileged `postgres` OS user (initdb refuses root).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from cdc.config import SERVICES, StackSettings
from cdc.errors import StackError
from cdc.processes import require_free_port, tail, wait_until

log = logging.getLogger(__name__)

SCHEMA = "mirador"
"""Per-database schema for bookkeeping: the heartbeat and signal tables here, migrations from the services."""

PUBLICATION = "mirador"
"""Every table in `public`, present and future, plus the heartbeat and the signal table: no connector
edit per table."""

HEARTBEAT_TABLE = f"{SCHEMA}.heartbeat"

SIGNAL_TABLE = f"{SCHEMA}.debezium_signal"
"""Debezium's signal table (`signal.data.collection`): a row asks for an incremental snapshot, and the
connector writes its chunk watermarks here, read back from the WAL (cdc/resnapshot.py)."""

CONFIG = """\
# Written by mirador; included from postgresql.conf.
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{socket_dir}'
wal_level = logical
max_wal_senders = 16
max_replication_slots = 16
max_slot_wal_keep_size = '{max_slot_wal_keep_size}'
max_connections = 300
shared_buffers = 256MB
log_line_prefix = '%m [%p] %q%u@%d '
"""

HBA = """\
# Written by mirador: peer for the OS superuser on the socket, passwords over TCP.
local   all          postgres                  peer
host    all          all          127.0.0.1/32 scram-sha-256
host    replication  {cdc_user}   127.0.0.1/32 scram-sha-256
"""

ROLE_EXISTS = "select 1 from pg_roles where rolname = %s"
DATABASE_EXISTS = "select 1 from pg_database where datname = %s"
PUBLICATION_EXISTS = "select 1 from pg_publication where pubname = %s"
PUBLISHES = "select 1 from pg_publication_tables where pubname = %s and schemaname = %s and tablename = %s"


# -- Binaries and OS user ---------------------------------------------------------------------------


def bin_dir(settings: StackSettings) -> Path:
    """The directory holding initdb and pg_ctl, preferring PostgreSQL 15."""
    if settings.pg_bin_dir:  # named explicitly: no silent fallback to another installation
        candidates = [settings.pg_bin_dir]
    else:
        candidates = sorted(Path("/usr/lib/postgresql").glob("15/bin"))
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        if found := shutil.which("initdb"):
            candidates.append(Path(found).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise StackError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found",
        "install Debian's postgresql-15 package (apt-get install postgresql-15), set MIRADOR_PG_BIN_DIR "
        "to their directory, or point MIRADOR_PG_DSN at an existing server",
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _os_user() -> pwd.struct_passwd:
    if not _as_root():
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "running as root, but there is no `postgres` OS user to own the cluster (initdb refuses root)",
            "create it (useradd --system --home /var/lib/postgresql postgres) or install postgresql-15",
        ) from None


def _run_pg(settings: StackSettings, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a server binary, as the `postgres` OS user when we are root."""
    cmd = [str(bin_dir(settings) / str(argv[0])), *map(str, argv[1:])]
    if _as_root():
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    if check and proc.returncode != 0:
        raise StackError(f"{argv[0]} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def _owned_dir(path: Path, user: pwd.struct_passwd) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if _as_root():
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o700)
    return path


def _reachable_by(user: pwd.struct_passwd, path: Path) -> bool:
    """Can `user` traverse every parent of `path`? (A checkout under /root is not.)"""
    if not _as_root():
        return True
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            continue
        if not st.st_mode & 0o001 and not (st.st_gid == user.pw_gid and st.st_mode & 0o010):
            return False
    return True


def data_dir(settings: StackSettings) -> Path:
    if settings.pg_data_dir:
        return settings.pg_data_dir
    preferred = settings.home / "postgres"
    if _reachable_by(_os_user(), preferred.parent):
        return preferred / "data"
    # The postgres user cannot reach a home under a private directory: keep the cluster beside it.
    digest = hashlib.sha256(str(settings.home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mirador-postgres-{digest}" / "data"


def _log_file(settings: StackSettings) -> Path:
    return data_dir(settings).parent / "postgres.log"


# -- Cluster lifecycle -----------------------------------------------------------------------------


def superuser_dsn(settings: StackSettings, dbname: str = "postgres") -> str:
    if settings.pg_dsn:
        return make_conninfo(settings.pg_dsn, dbname=dbname)
    return make_conninfo(
        host=settings.pg_host,
        port=settings.pg_port,
        user="postgres",
        password=settings.pg_superuser_password.get_secret_value(),
        dbname=dbname,
        connect_timeout=5,
    )


def service_dsn(settings: StackSettings, service: str) -> str:
    """DSN a write service uses: its own database, as its owner role."""
    params = conninfo_to_dict(superuser_dsn(settings, service))
    params.update(user=service, password=settings.pg_service_password.get_secret_value())
    return make_conninfo(**params)


def endpoint(settings: StackSettings) -> tuple[str, int]:
    """Host and port of the server, native or brought."""
    params = conninfo_to_dict(superuser_dsn(settings))
    return str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))


def is_running(settings: StackSettings) -> bool:
    pidfile = data_dir(settings) / "postmaster.pid"
    if not pidfile.exists():
        return False
    return _run_pg(settings, "pg_ctl", "status", "-D", data_dir(settings), check=False).returncode == 0


def pid(settings: StackSettings) -> int | None:
    try:
        return int((data_dir(settings) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def accepts_connections(settings: StackSettings) -> bool:
    try:
        with psycopg.connect(superuser_dsn(settings), connect_timeout=2) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def init_cluster(settings: StackSettings) -> None:
    """initdb once, then (re)write mirador's own config and pg_hba on every start."""
    user = _os_user()
    data = data_dir(settings)
    _owned_dir(data.parent, user)
    if not (data / "PG_VERSION").exists():
        _owned_dir(data, user)
        with tempfile.NamedTemporaryFile("w", dir=data.parent, delete=False) as pw:
            pw.write(settings.pg_superuser_password.get_secret_value() + "\n")
        if _as_root():
            os.chown(pw.name, user.pw_uid, user.pw_gid)
        try:
            log.info("initialising a PostgreSQL cluster in %s", data)
            _run_pg(
                settings,
                "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--pwfile",
                pw.name,
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            )
        finally:
            os.unlink(pw.name)
    socket_dir = _owned_dir(data.parent / "run", user)
    _write_as(
        user,
        data / "mirador.conf",
        CONFIG.format(
            host=settings.pg_host,
            port=settings.pg_port,
            socket_dir=socket_dir,
            max_slot_wal_keep_size=settings.pg_max_slot_wal_keep_size,
        ),
    )
    _write_as(user, data / "pg_hba.conf", HBA.format(cdc_user=settings.cdc_user))
    conf = data / "postgresql.conf"
    if "include_if_exists = 'mirador.conf'" not in conf.read_text():
        with conf.open("a") as f:
            f.write("\ninclude_if_exists = 'mirador.conf'\n")


def _write_as(user: pwd.struct_passwd, path: Path, text: str) -> None:
    path.write_text(text)
    if _as_root():
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o600)


def start(settings: StackSettings) -> bool:
    """Start the native cluster; False if it was already running."""
    if is_running(settings):
        return False
    require_free_port(settings.pg_host, settings.pg_port, "PostgreSQL", "MIRADOR_PG_PORT")
    init_cluster(settings)
    logfile = _log_file(settings)
    log.info("starting PostgreSQL on %s:%s", settings.pg_host, settings.pg_port)
    proc = _run_pg(settings, "pg_ctl", "start", "-D", data_dir(settings), "-l", logfile, "-w", "-t", "60", check=False)
    if proc.returncode != 0:
        raise StackError("PostgreSQL did not start", log=tail(logfile))
    wait_until(lambda: accepts_connections(settings), what="PostgreSQL", timeout=settings.startup_timeout, log=logfile)
    return True


def stop(settings: StackSettings) -> bool:
    if not is_running(settings):
        return False
    log.info("stopping PostgreSQL (pid %s)", pid(settings))
    _run_pg(settings, "pg_ctl", "stop", "-D", data_dir(settings), "-m", "fast", "-w", "-t", "60")
    return True


# -- Service databases -----------------------------------------------------------------------------


def bootstrap(settings: StackSettings, services: tuple[str, ...] = SERVICES) -> None:
    """Idempotently create each service's role and database, the Debezium role and the publications."""
    service_pw = settings.pg_service_password.get_secret_value()
    cdc_pw = settings.cdc_password.get_secret_value()
    cdc = sql.Identifier(settings.cdc_user)
    with psycopg.connect(superuser_dsn(settings), autocommit=True) as conn:
        _ensure_role(conn, settings.cdc_user, cdc_pw, replication=True)
        for service in services:
            _ensure_role(conn, service, service_pw)
            if not conn.execute(DATABASE_EXISTS, (service,)).fetchone():
                conn.execute(
                    sql.SQL("create database {} owner {}").format(sql.Identifier(service), sql.Identifier(service))
                )
            conn.execute(sql.SQL("grant connect on database {} to {}").format(sql.Identifier(service), cdc))
    for service in services:
        with psycopg.connect(superuser_dsn(settings, service), autocommit=True) as conn:
            _prepare_database(conn, service, cdc)


def _ensure_role(conn: psycopg.Connection, name: str, password: str, replication: bool = False) -> None:
    verb = "alter" if conn.execute(ROLE_EXISTS, (name,)).fetchone() else "create"
    conn.execute(
        sql.SQL("{} role {} with login {} password {}").format(
            sql.SQL(verb),
            sql.Identifier(name),
            sql.SQL("replication" if replication else "noreplication"),
            sql.Literal(password),
        )
    )


def _prepare_database(conn: psycopg.Connection, owner: str, cdc: sql.Identifier) -> None:
    """Least privilege for Debezium: read what it captures, write only its heartbeat and its watermarks."""
    own = sql.Identifier(owner)
    schema = sql.Identifier(SCHEMA)
    heartbeat = sql.Identifier(SCHEMA, "heartbeat")
    signal = sql.Identifier(*SIGNAL_TABLE.split("."))
    for statement in (
        sql.SQL("create schema if not exists {} authorization {}").format(schema, own),
        sql.SQL("create table if not exists {} (id int primary key, beat_at timestamptz not null)").format(heartbeat),
        # The shape Debezium requires; its watermark ids are a UUID and a suffix (42 characters at most).
        sql.SQL(
            "create table if not exists {} (id varchar(42) primary key, type varchar(32) not null, data varchar(2048))"
        ).format(signal),
        sql.SQL("grant usage on schema public, {} to {}").format(schema, cdc),
        sql.SQL("grant select on all tables in schema public to {}").format(cdc),
        sql.SQL("alter default privileges for role {} in schema public grant select on tables to {}").format(own, cdc),
        sql.SQL("grant select, insert, update on {} to {}").format(heartbeat, cdc),
        # Debezium only inserts here (the default insert_insert watermarking) and reads the rows from the WAL.
        sql.SQL("grant insert on {} to {}").format(signal, cdc),
    ):
        conn.execute(statement)
    # Only when it is not so already: the exclusive lock would wait for any open transaction that read the
    # table (a connector's snapshot, a heartbeat), and `stack up` runs again on a running stack.
    for table in (heartbeat, signal):
        held_by = conn.execute(
            "select pg_get_userbyid(relowner) from pg_class where oid = %s::regclass", (table.as_string(conn),)
        ).fetchone()[0]
        if held_by != owner:
            conn.execute(sql.SQL("alter table {} owner to {}").format(table, own))
    if not conn.execute(PUBLICATION_EXISTS, (PUBLICATION,)).fetchone():
        # FOR TABLES IN SCHEMA needs a superuser, which is why Debezium does not create it.
        conn.execute(
            sql.SQL("create publication {} for tables in schema public, table {}, {}").format(
                sql.Identifier(PUBLICATION), heartbeat, signal
            )
        )
    elif not conn.execute(PUBLISHES, (PUBLICATION, *SIGNAL_TABLE.split("."))).fetchone():
        # A database bootstrapped before the signal table existed.
        conn.execute(sql.SQL("alter publication {} add table {}").format(sql.Identifier(PUBLICATION), signal))


def slots(settings: StackSettings) -> list[dict]:
    """Each replication slot with the WAL it retains, for `stack status`."""
    query = """
        select slot_name, database, active,
               pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained_bytes,
               confirmed_flush_lsn::text as confirmed_flush_lsn
        from pg_replication_slots order by slot_name
    """
    with psycopg.connect(superuser_dsn(settings), row_factory=dict_row) as conn:
        return conn.execute(query).fetchall()
