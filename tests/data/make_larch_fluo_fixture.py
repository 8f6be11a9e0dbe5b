"""Regenerate larch_fluo_corr.json with real Larch's ``fluo_corr`` (not a project dependency).

python -m venv /tmp/larch && /tmp/larch/bin/pip install xraylarch
/tmp/larch/bin/python tests/data/make_larch_fluo_fixture.py

Each case: a bundled spectrum (read as a fluorescence spectrum of the given sample; every
normalized value below ``1 + alpha``, else no thick sample could give it and fluo_corr's
answer there is meaningless), Larch's default ``pre_edge`` windows for it (also passed to
``fluo_corr``, whose own defaults differ), the sample and geometry, and Larch's ``mu_corr``
and ``norm_corr``; ``alpha`` as ``fluo_corr`` computes it from xraydb.
"""

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from larch import Group
from larch.io import read_xdi
from larch.xafs import fluo_corr, pre_edge
from xraydb import material_mu, xray_edge, xray_line

here = Path(__file__).parent
refs = here.parents[1] / "src" / "xanes_stream" / "data" / "references"


def spectrum(name):
    if name.endswith(".xdi"):
        data = read_xdi(str(refs / name))
        return np.asarray(data.energy, float), np.asarray(data.mutrans, float)
    table = np.loadtxt(refs / name)
    return table[:, 0] * 1000.0, table[:, 1]  # keV -> eV


CASES = [
    # (spectrum, formula, element, edge, line, incident, exit)
    ("ni_metal_rt.xdi", "Ni", "Ni", "K", "Ka", 45.0, 45.0),
    ("ref_NiO.txt", "Ni0.1Mg0.9O", "Ni", "K", "Ka", 60.0, 30.0),
    ("ref_NiO.txt", "NiAl2O4", "Ni", "K", "Kb", 75.0, 15.0),
]

out = {"larch_version": version("xraylarch"), "xraydb_version": version("xraydb"), "cases": []}
for name, formula, element, edge, line, angin, angout in CASES:
    energy, mu = spectrum(name)
    group = Group(energy=energy, mu=mu)
    pre_edge(group)
    d = group.pre_edge_details
    windows = {
        "e0": float(group.e0),
        "pre1": float(d.pre1),
        "pre2": float(d.pre2),
        "norm1": float(d.norm1),
        "norm2": float(d.norm2),
        "nnorm": int(d.nnorm),
    }
    fluo_corr(
        group.energy, group.mu, formula, element, group=group, edge=edge, line=line,
        anginp=angin, angout=angout, **windows,
    )  # fmt: skip
    e_edge, e_line = xray_edge(element, edge).energy, xray_line(element, line).energy
    mus = material_mu(formula, np.array([e_line, e_edge - 10.0, e_edge + 10.0]), density=1)
    ratio = np.sin(max(1e-7, np.deg2rad(angin))) / np.sin(max(1e-7, np.deg2rad(angout)))
    out_alpha = float((mus[0] * ratio + mus[1]) / (mus[2] - mus[1]))
    assert np.max(group.norm) < 1 + out_alpha, (name, formula)
    out["cases"].append(
        {
            "spectrum": name,
            "formula": formula,
            "element": element,
            "edge": edge,
            "line": line,
            "incident_angle": angin,
            "exit_angle": angout,
            **windows,
            "alpha": out_alpha,
            "energy": [round(float(e), 4) for e in energy],
            "mu": [float(v) for v in mu],
            "mu_corr": [float(v) for v in group.mu_corr],
            "norm_corr": [round(float(v), 7) for v in group.norm_corr],
        }
    )
(here / "larch_fluo_corr.json").write_text(json.dumps(out))
print("wrote", here / "larch_fluo_corr.json", out["larch_version"])
