"""Whether this machine can build the optional C parts (setup.py): a C compiler and Python's headers."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path


def can_build() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None and (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()
