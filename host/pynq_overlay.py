"""The receiver's bitstream as a ``pynq.Overlay``: load it, bind the core, wire its DMAs.

:class:`TbqkdOverlay` (Bob's receiver) is what a board-side script or notebook starts from
(Alice's board: :class:`TransmitterOverlay`, the same way, ``.core`` a
:class:`~tbqkd.host.transmitter.TransmitterDevice`)::

    from tbqkd.host.pynq_overlay import TbqkdOverlay

    overlay = TbqkdOverlay("/home/xilinx/tbqkd/tbqkd_bob.bit")   # tbqkd_bob.hwh beside it
    overlay.core        # a PynqDevice: registers, the DMAs, their buffers (identity checked)
    overlay.receiver    # a ReceiverInterface over it
    overlay.close()     # stops the DMA channels and frees their buffers

Without a path it loads ``bitstreams/<board>/tbqkd_bob.bit`` of this source tree (the output
convention of ``make bitstream``, docs/DEPLOY.md). The core's driver
(:class:`tbqkd.host.pynq_driver.TbqkdReceiverIP`, bound to the exact VLNV) is registered before
pynq parses the ``.hwh``, so ``overlay.tbqkd_receiver_0`` is that driver; the device is built
by :meth:`PynqDevice.from_overlay <tbqkd.host.pynq_device.PynqDevice.from_overlay>` (DMAs
``dma_<stream>`` of :data:`tbqkd.hdl.ip.DMA_CHANNELS`, ``ID``/``VERSION`` checked).

Why ``core`` and not ``device``: pynq's ``Overlay`` (through ``Bitstream``) keeps the PL device
in ``self.device`` and uses it on every IP look-up (``is_loaded``), download and ``free``;
shadowing it would break the overlay. The driver uses the same name for the same reason.

This module imports ``pynq`` when it is imported, so import it only on the board (or with a
stand-in): without pynq the import raises :class:`~tbqkd.host.device.DeviceError` with
:data:`~tbqkd.host.pynq_device.PYNQ_MISSING`, the line :func:`open_pynq_device
<tbqkd.host.pynq_device.open_pynq_device>` gives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tbqkd.hdl.config import TaggerConfig

from .device import DeviceError
from .pynq_device import PYNQ_MISSING, PynqDevice
from .receiver import ReceiverInterface
from .transmitter import TransmitterDevice

try:
    import pynq
except ImportError:
    raise DeviceError(PYNQ_MISSING) from None

from . import pynq_driver  # noqa: E402, F401  (registers the core's driver before any load)

__all__ = ["TbqkdOverlay", "TransmitterOverlay", "default_bitfile", "BITSTREAMS_DIR",
           "DEFAULT_BOARD", "BOB_BASENAME", "ALICE_BASENAME"]

logger = logging.getLogger(__name__)

#: ``bitstreams/`` of this source tree (where ``make bitstream`` writes).
BITSTREAMS_DIR = Path(__file__).resolve().parent.parent / "bitstreams"
DEFAULT_BOARD = "pynq-z2"
#: Basename of the receiver's bitstream and hardware handoff (``tbqkd.deploy.ROLES["bob"]``).
BOB_BASENAME = "tbqkd_bob"
#: Basename of the transmitter's bitstream (``tbqkd.deploy.ROLES["alice"]``).
ALICE_BASENAME = "tbqkd_alice"


def _log(level: int, message: str, *args: object) -> None:
    logger.log(level, message, *args)


def default_bitfile(board: str = DEFAULT_BOARD, root: str | os.PathLike | None = None, *,
                    basename: str = BOB_BASENAME) -> Path:
    """``<root>/<board>/<basename>.bit`` (default ``tbqkd_bob``); ``root`` defaults to
    :data:`BITSTREAMS_DIR`."""
    return Path(root if root is not None else BITSTREAMS_DIR) / board / f"{basename}.bit"


def _checked_bitfile(bitfile: str | os.PathLike | None, board: str, basename: str,
                     role: str) -> Path:
    path = Path(bitfile) if bitfile is not None else default_bitfile(board, basename=basename)
    for needed in (path, path.with_suffix(".hwh")):
        if not needed.is_file():
            raise DeviceError(
                f"no {needed.suffix} file at {needed}: build it (make bitstream "
                f"BOARD={board} ROLE={role}), fetch it (python -m tbqkd.deploy fetch --board "
                f"{board}), or pass the path of {basename}.bit (docs/DEPLOY.md)")
    return path


class TbqkdOverlay(pynq.Overlay):
    """The receiver's overlay: pynq's ``Overlay`` plus the core as a :class:`PynqDevice`.

    Parameters
    ----------
    bitfile
        The ``.bit`` file (its ``.hwh`` beside it, same basename); default
        :func:`default_bitfile` of ``board``.
    board
        Board folder under ``bitstreams/`` when ``bitfile`` is not given.
    config
        The core's configuration (its register table); default ``TaggerConfig()``.
    download
        Program the PL (pynq's ``download``); ``False`` to attach to a loaded bitstream.
    core
        Instance path of the core, when the design has several tbqkd cores.
    dma_names
        Stream prefix → DMA instance path, for designs that do not follow ``dma_<stream>``.
    device_options
        More keyword arguments of :class:`PynqDevice` (``buffer_bytes``, ``poll_s``, ...).
    overlay_options
        More keyword arguments of ``pynq.Overlay`` (``dtbo``, ``ignore_version``, ...).

    Raises
    ------
    DeviceError
        If the bitstream or its ``.hwh`` is missing, pynq cannot load it, it is not the
        bitstream in the PL (``download=False``), or the core or a DMA named in ``dma_names``
        is not in the design.
    DeviceMismatch
        If the core was built from another register table than ``config``'s.
    """

    def __init__(self, bitfile: str | os.PathLike | None = None, *,
                 board: str = DEFAULT_BOARD, config: TaggerConfig | None = None,
                 download: bool = True, core: str | None = None,
                 dma_names: Mapping[str, str | None] | None = None,
                 device_options: Mapping[str, Any] | None = None,
                 overlay_options: Mapping[str, Any] | None = None) -> None:
        path = _checked_bitfile(bitfile, board, BOB_BASENAME, "bob")
        try:
            super().__init__(str(path.resolve()), download=download,
                             **dict(overlay_options or {}))
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise DeviceError(f"cannot load overlay {path}: {exc}") from None
        try:
            self._tbqkd_core = PynqDevice.from_overlay(self, config=config, core=core,
                                                       dma_names=dma_names,
                                                       **dict(device_options or {}))
        except RuntimeError as exc:            # pynq: "Overlay not currently loaded"
            raise DeviceError(f"overlay {path}: {exc} (another bitstream is in the PL; "
                              "load this one with download=True)") from None
        self._tbqkd_receiver = ReceiverInterface(self._tbqkd_core)
        _log(logging.INFO, "overlay %s: core with streams %s", path,
             ", ".join(self._tbqkd_core.streams) or "none")

    @property
    def core(self) -> PynqDevice:
        """The receiver core: registers and the DMAs of its streams (owns their buffers)."""
        return self._tbqkd_core

    @property
    def receiver(self) -> ReceiverInterface:
        """The receiver's API (roles, windows, reference, histograms, sifting, DAC)."""
        return self._tbqkd_receiver

    def close(self) -> None:
        """Stop the core's DMA channels and free their buffers (the overlay stays loaded)."""
        self._tbqkd_core.close()

    def __enter__(self) -> TbqkdOverlay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TransmitterOverlay(pynq.Overlay):
    """Alice's overlay: pynq's ``Overlay`` plus the transmitter core as a
    :class:`~tbqkd.host.transmitter.TransmitterDevice`.

    The core is the IP of type :data:`tbqkd.hdl.ip.TX_VLNV` (``tbqkd_transmitter_0`` by
    default, or the one named ``core``); its DMAs are ``dma_<stream>`` of
    :data:`~tbqkd.hdl.ip.TX_DMA_CHANNELS` (or ``dma_names``). No driver is bound to the VLNV:
    pynq's ``DefaultIP`` gives the register window.

    Parameters
    ----------
    bitfile
        The ``.bit`` file (its ``.hwh`` beside it); default ``bitstreams/<board>/tbqkd_alice.bit``.
    ring_depth
        The core's state-ring depth; default: what its ``RING_DEPTH`` register reads.
    board, download, core, dma_names, device_options, overlay_options
        As for :class:`TbqkdOverlay`.

    Raises
    ------
    DeviceError
        If the files are missing, pynq cannot load them, the bitstream is not the one in the PL
        (``download=False``), or the core or a DMA named in ``dma_names`` is missing.
    DeviceMismatch
        If the core was built from another register table.
    """

    def __init__(self, bitfile: str | os.PathLike | None = None, *,
                 board: str = DEFAULT_BOARD, ring_depth: int | None = None,
                 download: bool = True, core: str | None = None,
                 dma_names: Mapping[str, str | None] | None = None,
                 device_options: Mapping[str, Any] | None = None,
                 overlay_options: Mapping[str, Any] | None = None) -> None:
        path = _checked_bitfile(bitfile, board, ALICE_BASENAME, "alice")
        try:
            super().__init__(str(path.resolve()), download=download,
                             **dict(overlay_options or {}))
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise DeviceError(f"cannot load overlay {path}: {exc}") from None
        try:
            self._tbqkd_core = TransmitterDevice.from_overlay(
                self, ring_depth=ring_depth, core=core, dma_names=dma_names,
                **dict(device_options or {}))
        except RuntimeError as exc:            # pynq: "Overlay not currently loaded"
            raise DeviceError(f"overlay {path}: {exc} (another bitstream is in the PL; "
                              "load this one with download=True)") from None
        _log(logging.INFO, "overlay %s: transmitter with streams %s", path,
             ", ".join(self._tbqkd_core.streams) or "none")

    @property
    def core(self) -> TransmitterDevice:
        """The transmitter core: registers and the DMAs of its streams (owns their buffers)."""
        return self._tbqkd_core

    def close(self) -> None:
        """Stop the core's DMA channels and free their buffers (the overlay stays loaded)."""
        self._tbqkd_core.close()

    def __enter__(self) -> TransmitterOverlay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
