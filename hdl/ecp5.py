"""ECP5 netlist step between Yosys and nextpnr: block RAM output registers.

An ECP5 block RAM (``DP16KD``) can register its read data inside the RAM (``REGMODE``
``OUTREG``): clock-to-out 0.72 ns instead of 4.26 ns on the LFE5U-85F-8, as nextpnr times them.
Yosys's ECP5 memory mapping never uses that register: a flip-flop that follows the RAM stays
in the fabric, and every path out of a RAM starts 4.26 ns late. Vendor flows move such a
flip-flop into the RAM; :func:`absorb_bram_output_registers` does the same on the JSON netlist
that ``synth_ecp5`` writes.

A read port is folded only when the move is exact: each of its used data outputs drives
nothing but the data input of one ``TRELLIS_FF``, and all those flip-flops share the RAM
port's clock (rising edge), one clock enable and one synchronous reset to zero (reset over
enable, no global set/reset), and the port's own reset is unused or that same reset. The RAM's
output register then loads on that enable (``OCE``) and resets with that reset (``RST``), and
the flip-flops are removed: the register's output takes over their nets.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["absorb_bram_output_registers"]

_RAM = "DP16KD"
_PORTS = ("A", "B")


def absorb_bram_output_registers(netlist: dict, top: str) -> list[str]:
    """Move the flip-flops that directly follow each ``DP16KD`` read port of module ``top``
    into the RAM (module docstring); returns the names of the RAMs changed.

    ``netlist`` is Yosys's JSON netlist after ``synth_ecp5`` (flattened), changed in place.
    A RAM configured for 36-bit reads (read data on both ``DOA`` and ``DOB``) is folded as a
    whole, with both ports' output registers set alike.
    """
    module = netlist["modules"][top]
    cells = module["cells"]
    top_ports = {b for port in module["ports"].values() for b in port["bits"]}
    sinks: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if cell["port_directions"].get(pin) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        sinks[bit].append((name, pin))

    changed = []
    for name in [n for n, c in cells.items() if c["type"] == _RAM]:
        ram = cells[name]
        conn, params = ram["connections"], ram["parameters"]
        wide = int(str(params.get("DATA_WIDTH_A", "0")), 2) == 36 or \
            int(str(params.get("DATA_WIDTH_B", "0")), 2) == 36
        # (read port, its output pins) groups to fold
        if wide:
            groups = [(("A", "B"), [p for p in conn if p.startswith(("DOA", "DOB"))], "B")]
        else:
            groups = [((x,), [p for p in conn if p.startswith(f"DO{x}")], x) for x in _PORTS]
        for ports, pins, ctl in groups:
            if any(params.get(f"REGMODE_{x}", "NOREG") != "NOREG" for x in ports):
                continue
            folds = _foldable(cells, conn, pins, ctl, sinks, top_ports)
            if folds is None:
                continue
            flops, enable, reset = folds
            if not _resets_agree(conn, params, ports, reset):
                continue
            for pin, ff in flops.items():
                conn[pin] = cells[ff]["connections"]["Q"]
                del cells[ff]
            for x in ports:
                params[f"REGMODE_{x}"] = "OUTREG"
                conn[f"OCE{x}"] = enable
                conn[f"RST{x}"] = reset if reset is not None else conn[f"RST{x}"]
            if reset is not None:
                params["RESETMODE"] = "SYNC"
            changed.append(name)
    return changed


def _resets_agree(conn: dict, params: dict, ports: tuple[str, ...],
                  reset: list | None) -> bool:
    """Whether the RAM's ``ports`` may take the flip-flops' synchronous ``reset`` (``None``:
    they have none): each port's own reset is unused, or already that reset, and no other
    port relies on an asynchronous one (``RESETMODE`` is one setting for both ports)."""
    for x in _PORTS:
        own = conn.get(f"RST{x}", ["0"])
        if x in ports and own != ["0"] and own != reset:
            return False
        if (x not in ports and reset is not None and own != ["0"]
                and params.get("RESETMODE", "SYNC") != "SYNC"):
            return False
    return True


def _foldable(cells: dict, conn: dict, pins: list[str], ctl: str,
              sinks: dict[int, list[tuple[str, str]]], top_ports: set[int]):
    """For a read port's output ``pins`` controlled by port ``ctl``: ``(flop per pin,
    enable bits, reset bits or None)`` if every used output feeds exactly one foldable
    flip-flop with common controls, else ``None``. The RAM's own resets are checked by
    :func:`_resets_agree`."""
    flops: dict[str, str] = {}
    controls = set()
    for pin in pins:
        bit = conn[pin][0]
        if not isinstance(bit, int) or (not sinks[bit] and bit not in top_ports):
            continue                                    # unused output
        if bit in top_ports or len(sinks[bit]) != 1:
            return None
        ff_name, ff_pin = sinks[bit][0]
        ff = cells[ff_name]
        p, c = ff["parameters"], ff["connections"]
        if ff["type"] != "TRELLIS_FF" or ff_pin != "DI":
            return None
        if (p.get("CLKMUX", "CLK") != "CLK" or p.get("GSR", "DISABLED") != "DISABLED"
                or p.get("REGSET", "RESET") != "RESET"
                or p.get("SRMODE", "LSR_OVER_CE") != "LSR_OVER_CE"
                or p.get("LSRMUX", "LSR") != "LSR"
                or c["CLK"] != conn[f"CLK{ctl}"]):
            return None
        enable = ("1",) if p.get("CEMUX", "CE").strip() == "1" else tuple(c.get("CE", ["1"]))
        if p.get("CEMUX", "CE").strip() not in ("1", "CE"):
            return None
        reset = tuple(c.get("LSR", ["0"]))
        controls.add((enable, reset))
        flops[pin] = ff_name
    if not flops or len(controls) != 1:
        return None
    enable, reset = controls.pop()
    if reset == ("0",):
        return flops, list(enable), None                # the flip-flops have no reset
    if all(isinstance(b, str) for b in reset):
        return None                                     # held in reset: leave it alone
    return flops, list(enable), list(reset)
