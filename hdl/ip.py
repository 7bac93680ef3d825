"""Identity of the receiver core as a packaged IP, and how its streams meet AXI DMAs.

Pure Python (no Amaranth): imported by the host's PYNQ backend (which binds its driver to
:data:`VLNV` and finds the DMAs by :data:`DMA_CHANNELS`) and by the Vivado packaging, so that
the block design and the driver agree on one set of names.

The IP version follows the register map's version (:data:`tbqkd.hdl.regmap.VERSION_MAJOR`,
``VERSION_MINOR``): a bitstream whose register table changed shape gets a new VLNV, and the
exact-VLNV driver binding then fails loudly instead of driving the wrong registers. The
register-table hash (``ID``) is still checked on connect, which also catches changes within
one version.

Block-design conventions (documented in ``docs/PYNQ.md``):

* the core's instance is ``<IP_NAME>_0`` (Vivado's default name), so
  ``overlay.tbqkd_receiver_0`` is its driver;
* every AXI4-Stream port ``<prefix>`` of :data:`tbqkd.hdl.records.STREAMS` is wired to its own
  AXI DMA named ``dma_<prefix>``: an output port to the DMA's S2MM (``recvchannel``), the input
  port to its MM2S (``sendchannel``);
* the core's interrupt pin :data:`IRQ_PORT` goes to the PS interrupt controller.

The transmitter core (Alice, :mod:`tbqkd.hdl.transmitter`) follows the same conventions under
its own name: :data:`TX_VLNV`, instance :data:`TX_INSTANCE_NAME`, one DMA per port of
:data:`tbqkd.hdl.tx_records.TX_STREAMS` (:data:`TX_DMA_CHANNELS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import PHASE_WINDOW, STREAMS, StreamPort
from .regmap import VERSION_MAJOR, VERSION_MINOR
from .tx_records import TX_STREAMS

__all__ = ["IP_VENDOR", "IP_LIBRARY", "IP_NAME", "IP_VERSION", "VLNV", "VLNV_PREFIX",
           "INSTANCE_NAME", "IRQ_PORT", "AXI_LITE_PORT", "CLOCK_PORT", "RESET_N_PORT",
           "DMA_NAME_PREFIX", "DmaChannel", "DMA_CHANNELS", "dma_channel", "parse_vlnv",
           "TX_IP_NAME", "TX_VLNV", "TX_VLNV_PREFIX", "TX_INSTANCE_NAME", "TX_DMA_CHANNELS"]

IP_VENDOR = "tbqkd.org"
IP_LIBRARY = "tbqkd"
IP_NAME = "tbqkd_receiver"
IP_VERSION = f"{VERSION_MAJOR}.{VERSION_MINOR}"
#: Vendor:library:name:version, exactly as ``overlay.ip_dict[name]["type"]`` shows it.
VLNV = f"{IP_VENDOR}:{IP_LIBRARY}:{IP_NAME}:{IP_VERSION}"
#: The VLNV without its version: what identifies the core across versions.
VLNV_PREFIX = VLNV.rpartition(":")[0]
#: Vivado's default name for the first instance of the IP in a block design.
INSTANCE_NAME = f"{IP_NAME}_0"

# Port names of the top level (hdl/top.py: ReceiverTop); a test checks them against it.
IRQ_PORT = "irq"              #: an error-signal window completed (level, until acknowledged)
AXI_LITE_PORT = "s_axi"       #: the register bank (``s_axi_*`` ports)
CLOCK_PORT = "aclk"
RESET_N_PORT = "aresetn"

DMA_NAME_PREFIX = "dma_"

_RECV, _SEND = "recvchannel", "sendchannel"


#: Bytes of the AXI4-Stream data FIFO between each MM2S DMA and the core's input stream. A
#: simple-mode DMA has one transfer in flight: while the host arms the next one, the core lives
#: on the FIFO (Alice's ``s_axis_random``: 4 096 words, 0.2 ms at the 1.3 Gbit/s the default
#: basis bits need at k = 1; Bob's ``s_axis_answer``: 2 048 answers). 8 RAMB36 each.
INPUT_FIFO_BYTES = 32 * 1024


@dataclass(frozen=True)
class DmaChannel:
    """One AXI DMA channel serving one of the core's AXI4-Stream ports.

    ``dma``: the DMA's instance name in the block design; ``channel``: the pynq attribute of
    the DMA driver (``recvchannel`` = S2MM for the core's outputs, ``sendchannel`` = MM2S for
    its input); ``record_bytes``: bytes per stream beat (one record); ``frame_records``: the
    largest frame (TLAST to TLAST) in records, ``None`` when the ``FRAME_WORDS`` register sets
    it.
    """

    port: StreamPort
    dma: str
    channel: str
    record_bytes: int
    frame_records: int | None

    @property
    def stream(self) -> str:
        return self.port.prefix

    @property
    def receives(self) -> bool:
        """True for the core's output streams (the DMA writes them to memory)."""
        return self.channel == _RECV

    @property
    def fifo_depth(self) -> int:
        """Records of the data FIFO in front of an input stream (0 for outputs)."""
        return 0 if self.receives else INPUT_FIFO_BYTES // self.record_bytes

    @property
    def fifo(self) -> str:
        """The FIFO's instance name in the block design (``fifo_<prefix>``), or ``""``."""
        return f"fifo_{self.stream}" if self.fifo_depth else ""


def _channel_for(port: StreamPort) -> DmaChannel:
    # The error-signal unit ends a frame after every window record; the tagger and the
    # sifter frame FRAME_WORDS records (or fewer, on the flush time-out).
    frame_records = 1 if port.record is PHASE_WINDOW else None
    return DmaChannel(port, f"{DMA_NAME_PREFIX}{port.prefix}",
                      _RECV if port.direction == "out" else _SEND, port.record.nbytes,
                      frame_records)


#: The default DMA wiring, one channel per stream port, in :data:`STREAMS` order.
DMA_CHANNELS: tuple[DmaChannel, ...] = tuple(_channel_for(port) for port in STREAMS)


# --- the transmitter core (Alice) ------------------------------------------------------------
# ``tbqkd.deploy`` packages the transmitter under these names; the version is the receiver's
# (this module's ``IP_VERSION``).
TX_IP_NAME = "tbqkd_transmitter"
#: The transmitter's VLNV, as ``overlay.ip_dict[name]["type"]`` shows it.
TX_VLNV = f"{IP_VENDOR}:{IP_LIBRARY}:{TX_IP_NAME}:{IP_VERSION}"
TX_VLNV_PREFIX = TX_VLNV.rpartition(":")[0]
TX_INSTANCE_NAME = f"{TX_IP_NAME}_0"

#: The transmitter's DMA wiring, one channel per stream port of
#: :data:`tbqkd.hdl.tx_records.TX_STREAMS` (``dma_<prefix>``; every output framed by
#: ``FRAME_WORDS``).
TX_DMA_CHANNELS: tuple[DmaChannel, ...] = tuple(_channel_for(port) for port in TX_STREAMS)


def dma_channel(stream: str, routes: tuple[DmaChannel, ...] = DMA_CHANNELS) -> DmaChannel:
    """The DMA channel of stream port ``stream`` in ``routes`` (default: the receiver's).

    Raises
    ------
    KeyError
        If the core has no stream port of that name.
    """
    for channel in routes:
        if channel.stream == stream:
            return channel
    raise KeyError(f"the core has no stream port {stream!r}; it has "
                   f"{[c.stream for c in routes]}")


def parse_vlnv(vlnv: str) -> tuple[str, str, str, str]:
    """Split ``vendor:library:name:version``.

    Raises
    ------
    ValueError
        If the string does not have four non-empty parts.
    """
    parts = vlnv.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"not a VLNV (vendor:library:name:version): {vlnv!r}")
    return parts[0], parts[1], parts[2], parts[3]
