"""The self-absorption parameters reach the maps node's metadata in Tiled, and only where the
correction was applied."""

import numpy as np

from xanes_stream import analyze
from xanes_stream.sim.phantom import make_phantom
from xanes_stream.store.tiled_store import _maps_metadata

SAMPLE = {"enabled": True, "formula": "NiO", "element": "Ni"}


def test_parameters_in_the_node_metadata():
    p = make_phantom((24, 24), references=("NiO", "LiNiO2"), n_particles=1, drift=0, seed=1)
    od = -np.log(p.transmission)
    args = (od + 0.05, p.energies, p.references)
    plain = {"registration": {"method": "none"}, "mask": {"n_clusters": 0}}
    corrected = analyze(*args, mode="fluorescence", settings={**plain, "self_absorption": SAMPLE})
    md = _maps_metadata("a" * 32, corrected, {})
    assert md["self_absorption"]["formula"] == "NiO"
    assert md["self_absorption"]["alpha"] == corrected.metadata["self_absorption"]["alpha"]
    assert any("self-absorption" in note for note in md["notes"])
    assert "self_absorption" not in _maps_metadata(
        "a" * 32, analyze(*args, mode="fluorescence", settings=plain), {}
    )
