"""An outpost's settings: authentik's names, Tessera's first, defaults, and one clear line for a
bad or missing value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.outposts.common import settings


def test_authentiks_names_and_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHENTIK_HOST", "https://core.example.com/")
    monkeypatch.setenv("AUTHENTIK_TOKEN", "tok-123456789")
    loaded = settings.load()
    assert loaded.host == "https://core.example.com"
    assert loaded.token.get_secret_value() == "tok-123456789"
    assert "tok-123456789" not in repr(loaded)
    assert loaded.insecure is False and loaded.host_browser == ""
    assert loaded.browser_url == "https://core.example.com"
    assert (loaded.listen.http, loaded.listen.https, loaded.listen.metrics) == (
        "0.0.0.0:9000",
        "0.0.0.0:9443",
        "0.0.0.0:9300",
    )
    assert loaded.state_dir == settings.DEFAULT_STATE_DIR


def test_tessera_names_come_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTHENTIK_HOST", "http://a.example")
    monkeypatch.setenv("TESSERA_HOST", "http://t.example")
    monkeypatch.setenv("AUTHENTIK_TOKEN", "authentik-token")
    monkeypatch.setenv("TESSERA_INSECURE", "true")
    monkeypatch.setenv("AUTHENTIK_HOST_BROWSER", "https://sso.example.com")
    monkeypatch.setenv("AUTHENTIK_LISTEN__HTTP", "127.0.0.1:19000")
    monkeypatch.setenv("TESSERA_LISTEN__METRICS", "[::]:19300")
    monkeypatch.setenv("AUTHENTIK_STATE_DIR", str(tmp_path))
    loaded = settings.load()
    assert loaded.host == "http://t.example" and loaded.insecure is True
    assert loaded.browser_url == "https://sso.example.com"
    assert loaded.listen.http == "127.0.0.1:19000"
    assert settings.split_address(loaded.listen.metrics) == ("::", 19300)
    assert loaded.state_dir == tmp_path


def test_the_token_from_a_mounted_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-a-file-123\n")
    monkeypatch.setenv("AUTHENTIK_HOST", "http://core")
    monkeypatch.setenv("AUTHENTIK_TOKEN", f"file://{tmp_path / 'token'}")
    assert settings.load().token.get_secret_value() == "from-a-file-123"
    monkeypatch.setenv("AUTHENTIK_TOKEN", "env://OTHER_VARIABLE")
    monkeypatch.setenv("OTHER_VARIABLE", "from-another-variable")
    assert settings.load().token.get_secret_value() == "from-another-variable"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHENTIK_TOKEN": "t"}, "AUTHENTIK_HOST: required, but not set"),
        ({"AUTHENTIK_HOST": "http://core"}, "AUTHENTIK_TOKEN: required, but not set"),
        ({"AUTHENTIK_HOST": "ftp://core", "AUTHENTIK_TOKEN": "t"}, "AUTHENTIK_HOST: must be an"),
        ({"AUTHENTIK_HOST": "http://core?x=1", "AUTHENTIK_TOKEN": "t"}, "AUTHENTIK_HOST: must not"),
        ({"AUTHENTIK_HOST": "http://core", "AUTHENTIK_TOKEN": "  "}, "AUTHENTIK_TOKEN: must not"),
        (
            {"AUTHENTIK_HOST": "http://core", "AUTHENTIK_TOKEN": "a\tb"},
            "AUTHENTIK_TOKEN: must be one line",
        ),
        (
            {"AUTHENTIK_HOST": "http://c", "AUTHENTIK_TOKEN": "t", "AUTHENTIK_INSECURE": "maybe"},
            "AUTHENTIK_INSECURE",
        ),
        (
            {
                "AUTHENTIK_HOST": "http://c",
                "AUTHENTIK_TOKEN": "t",
                "AUTHENTIK_LISTEN__HTTP": "9000",
            },
            "AUTHENTIK_LISTEN__HTTP: must be host:port",
        ),
        (
            {"AUTHENTIK_HOST": "http://c", "AUTHENTIK_TOKEN": "file:///nonexistent/token"},
            "cannot read file:///nonexistent/token",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(settings.SettingsError) as refused:
        settings.load()
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_nested_keys_merged_across_prefixes_and_names_without_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("authentik_host", "http://core")
    monkeypatch.setenv("AUTHENTIK_TOKEN", "token-123456789")
    monkeypatch.setenv("AUTHENTIK_LISTEN", '{"http": "127.0.0.1:1", "https": "127.0.0.1:2"}')
    monkeypatch.setenv("TESSERA_LISTEN__HTTP", "127.0.0.1:3")
    monkeypatch.setenv("AUTHENTIK_NOT_A_SETTING", "ignored")
    monkeypatch.setenv("AUTHENTIK_LISTEN__HTTP__DEEPER", "ignored")
    loaded = settings.load()
    assert loaded.host == "http://core"
    assert (loaded.listen.http, loaded.listen.https) == ("127.0.0.1:3", "127.0.0.1:2")


@pytest.mark.parametrize("value", ["{not json", '["a list"]'])
def test_a_listen_value_that_is_not_a_json_object_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AUTHENTIK_HOST", "http://core")
    monkeypatch.setenv("AUTHENTIK_TOKEN", "token-123456789")
    monkeypatch.setenv("AUTHENTIK_LISTEN", value)
    with pytest.raises(settings.SettingsError, match="AUTHENTIK_LISTEN: not a JSON object"):
        settings.load()
