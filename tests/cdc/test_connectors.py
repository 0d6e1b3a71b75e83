"""The connector configs in cdc/connectors/: one per service database, complete, and renderable."""

from __future__ import annotations

import json

import pytest

from cdc import connect
from cdc.config import SERVICES, StackSettings
from cdc.errors import StackError


@pytest.fixture
def configs() -> dict[str, dict]:
    values = connect.placeholders(StackSettings(pg_dsn=None))
    return {s: connect.load_config(path, values) for s, path in zip(SERVICES, connect.connector_files())}


def test_one_connector_per_service_database_with_its_own_slot_and_topic_prefix(configs):
    assert sorted(p.stem for p in connect.CONNECTORS_DIR.glob("*.json")) == sorted(SERVICES)
    for service, config in configs.items():
        assert config["name"] == f"mirador-{service}"
        assert config["database.dbname"] == service
        assert config["topic.prefix"] == service
        assert config["slot.name"] == f"mirador_{service}"
    assert len({c["slot.name"] for c in configs.values()}) == len(SERVICES)


def test_settings_the_loader_relies_on(configs):
    for config in configs.values():
        assert config["plugin.name"] == "pgoutput"
        assert config["publication.name"] == "mirador"
        assert config["publication.autocreate.mode"] == "disabled"
        # Exact decimals with NaN and infinities, their precision and scale from the source type
        # (docs/adr/0029-string-decimals-and-every-type.md); intervals keep months and days apart.
        assert config["decimal.handling.mode"] == "string"
        assert "NUMERIC" in config["datatype.propagate.source.type"]
        assert config["interval.handling.mode"] == "string"
        assert config["include.unknown.datatypes"] == "true"  # else geometric types are left out unsaid
        assert config["provide.transaction.metadata"] == "true"
        assert config["skipped.operations"] == "none"  # truncates are recorded
        assert int(config["heartbeat.interval.ms"]) > 0
        assert "mirador.heartbeat" in config["heartbeat.action.query"]
        assert config["value.converter.schemas.enable"] == "true"
        # A NULL stays NULL, not the column's default (Kafka's JsonConverter replaces it otherwise).
        assert config["value.converter.replace.null.with.default"] == "false"


def test_placeholders_are_filled_from_settings(configs):
    settings = StackSettings(pg_port=25432, connect_pg_host="postgres", cdc_password="s3cret")
    config = connect.load_config(connect.connector_files(("orders",))[0], connect.placeholders(settings))
    assert (config["database.hostname"], config["database.port"]) == ("postgres", "25432")
    assert config["database.password"] == "s3cret"
    assert not any("${" in value for value in config.values())


def test_an_unknown_placeholder_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"name": "x", "database.hostname": "${NOT_PROVIDED}"}))
    with pytest.raises(StackError, match="NOT_PROVIDED"):
        connect.load_config(path, {})


def test_production_refuses_development_passwords():
    with pytest.raises(ValueError, match="MIRADOR_PG_SUPERUSER_PASSWORD"):
        StackSettings(env="production")
