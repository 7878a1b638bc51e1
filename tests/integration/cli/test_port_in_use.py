from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from dealwatch.cli import cli

pytestmark = pytest.mark.integration


def test_up_refuses_a_port_that_is_already_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(cli, ["up", "--port", str(port)])

    assert result.exit_code == 1
    assert f"port {port} is already in use" in result.output
