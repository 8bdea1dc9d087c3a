"""The folder lock: exclusive while held, free again afterwards."""

import pytest

from cellsynth.errors import CellsynthError
from cellsynth.locking import folder_lock


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    with folder_lock(tmp_path, "busy: wait"):
        with pytest.raises(CellsynthError, match="busy: wait"), folder_lock(tmp_path, "busy: wait"):
            pass
    with folder_lock(tmp_path, "busy"):  # released
        pass


def test_an_unwritable_folder_is_a_user_error(tmp_path):
    with pytest.raises(CellsynthError, match="cannot write"), folder_lock(tmp_path / "missing", "busy"):
        pass
