"""The optional C parts; everything else is in pyproject.toml.

- footprint.meters._fastread: the meters' per-sample counter reads and readings, all of a meter's devices in
  one call, and the cgroup walk's directory listings;
- footprint.accounting._fastledger: the ledger's counter rule, a sample's judging, power and additions, and
  the counters' exposition lines.

`optional=True`: where no C compiler or Python headers exist, the build goes on without them and the
exporter uses their pure-Python twins (same numbers, more CPU per sample: bench/README.md).
"""

from setuptools import Extension, setup

# -ffp-contract=off: the C twins must round as Python does, one operation at a time (a fused multiply-add,
# which GCC may otherwise make on CPUs that have one, rounds once for two).
FLAGS = ["-O2", "-Wall", "-Wextra", "-ffp-contract=off"]

setup(ext_modules=[
    Extension("footprint.meters._fastread", ["exporter/footprint/meters/_fastread.c"], optional=True,
              extra_compile_args=FLAGS),
    Extension("footprint.accounting._fastledger", ["exporter/footprint/accounting/_fastledger.c"], optional=True,
              extra_compile_args=FLAGS),
])
