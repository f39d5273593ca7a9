"""Settings: read from HOTSPOT_* variables, validated with messages naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("HOTSPOT_") and not name.startswith("HOTSPOT_TEST_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.database_url is None and settings.redis_url is None and settings.amqp_url is None
    assert settings.workers_in_process
    assert settings.port == 8080


def test_dev_mode_generates_and_keeps_a_jwt_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_DATA_DIR", str(tmp_path))
    first = load_settings().resolved_jwt_secret()
    assert len(first) >= 32
    assert load_settings().resolved_jwt_secret() == first
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HOTSPOT_PORT", "eighty", "HOTSPOT_PORT"),
        ("HOTSPOT_PORT", "70000", "HOTSPOT_PORT"),
        ("HOTSPOT_DATABASE_URL", "mysql://x", "HOTSPOT_DATABASE_URL"),
        ("HOTSPOT_REDIS_URL", "http://x", "HOTSPOT_REDIS_URL"),
        ("HOTSPOT_AMQP_URL", "redis://x", "HOTSPOT_AMQP_URL"),
        ("HOTSPOT_JWT_SECRET", "short", "at least 32"),
        ("HOTSPOT_JWT_ALGORITHM", "none", "HOTSPOT_JWT_ALGORITHM"),
        ("HOTSPOT_LIMIT_REST_BODY_BYTES", "10", "HOTSPOT_LIMIT_REST_BODY_BYTES"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_production_requires_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_ENV", "production")
    with pytest.raises(SettingsError, match="HOTSPOT_JWT_SECRET is required"):
        load_settings()
    monkeypatch.setenv("HOTSPOT_JWT_SECRET", "s" * 40)
    assert load_settings().env == "production"


def test_asymmetric_algorithms_need_key_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_JWT_ALGORITHM", "RS256")
    with pytest.raises(SettingsError, match="KEY_FILE"):
        load_settings()


def test_empty_url_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOTSPOT_SMTP_URL", "HOTSPOT_REDIS_URL", "HOTSPOT_AMQP_URL", "HOTSPOT_DATABASE_URL"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.smtp_url is None and settings.redis_url is None
    assert settings.amqp_url is None and settings.database_url is None


def test_cors_origins_accept_a_comma_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_CORS_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("HOTSPOT_CORS_ORIGINS", '["https://c.example"]')
    assert load_settings().cors_origins == ["https://c.example"]


@pytest.mark.parametrize(("env", "message"), [
    ({"HOTSPOT_ARGON2_MEMORY_KIB": "8", "HOTSPOT_ARGON2_PARALLELISM": "2"}, "ARGON2_MEMORY_KIB"),
    ({"HOTSPOT_INPROCESS_WORKERS": "false"}, "HOTSPOT_AMQP_URL"),
])
def test_inconsistent_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()
