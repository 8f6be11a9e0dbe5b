"""Profiles: every field is read somewhere; those that were not are gone."""

import pytest

from xanes_stream.errors import SettingsError
from xanes_stream.profiles import bundled_profiles, load_profile


@pytest.mark.parametrize("name", bundled_profiles())
def test_bundled_profiles_load(name):
    assert load_profile(name).name == name


@pytest.mark.parametrize(
    "line", ["technique: txm", "description: a beamline", "dark_flat_source: start_uids"]
)
def test_fields_that_did_nothing_are_refused_by_name(tmp_path, line):
    path = tmp_path / "profile.yaml"
    path.write_text(f"name: p\nimage_key: img\nenergy_key: energy\n{line}\n")
    with pytest.raises(SettingsError, match=line.split(":")[0]):
        load_profile(path)


def test_the_bundled_profiles_are_the_documented_ones():
    import xanes_stream.profiles as profiles

    assert bundled_profiles() == ["fxi", "nanoxanes", "ptycho", "sim"]
    for name in bundled_profiles():
        assert f"``{name}``" in profiles.__doc__


def test_ptycho_uses_the_reconstruction_as_absorption():
    ptycho = load_profile("ptycho")
    assert ptycho.mode == "absorbance"  # -ln |O| is already absorption: no -ln taken
    assert ptycho.dark_flat_source == "none" and ptycho.i0_key is None
    assert (ptycho.energy_key, ptycho.energy_units) == ("energy", "keV")
    assert ptycho.image_key == "ptycho_od"
