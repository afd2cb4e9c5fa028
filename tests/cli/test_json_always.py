"""With --json, stdout is JSON whatever happens: a CLI audit found it empty on a mistake or with nothing to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_a_mistake_still_answers_json_on_stdout(cli: Any, tmp_path: Path) -> None:
    missing = cli("upload", str(tmp_path / "nowhere.ckpt"), "--json")
    assert missing.code == 2
    assert missing.json() == {"uploads": [], "error": f"{tmp_path / 'nowhere.ckpt'}: no such file or folder."}
    assert "no such file or folder" in missing.stderr, "people still read it on the terminal"

    flag = cli("upload", "--chunk-size", "abc", str(tmp_path / "x.ckpt"), "--json")
    assert flag.code == 2 and "See 'desktop-uploader upload --help'" in flag.stderr
    assert flag.json()["uploads"] == [] and "'abc' is not a size" in flag.json()["error"]


def test_nothing_to_resume_answers_an_empty_list(cli: Any) -> None:
    nothing = cli("resume", "--all", "--json")
    assert nothing.code == 0 and nothing.json() == {"uploads": []}
