"""scripts/ensure-postgres.sh with stand-in PostgreSQL tools on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "ensure-postgres.sh"

PG_ISREADY = """#!/usr/bin/env bash
[ -e "{state}/up" ]
"""
PG_CTLCLUSTER = """#!/usr/bin/env bash
echo "$@" > "{state}/started"
touch "{state}/up"
"""


def tools(tmp_path: Path, *, cluster: bool = True) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"pg_isready": PG_ISREADY, "pg_ctlcluster": PG_CTLCLUSTER}
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text.format(state=tmp_path))
        path.chmod(0o755)
    (tmp_path / "conf").mkdir()
    if cluster:
        (tmp_path / "conf" / "15").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DEALWATCH_TEST_PG_URL"}
    return {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "PG_CONF_DIR": str(tmp_path / "conf")}


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_running_postgresql_is_left_alone(tmp_path: Path) -> None:
    env = tools(tmp_path)
    (tmp_path / "up").touch()

    assert run(env).returncode == 0
    assert not (tmp_path / "started").exists()


def test_a_stopped_postgresql_is_started_with_pg_ctlcluster(tmp_path: Path) -> None:
    result = run(tools(tmp_path))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "started").read_text().split() == ["--skip-systemctl-redirect", "15", "main", "start"]


def test_without_a_cluster_to_start_the_script_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = run(tools(tmp_path, cluster=False))

    assert result.returncode == 1
    assert "PostgreSQL is not running on 127.0.0.1:5432" in result.stderr
