"""Regenerate larch_pre_edge.json with real Larch (not a project dependency: ~2.4 GB).

python -m venv /tmp/larch && /tmp/larch/bin/pip install xraylarch
/tmp/larch/bin/python tests/data/make_larch_fixture.py
"""

import json
from importlib.metadata import version
from pathlib import Path

from larch import Group
from larch.io import read_xdi
from larch.xafs import pre_edge

here = Path(__file__).parent
refs = here.parents[1] / "src" / "xanes_stream" / "data" / "references"
out = {"larch_version": version("xraylarch"), "spectra": {}}
for name, column in (("cu_metal_rt.xdi", "mutrans"), ("ni_metal_rt.xdi", "mutrans")):
    data = read_xdi(str(refs / name))
    group = Group(energy=data.energy, mu=getattr(data, column))
    pre_edge(group)
    details = group.pre_edge_details
    out["spectra"][name] = {
        "e0": float(group.e0),
        "edge_step": float(group.edge_step),
        "pre": [float(details.pre1), float(details.pre2)],
        "norm": [float(details.norm1), float(details.norm2)],
        "nnorm": int(details.nnorm),
        "energy": [round(float(e), 4) for e in group.energy],
        "normalized": [round(float(v), 6) for v in group.norm],
    }
(here / "larch_pre_edge.json").write_text(json.dumps(out))
print("wrote", here / "larch_pre_edge.json", out["larch_version"])
