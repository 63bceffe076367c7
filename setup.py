"""Build hook: the shipped model goes into the wheel as ``limbseg/models_data/limbseg-default/``.

Everything else (metadata, packages, the GUI's static files) is configured in pyproject.toml. The model
lives outside the package, in ``models/limbseg-default/`` (where training writes it), so ``build_py``
copies every file of that folder into the built package; ``limbseg.models.bundle.default_bundle_path``
finds it there. An editable install needs no copy: it reads the checkout's folder.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL_DIR = Path("models") / "limbseg-default"
PACKAGED = ("limbseg", "models_data", "limbseg-default")


class BuildPyWithModel(build_py):
    """``build_py`` plus the files of ``models/limbseg-default`` (all of them, whatever a bundle holds)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        files = sorted(p for p in MODEL_DIR.glob("*") if p.is_file())
        if not any(p.name == "model.json" for p in files):
            raise SystemExit(f"setup.py: the shipped model is missing ({MODEL_DIR}/model.json)")
        target = Path(self.build_lib).joinpath(*PACKAGED)
        self.mkpath(str(target))
        for path in files:
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildPyWithModel})
