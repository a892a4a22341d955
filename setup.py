"""Build hooks only (the project is described in pyproject.toml).

`build_py` also compiles the shared-memory ring, `native/satchelring.c`, with the system C compiler
(`$CC`, else `cc`) into a plain shared library shipped in the package,
`satchel/bindings/_native/libsatchelring.so`, and ships the C source beside it (`_native/src/`) so a
worker can rebuild it if it must. No Python C-API: one library serves every Python version. An editable
install builds the library in place (`bindings/_native/`, ignored by git). Without a C compiler the
install still succeeds (with a warning) and Satchel uses the pipe transport; set SATCHEL_REQUIRE_NATIVE=1
to make that an error. The wheel is tagged py3-none-<platform>: it holds native code, not an extension.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.command.sdist import sdist as _sdist

try:  # setuptools >= 70.1 carries bdist_wheel itself
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # pragma: no cover - older setuptools with the wheel package
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

ROOT = Path(__file__).resolve().parent
NATIVE = ROOT / "native"


def _native_loader():
    """bindings/_native/__init__.py (standard library only), loaded by path: one compile recipe."""
    path = ROOT / "bindings" / "_native" / "__init__.py"
    spec = importlib.util.spec_from_file_location("_satchel_native_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class build_py(_build_py):
    def run(self) -> None:
        super().run()
        native = _native_loader()
        if getattr(self, "editable_mode", False):
            target = ROOT / "bindings" / "_native"
        else:
            target = Path(self.build_lib) / "satchel" / "bindings" / "_native"
            (target / "src").mkdir(parents=True, exist_ok=True)
            for name in native.SOURCES:
                shutil.copyfile(NATIVE / name, target / "src" / name)
        library = target / native.LIBRARY_NAME
        try:
            native.compile_library(NATIVE, library)
        except native.NativeUnavailable as exc:
            if os.environ.get("SATCHEL_REQUIRE_NATIVE"):
                raise
            self.warn(f"the shared-memory ring was not built ({exc}); Satchel will use the pipe transport")
            return
        self.announce(f"built {library}", level=2)


class sdist(_sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        for path in sorted(NATIVE.iterdir()):
            if path.suffix in (".c", ".h", ".md"):
                (Path(base_dir) / "native").mkdir(exist_ok=True)
                shutil.copyfile(path, Path(base_dir) / "native" / path.name)


class bdist_wheel(_bdist_wheel):
    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(
    cmdclass={"build_py": build_py, "sdist": sdist, "bdist_wheel": bdist_wheel},
    distclass=BinaryDistribution,
)
