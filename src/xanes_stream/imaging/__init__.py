"""The numeric core in space: the correction of raw frames (dark, flat, I0, -ln), frame
registration (phase correlation, StackReg) and particle segmentation. Arrays in, arrays out; it
imports only numpy, scipy, scikit-image, pystackreg, :mod:`xanes_stream.spectra` and
:mod:`xanes_stream.errors`. Names are loaded lazily."""

from importlib import import_module

#: public name -> the module (of this part) that defines it
_LAZY = {
    "MODES": "correct",
    "correct": "correct",
    "label_particles": "particles",
    "particle_table": "particles",
    "FrameRegistrar": "registration",
    "PhaseCorrelator": "registration",
    "RegisteredFrame": "registration",
    "bilinear_noise": "shift",
    "register_stack": "registration",
    "shift_frame": "shift",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
