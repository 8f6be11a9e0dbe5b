"""Energy calibration through the live service: a start document asks for fit.energy_shift,
the references in Tiled's library are 2 eV off, and the maps in Tiled carry the offset found
and the fractions of the true references."""

import httpx
import numpy as np
import pytest

from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.spectra.references import Reference
from xanes_stream.store.tiled_store import TiledResultStore

pytestmark = pytest.mark.timeout(300)
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
OFF = 2.0  # the library's references read this much high


def test_references_off_by_2ev_are_calibrated_live(start_pipeline):
    live = start_pipeline(web_port=0)
    store = TiledResultStore(live.tiled.client())
    names = []
    for name in ("NiO", "LiNiO2"):  # the simulator's phases
        ref = bundled_reference(name)
        store.add_reference(Reference(f"{name}_off", ref.energy + OFF, ref.mu, ref.normalized))
        names.append(f"{name}_off")
    md = {"xanes": {"references": names, "settings": {"fit": {"energy_shift": "data"}}}}
    (run,) = run_simulated_experiment(
        live.tiled.uri, live.tiled.api_key, live.proxy.in_address, data_dir=live.data_dir,
        n_scans=1, detector="inline", shape=(64, 64), seed=81, energies=ENERGIES, md=md,
    )  # fmt: skip
    (record,) = live.service.wait_for([run.uid], 120.0)
    assert record is not None and record.status == "done", record and record.reason
    node = live.client["xanes"][run.uid]
    shifts = node.metadata["energy_shifts"]
    assert list(shifts) == ["data"]
    assert shifts["data"] == pytest.approx(-OFF, abs=0.2)
    fractions = node["fractions"].read()
    truth = run.truth
    inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
    true = np.stack([truth.fraction(n) for n in ("NiO", "LiNiO2")])
    assert np.median(np.abs(fractions - true)[:, inside]) < 0.05
    # the page says so too
    url = live.service.web.url.rstrip("/")
    detail = httpx.get(f"{url}/api/scans/{run.uid}", timeout=30, trust_env=False).json()
    assert detail["corrections"]["energy_shifts"] == pytest.approx(shifts)
