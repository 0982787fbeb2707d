"""The Hydra configs go into the package: the build copies the repository's conf/ into lrsflows/conf.

conf/ stays the one copy the repository holds; pyproject.toml has all other metadata. An editable install
copies nothing: lrsflows.cli then finds conf/ beside src/ (see cli.CONFIG_DIR).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONF = ROOT / "conf"
PACKAGED = Path("lrsflows") / "conf"


class BuildPyWithConfigs(build_py):
    """build_py, then conf/**/*.yaml copied to <build_lib>/lrsflows/conf/ (so every wheel holds the configs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not CONF.is_dir():
            raise FileNotFoundError(f"{CONF} not found: the Hydra configs must be in the source tree to build lrsflows")
        for source in self._configs():
            target = Path(self.build_lib) / PACKAGED / source.relative_to(CONF)
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        packaged = [str(Path(self.build_lib) / PACKAGED / path.relative_to(CONF)) for path in self._configs()]
        return super().get_outputs(include_bytecode) + ([] if getattr(self, "editable_mode", False) else packaged)

    @staticmethod
    def _configs() -> list[Path]:
        return sorted(CONF.rglob("*.yaml")) if CONF.is_dir() else []


setup(cmdclass={"build_py": BuildPyWithConfigs})
