from __future__ import annotations

from pathlib import Path

import pytest

from vectorizer.errors import ValidationError
from vectorizer.settings import Settings, load, not_defaults, unknown_environment


def test_defaults() -> None:
    s = load({}, env={})
    assert s == Settings()
    assert (s.host, s.port, s.wal_fsync) == ("127.0.0.1", 15002, "always")


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 1000\nhost: 0.0.0.0\nlog_level: debug\nsnapshot_on_shutdown: false\n")
    env = {"VECTORIZER_PORT": "2000", "VECTORIZER_HOST": "10.0.0.1"}
    s = load({"port": "3000"}, env=env, config_file=cfg)
    assert s.port == 3000 and s.host == "10.0.0.1" and s.log_level == "debug"
    assert s.snapshot_on_shutdown is False
    assert load({}, env={**env, "VECTORIZER_CONFIG": str(cfg)}).port == 2000


def test_a_data_dir_with_a_tilde_is_the_home_directory(tmp_path: Path) -> None:
    assert load({"data_dir": "~/vz"}, env={}).data_dir == Path.home() / "vz"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 15003.0\nnode_id: 12345\n")  # (whole numbers, digits as a name)
    s = load({}, env={}, config_file=cfg)
    assert (s.port, s.node_id) == (15003, "12345")


@pytest.mark.parametrize(
    ("flags", "env", "file_text"),
    [
        ({"port": "many"}, {}, None),
        ({}, {"VECTORIZER_WAL_FSYNC": "sometimes"}, None),
        ({}, {"VECTORIZER_WAL_FSYNC": "99999999999999999999"}, None),  # (never, unsaid)
        ({"wal_fsync": "3600001ms"}, {}, None),
        ({}, {}, "bogus_setting: 1\n"),
        ({}, {}, "- a list\n"),
        ({}, {"VECTORIZER_HNSW_M": "1"}, None),
        ({}, {"VECTORIZER_SNAPSHOT_ON_SHUTDOWN": "perhaps"}, None),
        ({"idle_poll_us": "-1"}, {}, None),
        ({}, {"VECTORIZER_IDLE_POLL_US": "1000000"}, None),
        ({"port": "70000"}, {}, None),  # (it wrapped around to 4464)
        ({"port": "-1"}, {}, None),
        ({"host": ""}, {}, None),  # (every interface, unasked)
        ({}, {"VECTORIZER_HOST": " "}, None),
        ({"snapshots_retained": "0"}, {}, None),  # (every snapshot failed)
        ({"log_level": "loud"}, {}, None),
        ({"max_body_bytes": "0"}, {}, None),
        ({"max_search_limit": "0"}, {}, None),
        ({"max_batch_points": "0"}, {}, None),
        ({"wal_segment_bytes": "-5"}, {}, None),
        ({"snapshot_interval_s": "nan"}, {}, None),
        ({"snapshot_interval_s": "-1"}, {}, None),
        ({"heartbeat_interval_ms": "0"}, {}, None),
        ({"sync_timeout_ms": "-1"}, {}, None),
        ({"jwt_leeway_s": "-5"}, {}, None),
        ({"rate_limit_rps": "nan"}, {}, None),
        ({}, {}, "data_dir:\n"),  # (null: it became ./None)
        ({}, {}, "data_dir: ''\n"),  # (it became the current directory)
        ({"data_dir": ""}, {}, None),
        ({}, {}, "host: [a, b]\n"),
        ({}, {}, "node_id: {x: 1}\n"),
        ({}, {}, "port: 15002.9\n"),
        ({}, {}, "idle_poll_us: true\n"),
        ({"port": "8_0"}, {}, None),  # (int() reads it as 80)
        ({}, {"VECTORIZER_MEMORY_HIGH_WATER": "0_5"}, None),
        # YAML 1.1's other number forms are text, which a number setting refuses (port
        # 0x1f was 31, 1_000 was 1000, 1:30 was 90, 0b101 was 5).
        ({}, {}, "port: 0x1f\n"),
        ({}, {}, "port: 1_000\n"),
        ({}, {}, "port: 0b101\n"),
        ({}, {}, "snapshot_interval_s: 1:30\n"),
        ({}, {}, "rate_limit_rps: 1_0.5\n"),
        ({}, {}, "node_id: 1.50\n"),  # (it was "1.5")
        # the digits of other scripts, which int() and float() read (port 15002)
        ({"port": "\uff11\uff15\uff10\uff10\uff12"}, {}, None),
        ({}, {"VECTORIZER_PORT": "\u0661\u0665\u0660\u0660\u0662"}, None),
        ({}, {}, "snapshot_interval_s: \uff13\uff10\n"),
        # URLs that name no host, or no http(s): a replica logged its lost link for ever
        ({"role": "replica", "primary_url": "abc"}, {}, None),
        ({}, {"VECTORIZER_ADVERTISE_URL": "http://"}, None),
        ({"tracing_exporter": "otlp", "otlp_endpoint": "garbage"}, {}, None),
        ({}, {}, "primary_url: ftp://host/\n"),
        ({}, {}, "advertise_url: 'http://[::1'\n"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path, flags: dict[str, str], env: dict[str, str], file_text: str | None
) -> None:
    cfg = None
    if file_text is not None:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(file_text)
    with pytest.raises(ValidationError):
        load(flags, env=env, config_file=cfg)


@pytest.mark.parametrize("text", ["0123", "0x1f", "1_000", "1:30", "0b101", "0o17"])
def test_a_node_id_in_a_config_file_is_the_text_written(tmp_path: Path, text: str) -> None:
    """As from the environment: YAML 1.1 read 0123 as octal (node 83), 0x1f as 31."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"node_id: {text}\n")
    assert load({}, env={}, config_file=cfg).node_id == text
    assert load({}, env={"VECTORIZER_NODE_ID": text}).node_id == text


@pytest.mark.parametrize(
    ("text", "audit", "metrics"),
    [("off", "off", False), ("on", "on", True), ("no", "no", False), ("yes", "yes", True)],
)
def test_yaml_on_off_yes_no_are_the_text_written(
    tmp_path: Path, text: str, audit: str, metrics: bool
) -> None:
    """As from the environment: YAML 1.1 read them as booleans, and ``audit_log_path:
    off`` (its documented value) was refused as no text; a boolean setting reads them."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"audit_log_path: {text}\nmetrics_enabled: {text}\nnode_id: {text}\n")
    s = load({}, env={}, config_file=cfg)
    assert (s.audit_log_path, s.metrics_enabled, s.node_id) == (audit, metrics, text)
    cfg.write_text("metrics_enabled: false\nsnapshot_on_shutdown: True\n")
    s = load({}, env={}, config_file=cfg)
    assert (s.metrics_enabled, s.snapshot_on_shutdown) == (False, True)


def test_urls_with_a_host_are_taken() -> None:
    env = {"VECTORIZER_ADVERTISE_URL": "https://node-0.svc:15002", "VECTORIZER_ROLE": "replica"}
    flags = {"primary_url": "http://[::1]:15002", "otlp_endpoint": "http://collector:4318/v1"}
    s = load(flags, env=env)
    assert (s.primary_url, s.advertise_url) == ("http://[::1]:15002", "https://node-0.svc:15002")


def test_an_error_names_the_setting_and_where_its_value_came_from(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hnsw_m: 1\nport: 1000\n")
    cases = [
        ({}, {"VECTORIZER_PORT": "abc"}, "port", "environment variable VECTORIZER_PORT"),
        ({}, {}, "hnsw_m", f"config file {cfg}"),  # (its field was the index's: hnsw.m)
        ({"port": "99999", "hnsw_m": "8"}, {}, "port", "flag --port"),
        (
            {"hnsw_m": "8"},
            {"VECTORIZER_LOG_FORMAT": "xml"},
            "log_format",
            "environment variable VECTORIZER_LOG_FORMAT",
        ),
        ({"hnsw_ef_search": "0", "hnsw_m": "8"}, {}, "hnsw_ef_search", "flag --hnsw-ef-search"),
    ]
    for flags, env, field, source in cases:
        with pytest.raises(ValidationError) as refused:
            load(flags, env=env, config_file=cfg)
        assert refused.value.field == field, refused.value
        assert refused.value.message.startswith(field), refused.value.message
        assert refused.value.message.endswith(f"(from {source})"), refused.value.message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("port: [\n", "expected the node content, but found '<stream end>' (line 2, column 1)"),
        ("a: 1\n\x00\n", "special characters are not allowed"),
        # (PyYAML kept the last quietly: the file read as one port ran another)
        ("port: 1\nhost: a\nport: 2\n", "the key 'port' appears more than once (line 3, "),
    ],
)
def test_a_config_file_that_is_not_yaml_is_named_on_one_line(
    tmp_path: Path, text: str, reason: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ValidationError) as refused:
        load({}, env={}, config_file=cfg)
    assert refused.value.field == "config"
    assert "\n" not in refused.value.message and reason in refused.value.message


def test_a_merged_mapping_may_still_be_overridden(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("<<: {port: 16000, host: 127.0.0.2}\nport: 16001\n")
    got = load({}, env={}, config_file=cfg)
    assert (got.port, got.host) == (16001, "127.0.0.2")


def test_a_misspelt_environment_variable_is_named() -> None:
    env = {"VECTORIZER_WAL_FSYNCC": "never", "VECTORIZER_PORT": "1", "VECTORIZER_CONFIG": "x"}
    env |= {"VECTORIZER_OPERATOR_NAMESPACE": "ns", "PATH": "/bin"}
    assert unknown_environment(env) == ["VECTORIZER_WAL_FSYNCC"]


def test_the_start_up_log_names_the_settings_not_at_their_defaults_and_hides_secrets() -> None:
    assert not_defaults(Settings()) == "none"
    s = Settings(port=16000, auth_admin_key="k" * 20, wal_fsync="never")
    assert not_defaults(s) == "port=16000, wal_fsync='never', auth_admin_key=<set>"
    assert "k" * 20 not in not_defaults(s)


def test_the_start_up_log_hides_a_urls_password() -> None:
    s = Settings(otlp_endpoint="http://collector:S3cr@t@127.0.0.1:4318/v1/traces")
    assert not_defaults(s) == "otlp_endpoint='http://collector:<set>@127.0.0.1:4318/v1/traces'"
    assert (
        not_defaults(Settings(primary_url="https://user@h:1")) == "primary_url='https://user@h:1'"
    )
