"""The README's Python examples run in a real Jupyter kernel (nbformat + nbclient + ipykernel).

A notebook is built from the README's ```python blocks, in order, one cell each; it runs in a
temporary folder where ``networks/striatum`` is a generated network (:func:`gpuprune.synth.
generate_network`) and ``trial.json`` its config, as the examples assume.  Checked: no error
cell, figures present (image/png outputs), the progress bar rendered (tqdm.auto: a widget, or
text where ipywidgets is missing).
"""

import re
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

README = Path(__file__).resolve().parents[1] / "README.md"
#: the report example the README carries (added here while a README lacks one, so the checks always apply)
REPORT_EXAMPLE = '''\
report = gpuprune.report("networks/striatum", output="report", progress=True)  # after gpuprune.prune
print(report.table())                    # putative, kept, %, pairs, and where the model misses measured data
report.plot_pathway("dSPN,iSPN");        # P(connect) vs distance, synapses per pair, degrees, funnel
'''
#: the kernel's setup cell: draw inline figures as PNG
SETUP = "%matplotlib inline"


def python_blocks(text):
    return [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)]


def build_notebook():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "the README has no ```python example"
    if not any("gpuprune.report(" in b for b in blocks):
        blocks.append(REPORT_EXAMPLE)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [nbformat.v4.new_code_cell(b) for b in blocks]
    return nb


@pytest.mark.slow
def test_readme_examples_run_in_a_kernel(tmp_path):
    from gpuprune.synth import generate_network

    network = tmp_path / "networks" / "striatum"
    generate_network(str(network), num_neurons=150, synapses_per_neuron=300, seed=11)
    shutil.copy(network / "network-config.json", tmp_path / "trial.json")
    nb = build_notebook()
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first error cell

    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "no figure in the notebook's outputs"
    assert all(len(o["data"]["image/png"]) > 1000 for o in images)
    widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    text_bar = any(o["output_type"] == "stream" and "100%" in o.get("text", "") for o in outputs)
    assert widget or text_bar, "the progress bar did not render"
    assert any(o["output_type"] == "stream" and "connected pairs" in o.get("text", "") for o in outputs)
    assert (tmp_path / "report" / "index.html").exists()
