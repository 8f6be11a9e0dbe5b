"""Synthetic TXM energy stacks with known chemistry, made from measured reference spectra."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.references import Reference, unit_step


def ni_edge_energies(step: float = 1.0) -> np.ndarray:
    """A typical Ni K-edge TXM scan: coarse pre- and post-edge, ``step`` eV across the edge."""
    return np.concatenate(
        [
            np.arange(8250.0, 8320.0, 5.0),
            np.arange(8320.0, 8370.0, step),
            np.arange(8370.0, 8455.0, 5.0),
        ]
    )


def unit_step_spectrum(reference: Reference, energies: np.ndarray) -> np.ndarray:
    """The reference as a physical absorber with edge step 1, on ``energies`` (eV)."""
    normalized = unit_step(reference)
    return np.interp(energies, normalized.energy, normalized.mu)


@dataclass
class Phantom:
    """A synthetic energy scan and its ground truth.

    ``frames`` are raw counts (n, ny, nx) with ``dark`` and ``flat`` frames; ``transmission`` is
    the flat-corrected stack. ``drift`` (n, 2) is how far the sample moved in each frame (dy, dx),
    so the registering shift is ``-(drift - drift[reference])``.
    """

    energies: np.ndarray
    frames: np.ndarray
    dark: np.ndarray
    flat: np.ndarray
    references: list[Reference]
    fractions: np.ndarray
    thickness: np.ndarray
    particles: np.ndarray
    labels: np.ndarray
    drift: np.ndarray
    metadata: dict = field(default_factory=dict)

    @property
    def transmission(self) -> np.ndarray:
        return ((self.frames - self.dark) / (self.flat - self.dark)).astype(np.float32)

    def true_spectra(self) -> np.ndarray:
        """Noise-free normalized spectrum of every pixel (n, ny, nx)."""
        unit = np.stack([unit_step_spectrum(r, self.energies) for r in self.references], axis=1)
        return np.einsum("ek,kyx->eyx", unit, self.fractions)


def _smooth_field(rng, shape, sigma) -> np.ndarray:
    field_ = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return field_ / (field_.std() + 1e-12)


def make_phantom(
    shape: tuple[int, int] = (128, 128),
    energies: np.ndarray | None = None,
    references: list[Reference] | tuple[str, ...] = ("NiO", "LiNiO2"),
    *,
    n_particles: int = 6,
    counts: float = 20_000.0,
    drift: float = 1.0,
    max_thickness: float = 1.0,
    matrix_od: float = 0.3,
    dark_level: float = 100.0,
    seed: int = 0,
    noise: bool = True,
    fractions_override: np.ndarray | None = None,
) -> Phantom:
    """A field of view with ``n_particles`` round particles whose phase fractions vary inside.

    Each pixel's optical density is a matrix background that falls with energy (E^-2.8) plus,
    inside particles, thickness x (non-resonant absorption + sum_i f_i x reference_i). The
    beam has a smooth flat-field profile; frames get Poisson noise at ``counts`` photons per
    pixel in the open beam, a dark offset, and a random-walk sample drift of ``drift`` px rms
    per frame.
    """
    rng = np.random.default_rng(seed)
    energies = ni_edge_energies() if energies is None else np.asarray(energies, dtype=float)
    refs = [bundled_reference(r) if isinstance(r, str) else r for r in references]
    ny, nx = shape
    k = len(refs)

    # Particles: discs with a spherical thickness profile, none touching the border.
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    thickness = np.zeros(shape)
    labels = np.zeros(shape, dtype=np.int32)
    radius_range = (0.07 * min(shape), 0.14 * min(shape))
    placed = 0
    for _ in range(500):
        if placed == n_particles:
            break
        r = rng.uniform(*radius_range)
        cy, cx = rng.uniform(r + 4, ny - r - 4), rng.uniform(r + 4, nx - r - 4)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        disc = d2 < (r + 2) ** 2
        if (labels[disc] > 0).any():
            continue
        placed += 1
        inside = d2 < r**2
        labels[inside] = placed
        thickness[inside] = max_thickness * rng.uniform(0.6, 1.0) * np.sqrt(1 - d2[inside] / r**2)
    particles = labels > 0

    # Fractions: a softmax of smooth random fields, so every mix occurs somewhere.
    if fractions_override is not None:
        fractions = np.asarray(fractions_override, dtype=np.float64)
    elif k == 1:
        fractions = np.ones((1, *shape))
    else:
        fields = np.stack([2.0 * _smooth_field(rng, shape, min(shape) / 10) for _ in range(k)])
        fractions = np.exp(fields - fields.max(axis=0))
        fractions /= fractions.sum(axis=0)
    fractions = np.where(particles, fractions, 0.0)

    unit = np.stack([unit_step_spectrum(r, energies) for r in refs], axis=1)  # (n, k)
    scale = (energies / energies[0]) ** -2.8
    matrix = matrix_od * (0.7 + 0.3 * (xx / nx))  # a slab of varying thickness
    mu = (
        scale[:, None, None] * matrix[None]
        + scale[:, None, None] * 0.5 * thickness[None]
        + np.einsum("ek,kyx->eyx", unit, fractions * thickness[None])
    )

    steps = rng.normal(0.0, drift, size=(energies.size, 2))
    steps[0] = 0.0
    walk = np.cumsum(steps, axis=0)
    if drift > 0:
        mu = np.stack(
            [ndi.shift(m, d, order=3, mode="nearest") for m, d in zip(mu, walk, strict=True)]
        )

    beam = counts * (0.85 + 0.15 * np.exp(-((yy - ny / 2) ** 2 + (xx - nx / 2) ** 2) / (nx**2)))
    beam = beam * np.linspace(1.0, 0.95, energies.size)[:, None, None]  # decaying ring current
    expected = beam * np.exp(-mu)
    if noise:
        frames = rng.poisson(expected) + rng.poisson(dark_level, size=expected.shape)
        flat = rng.poisson(beam) + dark_level
        dark = np.full(shape, dark_level)
    else:
        frames, flat, dark = expected + dark_level, beam + dark_level, np.full(shape, dark_level)
    return Phantom(
        energies=energies,
        frames=frames.astype(np.float32),
        dark=dark.astype(np.float32),
        flat=flat.astype(np.float32),
        references=refs,
        fractions=fractions.astype(np.float32),
        thickness=thickness.astype(np.float32),
        particles=particles,
        labels=labels,
        drift=walk,
        metadata={"counts": counts, "seed": seed, "drift_rms": drift},
    )
