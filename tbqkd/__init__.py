"""tbqkd: time-bin quantum key distribution: gateware, host and digital twin.

The implementation lives in three subpackages that mirror the repository's folders:

* :mod:`tbqkd.hdl`  (``hdl/``)  — the Amaranth receiver core and its build;
* :mod:`tbqkd.host` (``host/``) — pure-Python host software (runs on a PYNQ board, Python 3.10);
* :mod:`tbqkd.sim`  (``sim/``)  — the digital twin of the optics and the Verilator model loader.
"""

__version__ = "0.1.0"
