"""`render`: golden files for three installations, a third-party dialplan checker, and safe writing.

Regenerate the golden files after an intended change with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
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


# Renders every golden case in a fresh interpreter and prints the files as JSON (names and texts, in order).
RENDER_CASES = """
import json, sys
from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.config import load_config
json.dump({path: render_all(load_config(path)) for path in sys.argv[1:]}, sys.stdout)
"""


def test_rendering_does_not_depend_on_the_hash_seed() -> None:
    # Set and frozenset order follows the per-process string hash: only separate interpreters with different
    # PYTHONHASHSEED values show an order that leans on it (one process agrees with itself). Three seeds make a
    # lucky tie, where a set of a few names comes out in the same order under each, unlikely.
    configs = [str(GOLDEN / case / "callbuddy.yaml") for case in CASES]
    runs = {
        seed: subprocess.Popen(
            [sys.executable, "-c", RENDER_CASES, *configs],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ | {"PYTHONHASHSEED": seed},
            cwd=GOLDEN.parent.parent,
        )
        for seed in ("0", "1", "2")
    }
    rendered = {}
    for seed, run in runs.items():
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err.decode()
        rendered[seed] = out
    first = json.loads(rendered["0"])
    assert first.keys() == set(configs)
    for seed in ("1", "2"):
        other = json.loads(rendered[seed])
        differing = [
            f"{Path(config).parent.name}/{name}"
            for config in configs
            for name in sorted(first[config].keys() | other[config].keys())
            if first[config].get(name) != other[config].get(name)
        ]
        assert differing == [], f"PYTHONHASHSEED={seed} renders these files otherwise than PYTHONHASHSEED=0"
        assert rendered[seed] == rendered["0"], f"PYTHONHASHSEED={seed}: the same files in another order"


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
    expected = len(render_all(load_config(config)))  # 10 rendered files + the shipped dialplan library
    assert first.count("written") == expected == 11
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
