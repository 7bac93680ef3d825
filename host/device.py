"""The device interface: registers by name and stream data, on any backend.

A backend implements four primitives — 32-bit register read and write at a byte offset, and
reading stream bytes — and :class:`Device` builds the by-name API on them from the register
table (:mod:`tbqkd.hdl.regmap`). Backends: the Verilator model (:mod:`tbqkd.sim.device`), and
later a PYNQ board and the reference model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from tbqkd.hdl.regmap import MAGIC, RegisterMap

__all__ = ["Device", "DeviceError", "DeviceMismatch"]

logger = logging.getLogger(__name__)


class DeviceError(Exception):
    """A register access or stream transfer failed, or a value is out of range."""


class DeviceMismatch(DeviceError):
    """The core's ID register does not match the register table the host was built with."""


class Device(ABC):
    """Register and stream access to one receiver core, by name."""

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap

    # --- backend primitives ---------------------------------------------------------------
    @abstractmethod
    def read32(self, offset: int) -> int:
        """Read the 32-bit word at byte ``offset``."""

    @abstractmethod
    def write32(self, offset: int, value: int) -> None:
        """Write the 32-bit word at byte ``offset``."""

    @abstractmethod
    def read_stream(self, max_bytes: int | None = None, *, stream: str = "m_axis") -> bytes:
        """Return the bytes received so far on output ``stream`` (whole records), up to
        ``max_bytes``. Streams are named by their port prefix (``tbqkd.hdl.records.STREAMS``):
        ``m_axis`` tags, ``m_axis_announce``, ``m_axis_sifted``, ``m_axis_phase``."""

    @abstractmethod
    def write_stream(self, data: bytes, *, stream: str = "s_axis_answer") -> None:
        """Queue whole records for the core's input ``stream`` (Alice's answers)."""

    # --- by-name API ----------------------------------------------------------------------
    def read(self, name: str) -> int:
        """Read a register; 64-bit registers are read low word first (the core latches)."""
        reg = self.regmap[name]
        low = self.read32(reg.offset)
        if reg.width == 32:
            return low
        return low | (self.read32(reg.offset + 4) << 32)

    def read_fields(self, name: str) -> dict[str, int]:
        return self.regmap[name].decode(self.read(name))

    def write(self, name: str, value: int | None = None, **fields: int) -> None:
        """Write a register, either a whole ``value`` or named ``fields``.

        Fields not named take their reset value (for ``rw`` registers use :meth:`modify` to
        keep the others).

        Raises
        ------
        DeviceError
            If the register is read-only or a value does not fit.
        """
        reg = self.regmap[name]
        if reg.access == "ro":
            raise DeviceError(f"register {name} is read-only")
        if value is None:
            try:
                value = reg.encode(**fields)
            except ValueError as exc:
                raise DeviceError(str(exc)) from None
        elif fields:
            raise DeviceError("give either a value or fields, not both")
        if not 0 <= value < 1 << reg.width:
            raise DeviceError(f"value {value:#x} does not fit register {name} ({reg.width} bits)")
        logger.debug("write %s = %#x", name, value)
        for w in range(reg.words):
            self.write32(reg.offset + 4 * w, (value >> (32 * w)) & 0xFFFF_FFFF)

    def modify(self, name: str, **fields: int) -> None:
        """Read-modify-write some fields of an ``rw`` register."""
        current = self.read_fields(name)
        current.update(fields)
        self.write(name, **current)

    def check_identity(self) -> None:
        """Verify the core's ``ID`` and ``VERSION`` against the register table.

        Raises
        ------
        DeviceMismatch
            If the core was built from a different register table.
        """
        version = self.regmap["VERSION"].decode(self.read32(self.regmap.VERSION_OFFSET))
        if version["magic"] != MAGIC:
            raise DeviceMismatch(f"no tbqkd core here: VERSION magic {version['magic']:#06x}, "
                                 f"expected {MAGIC:#06x}")
        found = self.read32(self.regmap.ID_OFFSET)
        if found != self.regmap.hash:
            raise DeviceMismatch(
                f"register map mismatch: core ID {found:#010x}, host table {self.regmap.hash:#010x}"
                " — rebuild the bitstream or update the host package")
