"""The optional C reader (footprint.meters._fastread); everything else is in pyproject.toml.

`optional=True`: where no C compiler or Python headers exist, the build goes on without it and the
meters use their pure-Python reads (same readings, more CPU per sample: bench/README.md).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("footprint.meters._fastread", ["exporter/footprint/meters/_fastread.c"],
                             optional=True, extra_compile_args=["-O2", "-Wall", "-Wextra"])])
