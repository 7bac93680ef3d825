"""Generate the core's Verilog and its register map: ``python -m tbqkd.hdl.build [OUTDIR]``.

Writes ``<OUTDIR>/tbqkd_rx.v`` (simulation/vendor-independent front end), ``tbqkd_rx_xc7.v``
(Xilinx 7-series front-end primitives), ``regmap.json`` and ``REGISTERS.md``. Files are only
rewritten when their content changes, so builds that depend on them stay cached.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from amaranth.back import verilog

from .config import TaggerConfig, tagger_regmap
from .top import TOP_NAME, ReceiverTop

__all__ = ["generate_verilog", "write_if_changed", "build_all", "DEFAULT_BUILD_DIR"]

DEFAULT_BUILD_DIR = Path(__file__).resolve().parent.parent / "build" / "hdl"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def generate_verilog(config: TaggerConfig, *, primitives: str = "none",
                     name: str = TOP_NAME) -> str:
    """Verilog of the receiver top for ``config``."""
    top = ReceiverTop(config, primitives=primitives)
    return verilog.convert(top, name=name, emit_src=False)


def verilog_for(config: TaggerConfig, build_dir: Path | None = None, *,
                primitives: str = "none") -> Path:
    """Path of the generated Verilog for ``config``, generating it if needed.

    Cached under a hash of the configuration and of the gateware sources.
    """
    build_dir = Path(build_dir or DEFAULT_BUILD_DIR)
    key = hashlib.sha256(repr((sorted(config.as_dict().items()), primitives)).encode())
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):  # the gateware itself
        key.update(source.read_bytes())
    path = build_dir / f"{TOP_NAME}_{key.hexdigest()[:12]}" / f"{TOP_NAME}.v"
    if not path.exists():
        write_if_changed(path, generate_verilog(config, primitives=primitives))
    return path


def build_all(outdir: Path, config: TaggerConfig | None = None) -> list[Path]:
    config = config or TaggerConfig()
    regmap = tagger_regmap(config)
    outputs = {
        f"{TOP_NAME}.v": generate_verilog(config),
        f"{TOP_NAME}_xc7.v": generate_verilog(config, primitives="xc7"),
        "regmap.json": regmap.to_json(config=config.as_dict()),
        "REGISTERS.md": regmap.to_markdown(),
    }
    paths = []
    for filename, text in outputs.items():
        path = outdir / filename
        write_if_changed(path, text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_BUILD_DIR):
        print(p)
