"""Beamline and technique profiles: which data keys hold what, and how to analyse them.

Profiles are YAML files validated by :class:`Profile`. The bundled ones live beside this module:

- ``sim``: the simulated full-field TXM of :mod:`xanes_stream.sim` (demo and tests);
- ``fxi``: FXI (NSLS-II 18-ID) full-field TXM, ``xanes_scan2``: classic AD_HDF5/AD_TIFF camera
  ``KinetixU``, ``XEng`` in keV, ``ic3`` as I0, several exposures per event, a flat per energy;
- ``nanoxanes``: scanning fluorescence nano-XANES (HXN/SRX): the Xspress3 ROI map over
  ``sclr_i0``, no flat;
- ``ptycho``: ptychography: the reconstructed optical density (-ln amplitude) per energy, used
  as absorption, no dark or flat.

``load_profile`` also takes a path to a YAML file. A run's
start document may override the data keys, mode and references in ``md["xanes"]``, and analysis
parameters in ``md["xanes"]["settings"]``; paths (``allowed_roots``, ``model_roots``, a model
file) and the types a model may hold are the profile's alone.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.settings import AnalysisSettings, describe_validation_error


class Streams(BaseModel):
    """Names of the streams that hold the scan's frames, its dark and its flat frames."""

    model_config = ConfigDict(extra="forbid")
    primary: str = "primary"
    dark: str = "dark"
    flat: str = "flat"


class Frames(BaseModel):
    """How an event's image and the flat frames are turned into one frame per energy."""

    model_config = ConfigDict(extra="forbid")
    event_image: Literal["auto", "exposures", "volume"] = Field(
        "auto",
        description="what a 3-D image (n, ny, nx) in one event is: exposures: n frames of the "
        "same energy (FXI's chunk_size), combined into one; volume: a reconstructed volume "
        "(3D XANES); auto: exposures where the file format says so (AD_HDF5/AD_TIFF "
        "frame_per_point > 1), a volume otherwise",
    )
    combine: Literal["mean", "median"] = Field(
        "mean",
        description="how several exposures of one event are combined (median: robust to zingers)",
    )
    flats: Literal["mean", "per_energy"] = Field(
        "mean",
        description="mean: every flat frame of the run averaged into one flat (xanes_scan); "
        "per_energy: each energy's frame corrected by the flat taken at its energy (FXI's "
        "xanes_scan2), matched by energy, else by order; frames with no flat of their own "
        "use the mean flat",
    )


class RunSelection(BaseModel):
    """Which runs are energy scans to analyse: a plan name in ``plan_names``, or ``md_key``
    present in the start document."""

    model_config = ConfigDict(extra="forbid")
    plan_names: list[str] = ["xanes_scan"]
    md_key: str | None = "xanes"


class Foil(BaseModel):
    """A reference foil read in the same run, for the energy scale (like Larch's
    ``energy_align``): the scan's energies are moved by (known - measured E0) before analysis
    (:func:`~xanes_stream.spectra.calibration.foil_energy_offset`)."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(description="data key of the primary stream, one foil reading per event")
    edge_energy: float = Field(gt=0, description="the foil's known edge energy (eV)")
    signal: Literal["absorption", "transmission"] = Field(
        "absorption",
        description="absorption: the reading is mu (e.g. ln(I1/I2)); transmission: I2/I1",
    )


class Profile(BaseModel):
    """What the service needs to know about a beamline and technique."""

    model_config = ConfigDict(extra="forbid")
    name: str
    mode: Literal["transmission", "fluorescence", "absorbance"] = "transmission"
    image_key: str
    energy_key: str
    energy_units: Literal["eV", "keV"] = "eV"
    i0_key: str | None = Field(None, description="incident intensity per event (fluorescence)")
    foil: Foil | None = Field(None, description="energy calibration to a foil in the run")
    streams: Streams = Streams()
    frames: Frames = Frames()
    dark_flat_source: Literal["streams", "none"] = Field(
        "streams",
        description="streams: dark and flat frames come in the named streams of the same run "
        "(a transmission scan needs a flat); none: no flat is required",
    )
    references: list[str] = Field(default_factory=list, description="default library entries")
    runs: RunSelection = RunSelection()
    allowed_roots: list[str] = Field(
        default_factory=list, description="folders detector files may be read from"
    )
    model_roots: list[str] = Field(
        default_factory=list,
        description="folders the service may read model files (settings.products.ml.model_path) "
        "from; keep them apart from the detector folders, where users can put files",
    )
    settings: AnalysisSettings = AnalysisSettings()


def bundled_profiles() -> list[str]:
    """Names of the profiles that come with the package.

    Returns
    -------
    list of str
        Sorted names, each loadable with :func:`load_profile`.
    """
    folder = resources.files(__package__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A bundled profile by name (``sim``, ``fxi``, ``nanoxanes``, ``ptycho``) or a YAML file
    by path.

    Parameters
    ----------
    name_or_path : str or Path
        A bundled profile's name (no suffix), or the path of a YAML file.

    Returns
    -------
    Profile
        The validated profile.

    Raises
    ------
    SettingsError
        If there is no such profile, or it is unreadable, not YAML or invalid (the message
        names the field).
    """
    path = Path(name_or_path)
    if not path.suffix:
        bundled = resources.files(__package__) / f"{name_or_path}.yaml"
        if not bundled.is_file():
            raise SettingsError(
                f"no profile {name_or_path!r}; bundled: {', '.join(bundled_profiles())}"
            )
        text = bundled.read_text()
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise SettingsError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
        return Profile.model_validate(data)
    except yaml.YAMLError as exc:
        raise SettingsError(f"profile {name_or_path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise SettingsError(
            f"invalid profile {name_or_path}: {describe_validation_error(exc)}"
        ) from None
