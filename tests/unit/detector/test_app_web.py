"""The detector's Faust web server: off unless a port is configured, and then on loopback unless told otherwise."""

from __future__ import annotations

from schemas.topics import Topics
from services.common.settings import Settings
from services.detector.app import create_app


def test_the_faust_web_server_is_off_by_default() -> None:
    app = create_app(Settings(), Topics(prefix="t."), bootstrap="127.0.0.1:1")
    assert app.conf.web_enabled is False


def test_with_a_port_it_binds_to_loopback_unless_another_host_is_configured() -> None:
    app = create_app(Settings(web_port=16066), Topics(prefix="t."), bootstrap="127.0.0.1:1")
    assert app.conf.web_enabled is True
    assert (app.conf.web_bind, app.conf.web_port) == ("127.0.0.1", 16066)
    wide = create_app(
        Settings(web_port=16066, web_host="0.0.0.0"), Topics(prefix="t."), bootstrap="127.0.0.1:1"
    )
    assert wide.conf.web_bind == "0.0.0.0"
