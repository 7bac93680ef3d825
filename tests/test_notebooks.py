"""The notebooks: committed clean, and executed for real against the Verilator backend.

``notebooks/getting_started.ipynb`` runs with nbclient in a kernel of this interpreter (a
kernelspec written into a temporary folder, so nothing depends on the kernels installed on the
machine): it opens the compiled core, brings it up on the twin's light, runs the link at 80 km
and must end with shared secret key. The same notebook with only its backend line changed to
``"pynq"`` must stop at the overlay with the one-line "needs the pynq package" error on a
machine without pynq.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e .[dev] (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e .[dev] (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -e .[dev] (ipykernel)")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
GETTING_STARTED = NOTEBOOKS / "getting_started.ipynb"
BACKEND_LINE = 'BACKEND = "verilator"  # or "pynq" on the board'
CELL_TIMEOUT_S = 600
KERNEL = "tbqkd-test-python"


@pytest.fixture
def kernel_manager(tmp_path, monkeypatch):
    """A kernel manager for this interpreter, its kernelspec and runtime files in ``tmp_path``."""
    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tbqkd test kernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    def make() -> KernelManager:
        specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
        return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)

    return make


def _execute(notebook, kernel_manager, cwd: Path) -> None:
    client = nbclient.NotebookClient(notebook, km=kernel_manager(), timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()


def _stdout(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


def _backend_cells(notebook) -> list[int]:
    return [i for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and re.search(r"^\s*BACKEND\s*=", cell.source, re.M)]


def test_notebook_is_committed_clean_and_valid():
    notebook = nbformat.read(GETTING_STARTED, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                "strip the outputs before committing (notebooks/README.md)")
    # The backend is chosen on one line of one cell, and nowhere else.
    cells = _backend_cells(notebook)
    assert len(cells) == 1 and notebook.cells[cells[0]].source.strip() == BACKEND_LINE


@pytest.mark.verilator
def test_getting_started_runs_to_secret_key_on_verilator(kernel_manager, tmp_path):
    notebook = nbformat.read(GETTING_STARTED, as_version=4)
    _execute(notebook, kernel_manager, tmp_path)        # raises CellExecutionError on error
    outputs = [out for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 3                             # histograms, QBER, key
    text = "\n".join(_stdout(cell) for cell in notebook.cells if cell.cell_type == "code")
    secret = re.search(r"^secret_bits\s+(\d+)$", text, re.M)
    assert secret, text[-2000:]
    assert int(secret.group(1)) > 0
    assert re.search(r"^keys_identical\s+True$", text, re.M)
    calibrated = re.search(r"QBER Z ([\d.]+) %, QBER X ([\d.]+) %", text)
    assert calibrated and float(calibrated.group(1)) < 5 and float(calibrated.group(2)) < 20
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "metrics.jsonl").is_file()
    assert {p.name for p in (runs[0] / "plots").iterdir()} >= {"qber.png", "key.png"}


def test_board_backend_without_pynq_stops_at_the_overlay_with_one_line(kernel_manager,
                                                                         tmp_path):
    from tbqkd.host.pynq_device import PYNQ_MISSING

    try:
        import pynq  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pynq is installed here: the board path would try to load a bitstream")
    notebook = nbformat.read(GETTING_STARTED, as_version=4)
    (cell,) = _backend_cells(notebook)
    notebook.cells[cell].source = notebook.cells[cell].source.replace(
        '"verilator"', '"pynq"', 1)
    with pytest.raises(CellExecutionError) as info:
        _execute(notebook, kernel_manager, tmp_path)
    assert "RunError" in str(info.value) and PYNQ_MISSING in str(info.value)
    failed = [c for c in notebook.cells if c.cell_type == "code"
              and any(out.output_type == "error" for out in c.outputs)]
    assert len(failed) == 1 and "open_link(options)" in failed[0].source
