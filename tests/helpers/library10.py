"""A 10-entry Ni K-edge library for tests: the real measured references plus variants of them."""

from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.library import variant
from xanes_stream.spectra.references import unit_step

#: Cu K edge (8980.5 eV) moved onto the Ni K edge (8331.5 eV): a real, different edge shape.
CU_TO_NI = 8331.5 - 8980.5


def library10():
    """NiO, LiNiO2 and Ni metal (measured) plus 7 confusers: the same spectra shifted by 2-3 eV
    or broadened by 1.5 eV, and the measured Cu metal edge moved onto the Ni edge."""
    nio, linio2, ni, cu = (bundled_reference(n) for n in ("NiO", "LiNiO2", "Ni", "Cu"))
    return [
        unit_step(nio),
        unit_step(linio2),
        unit_step(ni),
        variant(cu, "Cu@Ni", shift=CU_TO_NI),
        variant(nio, "NiO+2eV", shift=2.0),
        variant(linio2, "LiNiO2-2eV", shift=-2.0),
        variant(ni, "Ni+3eV", shift=3.0),
        variant(nio, "NiO~1.5eV", broaden=1.5),
        variant(linio2, "LiNiO2~1.5eV", broaden=1.5),
        variant(ni, "Ni~1.5eV", broaden=1.5),
    ]
