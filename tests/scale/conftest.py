"""Shared set-up of the scale tests."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_temporary_root():
    """Every temporary directory these tests make goes under one, removed at
    the end of the session (kept with GRAPHBOX_KEEP_TEST_DATA=1)."""
    root = tempfile.mkdtemp(prefix="graphbox-scale-tests-")
    before, tempfile.tempdir = tempfile.tempdir, root
    yield
    tempfile.tempdir = before
    if os.environ.get("GRAPHBOX_KEEP_TEST_DATA") != "1":
        shutil.rmtree(root, ignore_errors=True)
