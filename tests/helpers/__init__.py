"""What the tests share besides fixtures: ground-truth comparisons and test data.

Imported as ``helpers`` (pyproject's pytest ``pythonpath`` puts ``tests/`` on the path);
fixtures live in the ``conftest.py`` files.
"""

from pathlib import Path

import numpy as np

#: the repository's root
REPO = Path(__file__).resolve().parents[2]
#: tests/data: fixtures made by other software (Larch)
DATA = REPO / "tests" / "data"


def core(phantom, min_thickness=0.3):
    """Pixels well inside particles, where fractions are meaningful."""
    return phantom.particles & (phantom.thickness > min_thickness * phantom.thickness.max())


def fraction_errors(maps, phantom, inside):
    """|fitted - true| fraction of every reference (k, n) at the ``inside`` pixels."""
    names = [r.name for r in phantom.references]
    fitted = np.stack([maps.fraction(n) for n in names])
    return np.abs(fitted - phantom.fractions)[:, inside]


def fraction_error(node, truth) -> float:
    """Median |fitted - true| fraction over the thick part of the particles, of the maps
    ``node`` read back from Tiled against a simulated run's ``truth``."""
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()[[names.index(n) for n in truth.references]]
    inside = core(truth)
    return float(np.median(np.abs(fitted - truth.fractions)[:, inside]))
