"""A function whose environment is another bundle's extended with six, declared at module level (the test
sets CONDA_BASE_REF before importing this; inside the worker the declaration is a no-op)."""

from __future__ import annotations

import os

import satchel

ENV = satchel.Environment.of(os.environ.get("CONDA_BASE_REF", "")).extend(pypi=["six==1.17.0"])


@satchel.function(environment=ENV)
def versions() -> dict[str, str]:
    import humanize
    import six

    return {"humanize": humanize.__version__, "six": six.__version__}
