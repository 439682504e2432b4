"""The README is the front door: its commands must be the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from facesr.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"{re.escape(title)}.*?```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert m, f"README has no code block after {title!r}"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    cmd = _readme_block("Run the tests")
    ci = (ROOT / ".ci" / "run").read_text()
    assert cmd in ci.splitlines(), f"{cmd!r} is not a line of .ci/run"


def test_setup_command_installs_cpu_torch_and_runs_the_demo() -> None:
    cmd = _readme_block("Install and run")
    assert "torch==2.13.0" in cmd and "facesr demo" in cmd


def test_every_command_in_the_readme_exists() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S))
    used = set(re.findall(r"(?:^|&& )facesr ([a-z-]+(?: [a-z-]+)?)", blocks, re.M))
    used |= set(re.findall(r"`facesr ([a-z-]+(?: [a-z-]+)?)", text))
    assert {"demo", "pairs hq", "pool kernels"} <= used
    runner = CliRunner()
    for cmd in sorted(used):
        r = runner.invoke(app, [*cmd.split(), "--help"])
        assert r.exit_code == 0, f"`facesr {cmd} --help` failed: {r.output}"
