"""The register table: the single source of truth for the core's AXI4-Lite register bank.

Pure Python (no Amaranth), imported by the gateware (which generates the AXI4-Lite decoder from
it), by the host (which reads and writes registers by name), by the tests and by the docs
generator. Each register has a name, a byte offset, an access kind, a width (32 or 64 bits),
fields, a reset value and a description.

Access kinds
------------
``ro``
    Read-only, driven by the hardware.
``rw``
    Read-write, a control value held in the register bank.
``wp``
    Write-pulse: a write strobes the fields for one cycle (a command); reads return 0.
``rc``
    Sticky status, set by the hardware, cleared by writing 1 to a bit; reads return the flags.

64-bit registers occupy two consecutive 32-bit words (low word first). Reading the low word of a
``ro`` 64-bit register latches the high word, so a low-then-high read pair is consistent. This is
how a PYNQ ``MMIO.read(offset, 8)`` (two 32-bit reads, low first) sees an atomic value. One
latch serves all of them: a high word read that does not follow its own low word answers
``SLVERR``. Bits of an ``rw`` register outside its fields are not stored and read as 0.

Offset 0 holds ``ID``, a CRC-32 of the table's canonical JSON, and offset 4 holds ``VERSION``
(magic and version numbers). The host refuses a core whose ID differs from the table it has.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Access", "Field", "Register", "RegisterMap", "MAGIC", "VERSION_MAJOR",
           "VERSION_MINOR", "RegisterMapError"]

MAGIC = 0x7B51           # "tbQ" — upper half of the VERSION register
VERSION_MAJOR = 0
VERSION_MINOR = 1

Access = str             # one of "ro", "rw", "wp", "rc"
_ACCESS_KINDS = ("ro", "rw", "wp", "rc")


class RegisterMapError(ValueError):
    """The register table is inconsistent (overlap, bad field, unknown name)."""


@dataclass(frozen=True)
class Field:
    """A bit field of a register. ``lsb`` counts from bit 0 of the (up to 64-bit) register."""

    name: str
    lsb: int
    width: int
    description: str = ""
    reset: int = 0
    signed: bool = False

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One register of the bank."""

    name: str
    offset: int
    access: Access
    description: str
    width: int = 32
    fields: tuple[Field, ...] = ()
    group: str = "core"

    def __post_init__(self) -> None:
        if self.access not in _ACCESS_KINDS:
            raise RegisterMapError(f"{self.name}: access {self.access!r} not in {_ACCESS_KINDS}")
        if self.width not in (32, 64):
            raise RegisterMapError(f"{self.name}: width must be 32 or 64, not {self.width}")
        if self.offset % (8 if self.width == 64 else 4):
            raise RegisterMapError(f"{self.name}: offset {self.offset:#x} is misaligned")
        used = 0
        for f in self.fields:
            if f.lsb < 0 or f.width < 1 or f.lsb + f.width > self.width:
                raise RegisterMapError(f"{self.name}.{f.name}: bits outside the register")
            if used & f.mask:
                raise RegisterMapError(f"{self.name}.{f.name}: overlaps another field")
            if f.reset >> f.width:
                raise RegisterMapError(f"{self.name}.{f.name}: reset value does not fit")
            used |= f.mask
        if self.access == "wp" and any(f.reset for f in self.fields):
            raise RegisterMapError(f"{self.name}: write-pulse fields have no reset value")

    @property
    def reset(self) -> int:
        """Reset value of the whole register, assembled from its fields."""
        value = 0
        for f in self.fields:
            value |= f.reset << f.lsb
        return value

    @property
    def words(self) -> int:
        return self.width // 32

    @property
    def field_mask(self) -> int:
        """Bits that belong to a field (the only bits an ``rw`` register stores)."""
        return sum(f.mask for f in self.fields)

    @property
    def latched(self) -> bool:
        """A 64-bit ``ro`` register the core drives (not a table constant): its high word is
        read through the bank's latch, right after its low word."""
        return self.access == "ro" and self.width == 64 and not self.reset

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise RegisterMapError(f"register {self.name} has no field {name!r}")

    def encode(self, **values: int) -> int:
        """Assemble a register value from field values (unnamed fields take their reset)."""
        unknown = set(values) - {f.name for f in self.fields}
        if unknown:
            raise RegisterMapError(f"register {self.name} has no field(s) {sorted(unknown)}")
        word = 0
        for f in self.fields:
            v = values.get(f.name, f.reset)
            if f.signed and -(1 << (f.width - 1)) <= v < (1 << (f.width - 1)):
                v &= (1 << f.width) - 1
            elif f.signed:
                v = -1                      # out of the signed range: rejected below
            if not 0 <= v < (1 << f.width):
                raise RegisterMapError(
                    f"{self.name}.{f.name}: value {values.get(f.name)} does not fit in "
                    f"{f.width} {'signed' if f.signed else 'unsigned'} bits")
            word |= v << f.lsb
        return word

    def decode(self, word: int) -> dict[str, int]:
        """Split a register value into its fields (signed fields sign-extended)."""
        out = {}
        for f in self.fields:
            v = (word >> f.lsb) & ((1 << f.width) - 1)
            if f.signed and v >> (f.width - 1):
                v -= 1 << f.width
            out[f.name] = v
        return out

    def as_dict(self) -> dict:
        return {
            "name": self.name, "offset": self.offset, "access": self.access,
            "width": self.width, "group": self.group, "reset": self.reset,
            "description": self.description,
            "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "reset": f.reset,
                        "signed": f.signed, "description": f.description}
                       for f in self.fields],
        }


class RegisterMap:
    """An ordered, validated register table with offsets assigned.

    Build one with :class:`RegisterMap.Builder`; registers are laid out in the order they are
    added, 64-bit registers aligned to 8 bytes. ``ID`` and ``VERSION`` are always at 0 and 4.
    """

    ID_OFFSET = 0x0
    VERSION_OFFSET = 0x4

    class Builder:
        def __init__(self, *, addr_width: int = 16) -> None:
            self._addr_width = addr_width
            self._registers: list[Register] = []
            self._next = 0
            self.add("ID", "ro", "CRC-32 of this register table (canonical JSON); checked by "
                     "the host on connect", fields=[Field("hash", 0, 32)])
            self.add("VERSION", "ro", "Magic number and register-map version",
                     fields=[Field("minor", 0, 8, reset=VERSION_MINOR),
                             Field("major", 8, 8, reset=VERSION_MAJOR),
                             Field("magic", 16, 16, reset=MAGIC)])

        def align(self, boundary: int) -> None:
            """Start the next register at a multiple of ``boundary`` bytes."""
            self._next = -(-self._next // boundary) * boundary

        def add(self, name: str, access: Access, description: str, *, width: int = 32,
                fields: Iterable[Field] | None = None, group: str = "core") -> Register:
            if any(r.name == name for r in self._registers):
                raise RegisterMapError(f"duplicate register name {name!r}")
            if fields is None:
                fields = [Field("value", 0, width)]
            if width == 64:
                self.align(8)
            reg = Register(name, self._next, access, description, width, tuple(fields), group)
            self._registers.append(reg)
            self._next += width // 8
            if self._next > 1 << self._addr_width:
                raise RegisterMapError("register table exceeds the address space")
            return reg

        def build(self) -> RegisterMap:
            return RegisterMap(self._registers, addr_width=self._addr_width)

    def __init__(self, registers: Iterable[Register], *, addr_width: int = 16) -> None:
        self._registers = tuple(registers)
        self.addr_width = addr_width
        self._by_name = {r.name: r for r in self._registers}
        if self._by_name["ID"].offset != self.ID_OFFSET or \
                self._by_name["VERSION"].offset != self.VERSION_OFFSET:
            raise RegisterMapError("ID and VERSION must sit at offsets 0 and 4")
        taken: dict[int, str] = {}
        for r in self._registers:
            for w in range(r.words):
                addr = r.offset + 4 * w
                if addr in taken:
                    raise RegisterMapError(f"{r.name} overlaps {taken[addr]} at {addr:#x}")
                taken[addr] = r.name

    def __iter__(self) -> Iterator[Register]:
        return iter(self._registers)

    def __len__(self) -> int:
        return len(self._registers)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise RegisterMapError(f"no register named {name!r}") from None

    def canonical_json(self) -> str:
        """The table as JSON, excluding the ID register's own value (the hash input)."""
        return json.dumps([r.as_dict() for r in self._registers], sort_keys=True,
                          separators=(",", ":"))

    @property
    def hash(self) -> int:
        """CRC-32 of :meth:`canonical_json`: the value the ``ID`` register reads."""
        return zlib.crc32(self.canonical_json().encode())

    @property
    def version(self) -> int:
        return self["VERSION"].reset

    def reset_value(self, name: str) -> int:
        """Value a register reads after reset (``ID`` reads the table hash)."""
        return self.hash if name == "ID" else self[name].reset

    def to_json(self, **metadata: object) -> str:
        """Export for other tools (host scripts, C, Vivado TCL checks)."""
        doc = {"hash": self.hash, "version": self.version, "addr_width": self.addr_width,
               **metadata, "registers": [r.as_dict() for r in self._registers]}
        return json.dumps(doc, indent=1)

    def to_markdown(self) -> str:
        """The register map as a Markdown table, for the README and docs."""
        lines = ["| offset | name | access | width | reset | fields | description |",
                 "|---|---|---|---|---|---|---|"]
        for r in self._registers:
            fields = "<br>".join(
                f"`[{f.lsb + f.width - 1}:{f.lsb}]` {f.name}" + (" (signed)" if f.signed else "")
                + (f": {f.description}" if f.description else "") for f in r.fields)
            reset = "hash" if r.name == "ID" else f"{r.reset:#x}"
            lines.append(f"| `{r.offset:#06x}` | `{r.name}` | {r.access} | {r.width} | {reset} "
                         f"| {fields} | {r.description} |")
        return "\n".join(lines) + "\n"
