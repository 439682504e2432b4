"""Fixtures of the app tests: a tiny face crop, an app on a temporary output folder and a
TestClient that carries the session token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_helpers import TOKEN, make_face


@pytest.fixture()
def face(tmp_path: Path) -> Path:
    return make_face(tmp_path / "src" / "face.png")


@pytest.fixture()
def make_client(tmp_path: Path):
    """``make_client(**create_app options)`` -> (TestClient with the token header, app)."""
    from fastapi.testclient import TestClient

    from facesr.app.server import create_app

    made = []

    def make(**kw):
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        kw = {"roots": [root], "uploads": tmp_path / "uploads", "env": dict(os.environ), **kw}
        app = create_app(tmp_path / "out", TOKEN, **kw)
        client = TestClient(app, headers={"X-Facesr-Token": TOKEN})
        client.__enter__()
        made.append(client)
        return client, app

    yield make
    for c in made:
        c.__exit__(None, None, None)
