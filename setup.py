"""Build hook only (metadata lives in pyproject.toml): ship the top-level `models/` folder (catalog and
embedded model) inside the wheel as `workbench/shipped_models`, where `workbench.paths` looks for it."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithModels(build_py):
    def run(self):
        super().run()
        shutil.copytree(Path(__file__).resolve().parent / "models",
                        Path(self.build_lib) / "workbench" / "shipped_models", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithModels})
