"""Tomographic XANES: the cost of reconstructing every energy, and the fractions' errors.

    python benchmarks/bench_tomography.py [--size 128] [--angles 181] [--n-energy 20]
        [--sart-energies 1] [--scale-to 100]

A phantom of ``--size``^3 voxels (:func:`~xanes_stream.sim.tomography.make_tomo_phantom`,
Poisson noise, the rotation axis 0.7 px off centre) projected at ``--angles`` angles over
0-180 at ``--n-energy`` energies across the Ni K-edge. Timed, each in this process:

- the centre (:func:`~xanes_stream.imaging.tomography.find_center`, 0/180 pair);
- FBP of every energy (vectorised over slices) and, on ``--sart-energies`` energies, SART
  (scikit-image, slice by slice), and scikit-image's ``iradon`` slice by slice on one energy
  as the peer of the vectorised FBP;
- the volume fit (:func:`~xanes_stream.pipeline.volume.analyze_volume`) of the FBP volumes;

then scaled linearly to ``--scale-to`` energies (both the reconstruction and the fit are per
energy). Errors: mean |fraction - truth| over voxels one voxel inside the particles, and the
largest error of a particle's median fraction.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import iradon

from xanes_stream.imaging.tomography import absorbance, center_projections, find_center, reconstruct
from xanes_stream.pipeline.volume import analyze_volume
from xanes_stream.sim.tomography import make_tomo_phantom


def _errors(phantom, fractions) -> tuple[float, float]:
    inner = ndi.binary_erosion(phantom.labels > 0)
    per_voxel = float(np.nanmean(np.abs(fractions[:, inner] - phantom.fractions[:, inner])))
    worst = 0.0
    for i in range(1, phantom.labels.max() + 1):
        sel = (phantom.labels == i) & inner
        if sel.any():
            median = np.nanmedian(fractions[:, sel], axis=1)
            worst = max(worst, float(np.abs(median - phantom.fractions[:, sel][:, 0]).max()))
    return per_voxel, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--angles", type=int, default=181)
    parser.add_argument("--n-energy", type=int, default=20)
    parser.add_argument("--sart-energies", type=int, default=1)
    parser.add_argument("--scale-to", type=int, default=100)
    args = parser.parse_args()

    energies = np.linspace(8250.0, 8450.0, args.n_energy)
    t = time.perf_counter()
    phantom = make_tomo_phantom(
        args.size, energies=energies, n_angles=args.angles, n_particles=8, center_offset=0.7
    )
    print(f"phantom {phantom.projections.shape}: {time.perf_counter() - t:.1f} s")
    values = [absorbance(p, "transmission") for p in phantom.projections]

    t = time.perf_counter()
    center = find_center(values[-1], phantom.angles)
    print(f"centre {center:.2f} (true {phantom.center:.2f}): {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    volumes = np.stack([reconstruct(v, phantom.angles, center=center) for v in values])
    fbp = (time.perf_counter() - t) / args.n_energy
    print(f"FBP: {fbp:.2f} s per energy", flush=True)

    t = time.perf_counter()
    centred = center_projections(values[0], center)
    for z in range(args.size):
        iradon(centred[:, z].T.astype(np.float64), theta=phantom.angles, circle=True)
    peer = time.perf_counter() - t
    print(f"iradon slice by slice: {peer:.2f} s per energy", flush=True)

    t = time.perf_counter()
    for v in values[: args.sart_energies]:
        reconstruct(v, phantom.angles, method="sart", center=center)
    sart = (time.perf_counter() - t) / max(1, args.sart_energies)
    print(f"SART: {sart:.2f} s per energy", flush=True)

    t = time.perf_counter()
    maps = analyze_volume(volumes, energies, phantom.references, progress=False)
    fit = (time.perf_counter() - t) / args.n_energy
    per_voxel, per_particle = _errors(phantom, maps.fractions)

    n, scale = args.size, args.scale_to
    print(f"per energy ({n}^3, {args.angles} angles): FBP {fbp:.2f} s (iradon slice by slice "
          f"{peer:.2f} s), SART {sart:.2f} s, fit {fit:.2f} s")  # fmt: skip
    print(f"{scale} energies: FBP + fit {scale * (fbp + fit) / 60:.1f} min, SART + fit "
          f"{scale * (sart + fit) / 60:.1f} min")  # fmt: skip
    print(f"FBP fractions: mean |error| per voxel {per_voxel:.3f}, worst particle median "
          f"{per_particle:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
