"""Families: the real volumes that presets mimic, and the presets' ``family:`` key."""

from importlib import resources

import pytest
import yaml

from cellsynth import dataset
from cellsynth.errors import CellsynthError
from cellsynth.families import FAMILIES, family


def test_family_presets_name_their_family_and_kind():
    for name, fam in FAMILIES.items():
        preset = dataset.load_preset(name)
        assert preset["family"] == name and preset["kind"] == fam.kind
        assert fam.real_file in preset["source"]
        if fam.voxel_size is not None:  # the file records none: the preset uses the family's
            assert preset["voxel_size"] == list(fam.voxel_size)


def test_family_real_volumes_exist(shared_data):
    for fam in FAMILIES.values():
        assert (shared_data / fam.real_file).is_file()


def test_unknown_family_and_bad_family_key(tmp_path):
    with pytest.raises(CellsynthError, match="unknown family"):
        family("zebrafish")
    preset = yaml.safe_load((resources.files("cellsynth") / "presets" / "nuclei.yaml").read_text())
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**preset, "family": "two words"}))
    with pytest.raises(CellsynthError, match="family must be a name"):
        dataset.load_preset(path)
