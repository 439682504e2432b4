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
    used = set(re.findall(r"(?:^|&& )facesr ([a-z-]+(?: [a-z][a-z-]*)?)", blocks, re.M))
    used |= set(re.findall(r"`facesr ([a-z-]+(?: [a-z-]+)?)", text))
    assert {"demo", "pairs hq", "pool kernels"} <= used
    runner = CliRunner()
    for cmd in sorted(used):
        r = runner.invoke(app, [*cmd.split(), "--help"])
        assert r.exit_code == 0, f"`facesr {cmd} --help` failed: {r.output}"


def test_every_option_in_the_readmes_commands_exists() -> None:
    """Each ``--option`` of a ``facesr`` command line in a README code block is one that
    command's ``--help`` lists (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S))
    lines = re.sub(r"\\\n\s*", " ", blocks).splitlines()
    runner = CliRunner()
    helps: dict[str, str] = {}
    checked = 0
    for line in lines:
        for m in re.finditer(r"(?:^|&& |\| )\s*facesr ((?:[a-z-]+ )?[a-z-]+)(.*?)(?=&&|\||#|$)",
                             line.strip()):
            cmd, rest = m.group(1), m.group(2)
            if cmd not in helps:  # "pool kernels" or "upscale SRC"
                for name in (cmd, cmd.split()[0]):
                    r = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"},
                                      terminal_width=200)
                    if r.exit_code == 0:
                        helps[cmd] = r.output
                        break
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                assert opt in helps[cmd], f"README: `facesr {cmd}` has no option {opt}"
                checked += 1
    assert checked > 40  # the blocks were found and read


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_help_at_80_columns_shows_every_option_whole() -> None:
    """No option name is cut (rich crops what does not fit); prose is reflowed, not broken
    where the source's lines end."""
    import typer.main

    runner = CliRunner()
    for path, cmd in _commands(typer.main.get_command(app)):
        r = runner.invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
        assert r.exit_code == 0, (path, r.output)
        for param in cmd.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--"):
                    assert re.search(rf"{re.escape(opt)}(?![\w-])", r.output), (
                        f"`facesr {' '.join(path)} --help` at 80 columns cuts {opt}")
    r = runner.invoke(app, ["upscale", "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert "facesr-rrdb23" in r.output and "once shipped" not in r.output
