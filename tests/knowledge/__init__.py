# Without a tests/__init__.py, pytest's default (prepend) import mode imports
# this folder as the top-level package ``knowledge``, shadowing the real one.
# Adding the real package's folder to this package's search path lets
# ``from knowledge.engine import ...`` resolve either way. Harmless (and
# skipped) once tests/ is itself a package.
from pathlib import Path as _Path

if __name__ == "knowledge":
    __path__.append(str(_Path(__file__).resolve().parents[2] / "knowledge"))
