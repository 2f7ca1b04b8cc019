"""The freedesktop trash as mlrepo writes it (the spec, no private send2trash API): which trash, and .trashinfo."""

import os
from pathlib import Path

from mlrepo.commands.operations.trash import original_path, trash_info, volume_trash


def test_volume_trash_is_the_admins_sticky_folder_else_the_users_own(tmp_path: Path):
    uid = str(os.getuid())
    assert volume_trash(str(tmp_path)) == str(tmp_path / f".Trash-{uid}")
    shared = tmp_path / ".Trash"
    shared.mkdir()
    assert volume_trash(str(tmp_path)) == str(tmp_path / f".Trash-{uid}"), "no sticky bit: not the admin's trash"
    shared.chmod(0o1777)
    assert volume_trash(str(tmp_path)) == str(shared / uid)
    shared.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o1777)
    elsewhere.chmod(0o1777)
    shared.symlink_to(elsewhere)
    assert volume_trash(str(tmp_path)) == str(tmp_path / f".Trash-{uid}"), "a symlinked .Trash is never used"


def test_trashinfo_path_round_trips_odd_names(tmp_path: Path):
    trash = tmp_path / ".Trash-0"
    (trash / "info").mkdir(parents=True)
    for name in ("plain", "with space", "100% sure", "naïve", os.fsdecode(b"bad\xffbyte"), "line\nbreak"):
        model = tmp_path / "repo" / name
        info = trash / "info" / "x.trashinfo"
        text = trash_info(str(model), str(tmp_path))
        assert text.startswith("[Trash Info]\nPath=") and "\nDeletionDate=" in text
        assert "\n" not in text.split("Path=")[1].split("\nDeletionDate")[0], "the path is URL-encoded on one line"
        info.write_text(text)
        assert original_path(str(info), str(tmp_path)) == str(model)
        outside = trash_info("/elsewhere/" + name, str(tmp_path))
        info.write_text(outside)
        assert original_path(str(info), str(tmp_path)) == "/elsewhere/" + name
