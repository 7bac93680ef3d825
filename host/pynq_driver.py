"""The pynq driver of the receiver core: ``DefaultIP`` bound to the core's exact VLNV.

Importing this module imports ``pynq`` and registers :class:`TbqkdReceiverIP` for
:data:`tbqkd.hdl.ip.VLNV`; pynq binds drivers when an overlay loads, so import it first
(:func:`tbqkd.host.pynq_device.open_pynq_device` does). Only that function and board-side
code import this module.
"""

from __future__ import annotations

from typing import Any

from pynq import DefaultIP
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.ip import IRQ_PORT, VLNV
from tbqkd.hdl.registers import core_regmap

from .pynq_device import PynqDevice

__all__ = ["TbqkdReceiverIP"]


class TbqkdReceiverIP(DefaultIP):
    """pynq driver of the tbqkd receiver core (``overlay.tbqkd_receiver_0``).

    :attr:`core` is the core as a :class:`~tbqkd.host.pynq_device.PynqDevice`. It is named
    ``core``, not ``device``, because ``DefaultIP`` keeps the pynq PL device in ``device``.
    Built from this driver alone it has registers but no streams (the DMAs are other IP of the
    overlay); :meth:`PynqDevice.from_overlay` attaches the device it makes, with the DMAs.
    ``self.irq`` is the core's interrupt (a ``pynq.Interrupt``) when the design wires it.
    """

    bindto = [VLNV]

    def __init__(self, description: dict) -> None:
        super().__init__(description)
        self._core: PynqDevice | None = None

    @property
    def interrupt(self) -> Any:
        """The core's ``irq`` as a ``pynq.Interrupt``, or ``None`` if it is not wired."""
        return getattr(self, IRQ_PORT, None)

    @property
    def core(self) -> PynqDevice:
        """The core behind this driver (registers only, until an overlay device attaches)."""
        if self._core is None:
            self._core = PynqDevice(self, core_regmap(TaggerConfig()), {},
                                    interrupt=self.interrupt)
        return self._core

    def attach(self, device: PynqDevice) -> None:
        """Make ``device`` (registers and DMAs) this driver's :attr:`core`."""
        self._core = device

    async def wait_window(self, *, timeout_s: float | None = None) -> dict[str, int]:
        """Wait for the next error-signal window (see :meth:`PynqDevice.wait_window`)."""
        return await self.core.wait_window(timeout_s=timeout_s)
