"""``TbqkdOverlay`` without a board: a stand-in ``pynq`` module in ``sys.modules``.

The stand-in has what the overlay class and the driver use of pynq: ``Overlay`` (keeps the PL
device in ``device``, binds ``DefaultIP`` drivers by VLNV from the design's ``ip_dict``,
resolves IP by attribute only while its bitstream is the one loaded), ``DefaultIP`` (registers
subclasses by ``bindto``) and ``allocate``. Registers and streams go to the reference model of
the core through the pynq-compatible shims of :mod:`tbqkd.sim.pynq_shim`.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from tbqkd.hdl.ip import DMA_CHANNELS, INSTANCE_NAME, VLNV, VLNV_PREFIX
from tbqkd.hdl.records import TAG
from tbqkd.host.device import DeviceError, DeviceMismatch
from tbqkd.host.pynq_device import PYNQ_MISSING
from tbqkd.host.tagger import TaggerInterface
from tbqkd.sim.pynq_shim import DmaShim, MmioShim, shim_allocate

DMA_TYPE = "xilinx.com:ip:axi_dma:7.1"


class PlDevice:
    """pynq's PL device, as far as ``Overlay`` uses it: which bitstream is loaded."""

    def __init__(self) -> None:
        self.bitfile_name: str | None = None
        self.downloads = 0


def make_fake_pynq(designs: dict[str, dict], pl: PlDevice) -> types.ModuleType:
    """A ``pynq`` whose overlays are ``designs[bitfile] = {ip path: (vlnv, mmio or driver)}``."""
    pynq = types.ModuleType("pynq")
    drivers: dict[str, type] = {}
    buffers: list = []

    class DefaultIP:
        def __init__(self, description: dict) -> None:
            self.device = pl                               # pynq keeps the PL device here too
            self.mmio = description["mmio"]

        def __init_subclass__(cls, **kwargs) -> None:
            super().__init_subclass__(**kwargs)
            for vlnv in getattr(cls, "bindto", []):
                drivers[vlnv] = cls

        def read(self, offset: int = 0) -> int:
            return self.mmio.read(offset)

        def write(self, offset: int, value: int) -> None:
            self.mmio.write(offset, value)

    class Overlay:
        def __init__(self, bitfile_name, dtbo=None, download=True, ignore_version=False,
                     device=None, gen_cache=False) -> None:
            if not isinstance(bitfile_name, str):
                raise TypeError("Bitstream name has to be a string.")
            self.device = device or pl
            self.bitfile_name = bitfile_name
            if bitfile_name not in designs:
                raise OSError(f"cannot parse {bitfile_name}")
            design = designs[bitfile_name]
            self.ip_dict = {name: {"type": vlnv, "fullpath": name}
                            for name, (vlnv, _) in design.items()}
            self._ip_map = types.SimpleNamespace()
            for name, (vlnv, target) in design.items():
                driver = drivers[vlnv]({"mmio": target}) if vlnv in drivers else target
                node = self._ip_map
                *path, leaf = name.split("/")
                for part in path:
                    if not hasattr(node, part):
                        setattr(node, part, types.SimpleNamespace())
                    node = getattr(node, part)
                setattr(node, leaf, driver)
            if download:
                self.device.bitfile_name = bitfile_name
                self.device.downloads += 1

        def __getattr__(self, key):
            if "device" not in self.__dict__:
                raise AttributeError(key)
            if self.device.bitfile_name == self.bitfile_name:
                return getattr(self._ip_map, key)
            raise RuntimeError("Overlay not currently loaded")

    def allocate(shape, dtype="u4", **options):
        buffer = shim_allocate(shape, dtype, **options)
        buffers.append(buffer)
        return buffer

    pynq.DefaultIP, pynq.Overlay, pynq.allocate = DefaultIP, Overlay, allocate
    pynq.buffers = buffers
    return pynq


@pytest.fixture
def model():
    from tbqkd.sim.model_device import open_model_device

    device = open_model_device()
    yield device
    device.close()


def bitstream(folder: Path, basename: str = "tbqkd_bob") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{basename}.bit").write_bytes(b"bit")
    (folder / f"{basename}.hwh").write_text("<hwh/>")
    return folder / f"{basename}.bit"


def full_design(model, core: str = INSTANCE_NAME, core_vlnv: str = VLNV,
                mmio=None) -> tuple[dict, dict]:
    """The core and one DMA per stream, named as in hdl/ip.py, plus unrelated IP."""
    dmas = {route.stream: DmaShim(model, route.stream) for route in DMA_CHANNELS}
    design = {core: (core_vlnv, mmio or MmioShim(model)),
              "ps7_0": ("xilinx.com:ip:processing_system7:5.5", object()),
              "axi_gpio_0": ("xilinx.com:ip:axi_gpio:2.0", object())}
    for route in DMA_CHANNELS:
        design[route.dma] = (DMA_TYPE, dmas[route.stream])
    return design, dmas


def _channel(dma):
    return dma.recvchannel or dma.sendchannel


def test_loads_the_default_bitstream_binds_the_core_and_wires_every_dma(fake, model,
                                                                        monkeypatch):
    monkeypatch.setattr(fake.module, "BITSTREAMS_DIR", fake.root / "bitstreams")
    path = bitstream(fake.root / "bitstreams" / "pynq-z2")
    assert fake.module.default_bitfile() == path
    design, dmas = full_design(model)
    fake.designs[str(path.resolve())] = design
    with fake.module.TbqkdOverlay() as overlay:
        assert isinstance(overlay, fake.pynq.Overlay) and fake.pl.downloads == 1
        ip = getattr(overlay, INSTANCE_NAME)
        driver = sys.modules["tbqkd.host.pynq_driver"].TbqkdReceiverIP
        assert isinstance(ip, driver) and ip.core is overlay.core   # the driver has the DMAs
        assert overlay.device is fake.pl                  # pynq's own attribute left alone
        assert overlay.receiver.device is overlay.core
        assert sorted(overlay.core.streams) == sorted(r.stream for r in DMA_CHANNELS)
        # Each output stream is read through the DMA of its hdl/ip.py name, and only that one.
        used: set[str] = set()
        for route in DMA_CHANNELS:
            if route.receives:
                overlay.core.read_stream(stream=route.stream)
                used.add(route.stream)
            assert {s for s, d in dmas.items() if _channel(d).transfers} == used
        overlay.core.write_stream(b"", stream="s_axis_answer")   # nothing to send: no transfer
        assert not _channel(dmas["s_axis_answer"]).transfers
        # Registers go through the core's window, tag records through dma_m_axis.
        TaggerInterface(overlay.core).set_tag_stream(True)
        assert model.read_fields("CONTROL")["tag_stream"] == 1
        _feed_clicks(model, 40)
        tags = overlay.core.read_stream(stream="m_axis", timeout_s=1.0)
        assert len(tags) == 40 * TAG.nbytes
        buffers = list(fake.pynq.buffers)
        assert len(buffers) == len(DMA_CHANNELS) and not any(b.freed for b in buffers)
    assert all(b.freed for b in buffers)                 # close() freed every DMA buffer


def _feed_clicks(model, n: int) -> None:
    from tbqkd.sim.frontend import make_frontend

    config = model.config
    frontend = make_frontend(config.frontend, config.word_width, config.period_ps, seed=3)
    start = int((model.cycle + 100) * config.period_ps)
    t = start + 20_011 * np.arange(n, dtype=np.int64)
    model.feed_events(frontend, t, np.ones(n, np.uint8), drain=True)


def test_finds_the_core_by_vlnv_under_any_name_and_dmas_by_given_names(fake, model):
    path = bitstream(fake.root / "elsewhere", "custom")
    design, dmas = full_design(model, core="rx/receiver")
    design["link/dma_sifted"] = design.pop("dma_m_axis_sifted")
    fake.designs[str(path.resolve())] = design
    overlay = fake.module.TbqkdOverlay(path, dma_names={"m_axis_sifted": "link/dma_sifted"})
    try:
        assert overlay.rx.receiver.core is overlay.core
        overlay.core.read_stream(stream="m_axis_sifted")
        assert _channel(dmas["m_axis_sifted"]).transfers
    finally:
        overlay.close()
    with pytest.raises(DeviceError, match="DMA 'link/none' for m_axis is not in the overlay"):
        fake.module.TbqkdOverlay(path, dma_names={"m_axis": "link/none"})


def test_checks_the_identity_and_the_ip_version(fake, model):
    class WrongId(MmioShim):
        def read(self, offset=0, length=4, word_order="little"):
            value = super().read(offset, length, word_order)
            return value ^ 0x1 if offset == model.regmap.ID_OFFSET else value

    path = bitstream(fake.root / "a")
    fake.designs[str(path.resolve())] = full_design(model, mmio=WrongId(model))[0]
    with pytest.raises(DeviceMismatch):
        fake.module.TbqkdOverlay(path)
    fake.designs[str(path.resolve())] = full_design(model, core_vlnv=f"{VLNV_PREFIX}:9.9")[0]
    with pytest.raises(DeviceError, match="rebuild the bitstream"):
        fake.module.TbqkdOverlay(path)
    fake.designs[str(path.resolve())] = {"ps7_0": ("xilinx.com:ip:processing_system7:5.5",
                                                   object())}
    with pytest.raises(DeviceError, match=f"has no IP of type {VLNV}"):
        fake.module.TbqkdOverlay(path)


def test_missing_files_load_errors_and_a_bitstream_not_loaded_are_one_line(fake, model,
                                                                           monkeypatch):
    monkeypatch.setattr(fake.module, "BITSTREAMS_DIR", fake.root / "none")
    with pytest.raises(DeviceError, match=r"no \.bit file at .*pynq-z2/tbqkd_bob\.bit: build"):
        fake.module.TbqkdOverlay()
    path = bitstream(fake.root / "b")
    path.with_suffix(".hwh").unlink()
    with pytest.raises(DeviceError, match=r"no \.hwh file at .*tbqkd_bob\.hwh"):
        fake.module.TbqkdOverlay(path)
    path = bitstream(fake.root / "c")
    with pytest.raises(DeviceError, match="cannot load overlay .*: cannot parse"):
        fake.module.TbqkdOverlay(path)                   # pynq's own failure, in one line
    fake.designs[str(path.resolve())] = full_design(model)[0]
    fake.pl.bitfile_name = "/other.bit"
    with pytest.raises(DeviceError, match="not currently loaded .*download=True"):
        fake.module.TbqkdOverlay(path, download=False)
    assert fake.pl.downloads == 0


def test_without_pynq_the_import_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)        # makes `import pynq` fail
    sys.modules.pop("tbqkd.host.pynq_overlay", None)
    try:
        with pytest.raises(DeviceError) as info:
            importlib.import_module("tbqkd.host.pynq_overlay")
        assert str(info.value) == PYNQ_MISSING
    finally:
        sys.modules.pop("tbqkd.host.pynq_overlay", None)


def test_the_overlay_module_is_imported_only_on_demand():
    code = ("import sys, tbqkd.cli, tbqkd.link_run, tbqkd.host.pynq_device, tbqkd.host.link;"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'pynq'"
            " or m in ('tbqkd.host.pynq_overlay', 'tbqkd.host.pynq_driver')];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_path_follows_the_build_convention(fake):
    from tbqkd import deploy

    assert deploy.ROLES["bob"].basename == fake.module.BOB_BASENAME
    assert fake.module.BITSTREAMS_DIR == deploy.BITSTREAMS_DIR
    assert fake.module.DEFAULT_BOARD in deploy.BOARDS
    assert fake.module.default_bitfile("zcu104", "/x") == Path("/x/zcu104/tbqkd_bob.bit")
