"""The one atomic-write helper: a failed write leaves the old file whole and no temporary file behind."""

from __future__ import annotations

import os
import stat

import pytest

from workbench.io import atomic_dir, atomic_write, atomic_write_text


def test_text_is_written_whole_with_the_usual_permissions(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "été\n")
    assert path.read_bytes() == "été\n".encode()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert os.listdir(path.parent) == ["a.txt"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old", encoding="utf-8")

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, write)
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_a_failing_folder_write_keeps_the_old_folder(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "w.bin").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "w.bin").write_text("new")
            raise RuntimeError("killed mid-save")
    assert (out / "w.bin").read_text() == "old"
    assert os.listdir(tmp_path) == ["model"]
    with atomic_dir(out) as tmp:
        (tmp / "w.bin").write_text("new")
    assert (out / "w.bin").read_text() == "new"
    assert os.listdir(tmp_path) == ["model"]
