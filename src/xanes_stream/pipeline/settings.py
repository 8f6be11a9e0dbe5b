"""Analysis settings: one validated model, with defaults that work on a typical TXM scan."""

from __future__ import annotations

import enum
import types
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.products.registry import analyses as _registered
from xanes_stream.pipeline.section import FROM_DOCUMENTS, Window, _Section
from xanes_stream.pipeline.self_absorption import SelfAbsorptionSettings

__all__ = [
    "AnalysisSettings",
    "ProductSettings",
    "Window",
    "_Section",
    "load_settings",
    "merge_document_settings",
    "merge_settings",
    "refused_from_documents",
]


class NormalizationSettings(_Section):
    """Edge normalization; windows are relative to E0 (eV), as in Larch's ``pre_edge``."""

    e0: float | None = Field(None, description="E0 in eV; None finds it on the mean spectrum")
    pre_edge: Window | None = Field(None, description="pre-edge window relative to E0 (eV)")
    post_edge: Window | None = Field(None, description="post-edge window relative to E0 (eV)")
    post_edge_order: int | None = Field(None, ge=0, le=3)


class RegistrationSettings(_Section):
    """Alignment of the frames of a scan."""

    method: Literal["none", "phase_correlation", "stackreg"] = "phase_correlation"
    transform: Literal["translation", "rigid", "scaled_rotation", "affine"] = Field(
        "translation", description="StackReg transformation (phase correlation: translation)"
    )
    reference: Literal["first", "previous", "last"] | int = Field(
        "previous", description="register each frame to this frame (index), or to the previous"
    )
    roi: tuple[int, int, int, int] | None = Field(
        None, description="(y0, y1, x0, x1) region used to measure the shift; None: full frame"
    )
    upsample_factor: int = Field(20, ge=1, le=1000, description="sub-pixel precision 1/N")


class FitSettings(_Section):
    """Per-pixel linear-combination fit."""

    method: Literal["lstsq", "nnls", "admm"] = "nnls"
    sum_to_one: Literal["none", "normalize", "constrain"] = Field(
        "normalize",
        description="normalize: fit freely, then divide by the sum (exact under the common "
        "per-pixel scale an edge-step estimate carries); constrain: equality in the fit",
    )
    energy_range: Window | None = Field(None, description="absolute eV; None: whole scan")
    admm_iterations: int = Field(200, ge=1, le=100_000)
    admm_rho: float | None = Field(None, gt=0)
    energy_shift: Literal["none", "data", "references"] = Field(
        "none",
        description="energy calibration against the references before the fit, on the mean "
        "of the thick pixels: data: one offset of the scan; references: one per reference "
        "(spectra.calibration: shift s uses reference energy E_ref + s)",
    )
    max_energy_shift: float = Field(
        5.0, gt=0, le=100, description="bound (eV) of the energy_shift search; reaching it fails"
    )
    model: Literal["auto", "normalized", "optical_density"] = Field(
        "auto",
        description="normalized: fit the edge-normalized spectra; optical_density: fit each "
        "pixel's mu to thickness-scaled references plus a smooth background (no post-edge "
        "needed); auto: normalized unless it fits the stack's mean spectrum clearly worse "
        "than optical_density (an L-edge, no post-edge free of other edges), said in the notes",
    )
    model_check: Literal["warn", "refuse"] = Field(
        "warn",
        description="with model normalized, where edge normalization distorts the stack: warn "
        "(a note) or refuse the stack (an error that recommends optical_density)",
    )
    background: tuple[Literal["constant", "linear", "e-3", "e-4"], ...] = Field(
        ("constant", "e-3"),
        description="terms of the optical_density model's background (of E/E0): constant, "
        "linear, e-3 (Victoreen-like falloff), e-4",
    )
    errors: bool = Field(
        False,
        description="fraction_errors: 1-sigma standard error of each fraction per pixel "
        "(off by default: it adds about a quarter to a third to analyze's CPU time)",
    )

    @field_validator("background")
    @classmethod
    def _distinct_terms(cls, value):
        if len(set(value)) != len(value):
            raise ValueError(f"background terms repeat: {list(value)}")
        return value

    @model_validator(mode="after")
    def _model_fits_constraint(self):
        if self.model == "optical_density" and self.sum_to_one == "constrain":
            raise ValueError(
                "the optical_density model fits each reference's edge-step scale, so their sum "
                "is the thickness and cannot be constrained to one: use sum_to_one "
                "'normalize' (fractions t / sum t) or 'none'"
            )
        return self


class FeatureSettings(_Section):
    """Edge and white-line energies; windows relative to the scan's E0 (eV)."""

    edge_method: Literal["derivative", "half_height"] = "derivative"
    edge_window: Window = (-20.0, 20.0)
    peak_window: Window = (0.0, 40.0)


class MaskSettings(_Section):
    """Which pixels count as sample, and their k-means clusters."""

    method: Literal["snr", "otsu"] = Field(
        "snr",
        description="snr: pixels whose edge jump (mean mu above the edge less below it) is "
        "min_snr times its noise (from the scatter about the pre-edge line), thin particles "
        "kept; otsu: Otsu's thresholds on the thickness and "
        "on log10(R-factor), which favour thick particles",
    )
    min_snr: float = Field(
        5.0,
        gt=0,
        description="snr: the least edge jump over its own noise (one point's, "
        "from the pre-edge scatter, through the means of the pre- and post-edge windows)",
    )
    outside: Literal["nan", "keep"] = Field(
        "nan",
        description="nan: every fitted map (fractions, errors, R-factor, chi2, E0, white line) "
        "is NaN outside the mask (the thickness is kept: it shows what the mask judged); keep: "
        "the fit of every pixel",
    )
    thickness_threshold: float | None = Field(
        None,
        description="a thickness (edge step) a sample pixel exceeds; None: Otsu (otsu) "
        "or none (snr)",
    )
    r_factor_threshold: float | None = Field(
        None,
        gt=0,
        description="an R-factor a sample pixel stays below; None: Otsu on log10 "
        "(otsu) or none (snr: a bad fit is shown, not hidden)",
    )
    n_clusters: int = Field(3, ge=0, le=50)
    cluster_components: int = Field(6, ge=1, le=50)
    seed: int = 0


class DenoiseSettings(_Section):
    """Denoising before the fit, each off by default: PCA projection of every pixel's
    spectrum, and hot-pixel (spike) removal in each frame."""

    components: int | Literal["auto"] | None = Field(
        None,
        description="keep the mean + this many principal components of the spectra (from the "
        "analysis' pixel sample); auto: those above the noise (Gavish-Donoho); None: off",
    )
    spikes: bool = Field(
        False, description="replace pixels far from their 3x3 median by it, in every frame"
    )
    spike_threshold: float = Field(
        8.0, gt=0, description="a spike differs from its 3x3 median by this many robust sigmas"
    )

    @field_validator("components")
    @classmethod
    def _positive(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("keep at least one component (or None: no denoising)")
        return value


class ComputeSettings(_Section):
    """How the block pass is computed; the maps are the same either way (to float
    tolerance)."""

    kernel: Literal["fused", "numpy"] = Field(
        "fused",
        description="fused: one compiled pass per block (numba) reads each spectrum once and "
        "makes every map, wherever it covers the settings (not the optical-density model, "
        "fraction errors, PCA denoising or the self-absorption correction: there the numpy "
        "pass runs); numpy: the numpy block pass, the reference implementation",
    )


class _Products(_Section):
    """The analyses beyond the fit, each off unless ``enabled`` (see ``run_products``).

    One field per registered analysis (:mod:`~xanes_stream.pipeline.products.registry`), in
    the order they run, then ``library``.
    """

    @classmethod
    def analyses(cls) -> list[str]:
        """Names of every analysis section, in the order they run.

        Returns
        -------
        list of str
        """
        return [name for name in cls.model_fields if name != "library"]

    def enabled(self) -> list[str]:
        """Names of the enabled analyses, in the order they run.

        Returns
        -------
        list of str
        """
        return [name for name in self.analyses() if getattr(self, name).enabled]


ProductSettings = create_model(
    "ProductSettings",
    __base__=_Products,
    __module__=__name__,
    __doc__=_Products.__doc__,
    **{a.name: (a.settings, a.settings()) for a in _registered()},
    library=(
        list[str] | None,
        Field(
            None,
            description="reference library for combinatorial fitting and matching components: "
            "entry names (Tiled's library or bundled) beside the scan's references; None: those "
            "alone",
            json_schema_extra=FROM_DOCUMENTS,  # names, only ever looked up among references
        ),
    ),
)


class AnalysisSettings(_Section):
    """Everything :func:`xanes_stream.analyze` can be told."""

    normalization: NormalizationSettings = NormalizationSettings()
    registration: RegistrationSettings = RegistrationSettings()
    fit: FitSettings = FitSettings()
    features: FeatureSettings = FeatureSettings()
    mask: MaskSettings = MaskSettings()
    self_absorption: SelfAbsorptionSettings = SelfAbsorptionSettings()
    denoise: DenoiseSettings = DenoiseSettings()
    products: ProductSettings = ProductSettings()
    compute: ComputeSettings = ComputeSettings()
    block_pixels: int = Field(32_768, ge=256, description="pixels processed per block")
    max_bad_fraction: float = Field(
        0.1, ge=0, le=1, description="pixels with more non-finite values than this are invalid"
    )

    @field_validator("block_pixels")
    @classmethod
    def _multiple_of_256(cls, value: int) -> int:
        return value - value % 256


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: ``field.path: message``.

    Parameters
    ----------
    error : pydantic.ValidationError
        The error.

    Returns
    -------
    str
        The problems joined by "; ".
    """
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "settings"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def load_settings(source: AnalysisSettings | dict | str | Path | None) -> AnalysisSettings:
    """Settings from a model, a dict, a YAML file, or defaults; raises :class:`SettingsError`.

    Parameters
    ----------
    source : AnalysisSettings, dict, str, pathlib.Path or None
        The settings, a dict of them, a YAML file, or None for the defaults.

    Returns
    -------
    AnalysisSettings
    """
    if source is None:
        return AnalysisSettings()
    if isinstance(source, AnalysisSettings):
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            source = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from None
        if not isinstance(source, dict):
            raise SettingsError(f"settings file {path} must hold a mapping")
    try:
        return AnalysisSettings.model_validate(source)
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {describe_validation_error(exc)}") from None


def merge_settings(base: AnalysisSettings, update: dict) -> AnalysisSettings:
    """``base`` with ``update`` merged onto it section by section, validated.

    Parameters
    ----------
    base : AnalysisSettings
        The settings to start from (a profile's, a file's).
    update : dict
        Overrides, nested like the settings (``{"fit": {"method": "lstsq"}}``); a dict
        merges into the section it names, anything else replaces the value.

    Returns
    -------
    AnalysisSettings
        New settings; ``base`` is unchanged.

    Raises
    ------
    SettingsError
        If the merged settings do not validate; the message names the field.
    """

    def merged(into: dict, new: dict) -> dict:
        out = dict(into)
        for key, value in new.items():
            inner = out.get(key)
            both = isinstance(value, dict) and isinstance(inner, dict)
            out[key] = merged(inner, value) if both else value
        return out

    return load_settings(merged(base.model_dump(), update))


# --- what a start document may set -----------------------------------------------------------
_PLAIN = (bool, int, float, type(None))


def _plain(annotation) -> bool:
    """Whether every value of ``annotation`` is a number, a boolean, None, one of fixed
    choices (``Literal``, an enum), or a tuple or list of such: nothing that can name a file,
    a place or a type."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _plain(get_args(annotation)[0])
    if origin is Literal:
        return all(isinstance(choice, (*_PLAIN, str)) for choice in get_args(annotation))
    if origin in (Union, types.UnionType, tuple, list):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return bool(args) and all(_plain(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    return annotation in _PLAIN


def _section(annotation) -> type[BaseModel] | None:
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def refused_from_documents(
    update: dict, model: type[BaseModel] = AnalysisSettings, prefix: str = ""
) -> list[str]:
    """The fields of ``update`` a start document may not set, as dotted paths.

    A document may set analysis parameters: numbers, booleans, fixed choices and the fields
    marked :data:`~xanes_stream.pipeline.section.FROM_DOCUMENTS` (reference names). Any other
    field (a path, a type to trust, a field added later whose type is not plain) is refused,
    and so is every field marked :data:`~xanes_stream.pipeline.section.OPERATOR_ONLY`.

    Parameters
    ----------
    update : dict
        Overrides nested like the settings, as a start document carries them.
    model : type, optional
        The settings section ``update`` is for (default: all the settings).
    prefix : str, optional
        Dotted path of ``model`` within the settings, for the names returned.

    Returns
    -------
    list of str
        E.g. ``["products.ml.model_path"]``; empty when the document may set all of it.
        Names that are no field are left to validation, which names them.
    """
    refused = []
    for key, value in update.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue
        where = f"{prefix}{key}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        marked = extra.get("from_documents")
        section = _section(field.annotation)
        if marked is False:
            refused.append(where)
        elif marked is None and section is not None:
            if isinstance(value, dict):  # anything else: validation says it must be a mapping
                refused.extend(refused_from_documents(value, section, f"{where}."))
        elif marked is None and not _plain(field.annotation):
            refused.append(where)
    return refused


def merge_document_settings(base: AnalysisSettings, update: object) -> AnalysisSettings:
    """``base`` with a start document's ``md["xanes"]["settings"]`` merged onto it, if the
    document may set every field it names (:func:`refused_from_documents`).

    Parameters
    ----------
    base : AnalysisSettings
        The operator's settings (the profile's).
    update : object
        What the document carries there: a mapping nested like the settings.

    Returns
    -------
    AnalysisSettings
        New settings; ``base`` is unchanged.

    Raises
    ------
    SettingsError
        If ``update`` is not a mapping, names a field only the operator may set (the message
        names each), or does not validate.
    """
    if not isinstance(update, dict):
        raise SettingsError(f"must be a mapping of analysis settings, not {type(update).__name__}")
    refused = refused_from_documents(update)
    if refused:
        raise SettingsError(
            f"{', '.join(refused)} cannot be set from a start document: a document sets analysis "
            "parameters only (numbers, choices, switches, reference names); model files, paths "
            "and the types a model may hold are set in the beamline profile"
        )
    return merge_settings(base, update)


def settings_digest(settings: AnalysisSettings) -> str:
    """The sha256 (hex) of the canonical JSON of ``settings``: equal digests, equal analyses.

    Canonical: every field (defaults included), keys sorted, no spaces; a replay stores it in
    each result's metadata (``settings_digest``) to know a run is already done with them.
    """
    import hashlib
    import json

    text = json.dumps(settings.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
