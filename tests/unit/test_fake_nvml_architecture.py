"""The fake NVML's nvmlDeviceGetArchitecture through the real pynvml: what peers gate the energy counter on.

Zeus reads nvmlDeviceGetTotalEnergyConsumption only where the architecture is VOLTA or newer (its
NVIDIAGPU.supportsGetTotalEnergyConsumption); the bench runs Zeus on the fake, so the call must answer
as the real one does (nvmlDeviceArchitecture_t, per GPU) and fail through the same error rules.
"""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from tests.fakes.nvml import NOT_SUPPORTED, SCENARIO_ENV, FakeError, FakeGpu, preload, write_scenario


@pytest.fixture(autouse=True)
def _nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preload()
    monkeypatch.setenv(SCENARIO_ENV, str(tmp_path / "scenario"))


def test_architecture_per_gpu_default_hopper_and_error_rules(tmp_path: Path) -> None:
    write_scenario(tmp_path / "scenario", [
        FakeGpu(),
        FakeGpu(name="Tesla V100-SXM2-16GB", architecture=pynvml.NVML_DEVICE_ARCH_VOLTA),
        FakeGpu(name="Tesla P100-PCIE-16GB", architecture=pynvml.NVML_DEVICE_ARCH_PASCAL),
        FakeGpu(errors=[FakeError("nvmlDeviceGetArchitecture", NOT_SUPPORTED)]),
    ])
    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(4)]
        got = [pynvml.nvmlDeviceGetArchitecture(h) for h in handles[:3]]
        assert got == [pynvml.NVML_DEVICE_ARCH_HOPPER, pynvml.NVML_DEVICE_ARCH_VOLTA, pynvml.NVML_DEVICE_ARCH_PASCAL]
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetArchitecture(handles[3])
    finally:
        pynvml.nvmlShutdown()
