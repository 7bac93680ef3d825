"""Fixtures shared by the host tests."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
from test_pynq_overlay import PlDevice, make_fake_pynq

_OVERLAY_MODULES = ("tbqkd.host.pynq_overlay", "tbqkd.host.pynq_driver")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """(the overlay module imported over the stand-in, designs, PL device, stand-in pynq)."""
    designs: dict[str, dict] = {}
    pl = PlDevice()
    pynq = make_fake_pynq(designs, pl)
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    for name in _OVERLAY_MODULES:
        sys.modules.pop(name, None)
    try:
        module = importlib.import_module("tbqkd.host.pynq_overlay")
        yield types.SimpleNamespace(module=module, designs=designs, pl=pl, pynq=pynq,
                                    root=tmp_path)
    finally:
        for name in _OVERLAY_MODULES:
            sys.modules.pop(name, None)
            vars(sys.modules["tbqkd.host"]).pop(name.rpartition(".")[2], None)
