/*
 * The four NVML calls CodeCarbon 3.3 makes while setting up its GPU tracker that the test fake
 * (tests/fakes/nvml/fake_nvml.c) does not answer: without them CodeCarbon drops every GPU and the
 * overhead comparison would measure a tracker that reads no GPU at all.
 *
 * This file is compiled together with the fake (it includes it), so the extra calls go through the
 * same entry path as the others (scenario refresh, lost-GPU windows, error rules, the lock) and all
 * three contenders of bench/overhead.py load one and the same library. Values are fixed: CodeCarbon
 * only records them as static details.
 */
#include "../tests/fakes/nvml/fake_nvml.c"

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

static nvmlReturn_t do_memory(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEV_ENTER("nvmlDeviceGetMemoryInfo");
    memory->total = 80ULL << 30;
    memory->used = 1ULL << 30;
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) { LOCKED(do_memory(device, memory)); }

static nvmlReturn_t do_temperature(nvmlDevice_t device, unsigned int *temp) {
    DEV_ENTER("nvmlDeviceGetTemperature");
    *temp = 45;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    (void)sensor;
    LOCKED(do_temperature(device, temp));
}

static nvmlReturn_t do_compute_mode(nvmlDevice_t device, int *mode) {
    DEV_ENTER("nvmlDeviceGetComputeMode");
    *mode = 0; /* NVML_COMPUTEMODE_DEFAULT */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, int *mode) { LOCKED(do_compute_mode(device, mode)); }

static nvmlReturn_t do_graphics(nvmlDevice_t device, unsigned int *count) {
    DEV_ENTER("nvmlDeviceGetGraphicsRunningProcesses_v3");
    *count = 0; /* no graphics contexts on a compute node */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, void *infos) {
    (void)infos;
    LOCKED(do_graphics(device, count));
}
