"""Copies the trunk templates and the dialplan library into the package when a wheel is built (see shipped.py).

Everything else about the build is in pyproject.toml; the folders stay at the repository's top level so that a
checkout and an editable install find them there.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED_FOLDERS = ("sip_trunks", "dialplans")  # the same as callbuddy_pbx.shipped.SHIPPED_FOLDERS


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads them from the checkout
            return
        for folder in SHIPPED_FOLDERS:
            source = HERE / folder
            if not source.is_dir():
                raise SystemExit(f"cannot build: the folder {folder}/ is missing from {HERE}")
            self.copy_tree(str(source), str(Path(self.build_lib) / "callbuddy_pbx" / "_shipped" / folder))


setup(cmdclass={"build_py": BuildWithShippedFiles})
