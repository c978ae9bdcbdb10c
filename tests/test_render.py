"""`render`: golden files for three installations, a third-party dialplan checker, and safe writing.

Regenerate the golden files after an intended change with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.render import MARKER, render_all
from callbuddy_pbx.cli import main
from callbuddy_pbx.config import load_config

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "callbuddy.yaml").exists())
ASTERISKLINT = Path(sys.executable).parent / "asterisklint"


@pytest.mark.parametrize("case", CASES)
def test_rendered_files_match_the_golden_files(case: str) -> None:
    files = render_all(load_config(GOLDEN / case / "callbuddy.yaml"))
    expected_dir = GOLDEN / case / "out"
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir()
        for name, text in files.items():
            (expected_dir / name).write_text(text)
    assert sorted(files) == sorted(p.name for p in expected_dir.iterdir())
    for name, text in files.items():
        assert text == (expected_dir / name).read_text(), f"{case}/{name} differs from the golden file"


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic(case: str) -> None:
    config = load_config(GOLDEN / case / "callbuddy.yaml")
    assert render_all(config) == render_all(config)


def assert_asterisklint_passes(files: dict[str, str], folder: Path) -> None:
    """Write rendered `files` into `folder` and run the third-party dialplan checker on extensions.conf."""
    for name, text in files.items():
        (folder / name).write_text(text)
    result = subprocess.run(
        [str(ASTERISKLINT), "dialplan-check", str(folder / "extensions.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES)
def test_rendered_dialplan_passes_asterisklint(case: str, tmp_path: Path) -> None:
    assert_asterisklint_passes(render_all(load_config(GOLDEN / case / "callbuddy.yaml")), tmp_path)


def test_render_writes_files_then_reports_them_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = GOLDEN / "salon" / "callbuddy.yaml"
    out = tmp_path / "asterisk"
    assert main(["render", "--config", str(config), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    expected = len(render_all(load_config(config)))  # 7 rendered files + the shipped dialplan library
    assert first.count("written") == expected == 8
    assert (out / "callbuddy-library.conf").read_text().startswith(MARKER)
    assert stat.S_IMODE((out / "pjsip.conf").stat().st_mode) == 0o640  # it holds the SIP secrets
    assert main(["render", "--config", str(config), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("unchanged") == expected


def test_render_never_overwrites_an_installers_file_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = GOLDEN / "salon" / "callbuddy.yaml"
    (tmp_path / "pjsip.conf").write_text("; my hand-written pjsip.conf\n")
    (tmp_path / "extensions_custom.conf").write_text("[custom]\n")
    assert main(["render", "--config", str(config), "--out", str(tmp_path)]) == 1
    assert "not written by callbuddy-pbx" in capsys.readouterr().err
    assert (tmp_path / "pjsip.conf").read_text() == "; my hand-written pjsip.conf\n"
    assert not (tmp_path / "extensions.conf").exists()  # nothing is written when anything would be lost
    assert main(["render", "--config", str(config), "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "pjsip.conf").read_text().startswith(MARKER)
    assert (tmp_path / "extensions_custom.conf").read_text() == "[custom]\n"  # the installer's own: untouched
    assert "#tryinclude extensions_custom.conf" in (tmp_path / "extensions.conf").read_text()
