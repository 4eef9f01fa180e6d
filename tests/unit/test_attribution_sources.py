"""Where attribution's facts come from: pod-resources gRPC, the API server, cgroup trees, /proc, pod labels."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from unittest import mock
from urllib.error import HTTPError

import pytest
from footprint.attribution import apiserver, cgroups
from footprint.attribution.apiserver import ApiServerClient, Skip, parse_pod, parse_pods
from footprint.attribution.podresources import (
    ContainerDevices,
    ContainerResources,
    PodResources,
    PodResourcesClient,
    decode_list_response,
    gpu_uuid,
)
from footprint.attribution.processes import UNREADABLE, read_stat
from footprint.attribution.workload import classify_pod
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.cgroupfs import CgroupTree, FakeProcfs, container_id
from tests.fakes.kube_apiserver import make_pod, running_apiserver
from tests.fakes.podresources_server import (
    FakeContainer,
    FakePodResources,
    FakePodResourcesServer,
    encode_response,
)

LABEL = "footprint.dev/workload"




# --- pod-resources ---------------------------------------------------------------------------------


def test_wire_format_matches_protobuf_bytes() -> None:
    """Golden bytes from the protobuf library itself (messages built from api.proto's field numbers)."""
    golden = bytes.fromhex(
        "0a 2a 0a 01 70 12 02 6e 73 1a 21 0a 01 63 12 18 0a 0e 6e 76 69 64 69 61 2e 63 6f 6d 2f 67 70 75"
        " 12 06 47 50 55 2d 61 31 1a 02 02 03"
    )
    pods = [FakePodResources("p", "ns", [FakeContainer("c", [("nvidia.com/gpu", ["GPU-a1"])], [2, 3])])]
    assert encode_response(pods) == golden
    assert decode_list_response(golden).pods == [
        PodResources("p", "ns", (ContainerResources("c", (ContainerDevices("nvidia.com/gpu", ("GPU-a1",)),)),))
    ]
    negative = bytes.fromhex("0a 19 0a 01 78 12 01 79 1a 11 0a 01 7a 1a 0c ff ff ff ff ff ff ff ff ff 01 ac 02")
    assert encode_response([FakePodResources("x", "y", [FakeContainer("z", [], [-1, 300])])]) == negative
    assert decode_list_response(negative).pods[0].containers == (ContainerResources("z"),)  # cpu_ids skipped


def test_decoder_skips_unknown_fields_and_unpacked_cpu_ids() -> None:
    # ContainerResources with cpu_ids unpacked (3: varint 7), a memory field (4) and a fixed64 field (9).
    container = b"\x0a\x01c" + b"\x18\x07" + b"\x22\x03\x0a\x01m" + b"\x49" + b"\x00" * 8
    pod = b"\x0a\x01p\x12\x02ns" + b"\x1a" + bytes([len(container)]) + container + b"\x28\x01"
    got = decode_list_response(b"\x0a" + bytes([len(pod)]) + pod).pods
    assert got == [PodResources("p", "ns", (ContainerResources("c"),))]


def test_time_slicing_replicas_name_their_gpu() -> None:
    assert gpu_uuid("GPU-8f3c::3") == "GPU-8f3c"
    assert gpu_uuid("GPU-8f3c") == "GPU-8f3c"


def test_list_over_a_real_grpc_unix_socket_and_recovery(socket_dir: Path) -> None:
    sock = socket_dir / "kubelet.sock"
    client = PodResourcesClient(str(sock), timeout=5)
    with pytest.raises(FileNotFoundError):
        client.list()
    pods = [FakePodResources("train-0", "ml", [FakeContainer("trainer", [("nvidia.com/gpu", ["GPU-1", "GPU-2"])])])]
    server = FakePodResourcesServer(sock, pods).start()
    try:
        got = client.list().pods
        assert got[0].name == "train-0" and got[0].containers[0].devices[0].device_ids == ("GPU-1", "GPU-2")
        server.stop()
        with pytest.raises(FileNotFoundError):
            client.list()
        server.set_pods([])
        server.start()  # kubelet restarted: the next call works, no reconnect backoff
        assert client.list().pods == []
    finally:
        server.stop()
        client.close()


# --- API server ------------------------------------------------------------------------------------


def test_lists_this_nodes_pods_with_token_field_selector_and_pages(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    pods = [make_pod(f"p{i}", node="node-1") for i in range(7)] + [make_pod("elsewhere", node="node-2")]
    with running_apiserver("s3cret", pods) as api:
        client = ApiServerClient(api.url, "node-1", str(token), "", page_size=3)
        got, skipped = parse_pods(client.list_pods(), LABEL)
        assert sorted(p.name for p in got) == [f"p{i}" for i in range(7)] and not skipped
        assert len(api.requests) == 3 and all("fieldSelector=spec.nodeName%3Dnode-1" in r for r in api.requests)
        token.write_text("rotated")  # projected tokens rotate: re-read on every list
        with pytest.raises(HTTPError) as err:
            client.list_pods()
        assert err.value.code == 401


def test_a_pod_list_page_larger_than_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API server (or something posing as one) that answers without end cannot fill the node's memory."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    with running_apiserver("s3cret", [make_pod(f"p{i}", node="node-1") for i in range(3)]) as api:
        client = ApiServerClient(api.url, "node-1", str(token), "", page_size=3)
        size = len(json.dumps({"items": client.list_pods()}))  # the page, about this many bytes
        monkeypatch.setattr(apiserver, "MAX_PAGE_BYTES", size // 2)
        with pytest.raises(ValueError, match="a PodList page is larger than"):
            client.list_pods()


def test_pod_fields_and_container_ids_of_every_runtime() -> None:
    pod = make_pod("web", "shop", containers=[("app", "nginx", "a" * 64), ("side", "envoy", "")], runtime="cri-o")
    pod["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"containerID": "cri-o://" + "b" * 64}}
    info = parse_pod(pod, LABEL)
    assert (info.namespace, info.name, info.phase, info.active) == ("shop", "web", "Running", True)
    assert info.containers == ("app", "side")
    assert info.container_ids == (("a" * 64, "app"), ("b" * 64, "app"))
    assert not parse_pod(make_pod("job", phase="Succeeded"), LABEL).active
    with pytest.raises(Skip, match="missing_name"):
        parse_pod({"metadata": {}}, LABEL)


# --- workload kind ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "owners", "image", "kind"),
    [
        ({LABEL: "Training"}, [], "busybox", "training"),
        ({LABEL: "inference"}, [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"}], "x", "inference"),
        ({LABEL: "batch"}, [], "vllm/vllm-openai:v0.6.0", "unknown"),  # the label decides, even when odd
        ({}, [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "bert"}], "pytorch", "training"),
        ({}, [{"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob"}], "horovod", "training"),
        ({}, [{"apiVersion": "batch/v1", "kind": "Job"}], "pytorch", "unknown"),
        ({"training.kubeflow.org/job-name": "bert"}, [], "pytorch", "training"),
        ({"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}, [], "pytorch", "training"),
        ({"serving.kserve.io/inferenceservice": "sklearn-iris"}, [], "kserve/sklearnserver", "inference"),
        ({}, [], "vllm/vllm-openai:latest", "inference"),
        ({}, [], "nvcr.io/nvidia/tritonserver:24.01-py3", "inference"),
        ({}, [], "ghcr.io/huggingface/text-generation-inference:2.0", "inference"),
        ({}, [], "registry.local:5000/mirror/vllm@sha256:abc", "inference"),
        ({"app.kubernetes.io/name": "triton"}, [], "internal/server:1", "inference"),
        ({"app": "vllm"}, [], "internal/server:1", "inference"),
        ({}, [], "postgres:16", "unknown"),
        ({}, [], "vllm-benchmark-client:1", "unknown"),
    ],
)
def test_workload_kind(labels: dict[str, str], owners: list[dict[str, str]], image: str, kind: str) -> None:
    pod = make_pod("p", labels=labels, owners=owners, containers=[("c", image, "")])
    assert classify_pod(pod, LABEL) == kind


def test_workload_label_key_is_configurable() -> None:
    pod = make_pod("p", labels={"team.example/kind": "training"}, containers=[("c", "vllm/vllm-openai", "")])
    assert classify_pod(pod, "team.example/kind") == "training"
    assert classify_pod(pod, LABEL) == "inference"


# --- cgroups and procfs ----------------------------------------------------------------------------


@pytest.mark.parametrize(("driver", "runtime"), [("systemd", "containerd"), ("systemd", "crio"),
                                                 ("systemd", "docker"), ("cgroupfs", "containerd")])
def test_scan_finds_containers_of_every_layout(tmp_path: Path, driver: str, runtime: str) -> None:
    tree = CgroupTree(tmp_path, driver)
    uids = [f"{n}c1e9a0b-5d2f-4a8e-9b7c-0123456789ab" for n in range(3)]
    paths = {
        container_id(1): tree.add_container(uids[0], container_id(1), runtime, "burstable", usage_usec=5),
        container_id(2): tree.add_container(uids[0], container_id(2), runtime, "burstable"),
        container_id(3): tree.add_container(uids[1], container_id(3), runtime, "guaranteed"),
        container_id(4): tree.add_container(uids[2], container_id(4), runtime, "besteffort"),
    }
    found = cgroups.scan_containers(str(tmp_path))
    assert found == {cid: str(path) for cid, path in paths.items()}  # crio-conmon scopes are not containers
    assert cgroups.cpu_usage_usec(found[container_id(1)]) == 5
    tree.remove_container(container_id(1))
    assert cgroups.cpu_usage_usec(str(paths[container_id(1)])) is None


def test_no_kubepods_hierarchy_is_not_an_empty_node(tmp_path: Path) -> None:
    assert cgroups.scan_containers(str(tmp_path)) is None
    CgroupTree(tmp_path)
    assert cgroups.scan_containers(str(tmp_path)) == {}


@pytest.mark.parametrize(
    ("path", "cid"),
    [
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/cri-containerd-{id}.scope", True),
        ("/../../kubepods.slice/kubepods-pod1.slice/crio-{id}.scope/init.scope", True),  # another cgroup namespace
        ("/kubepods/besteffort/pod3c1e9a0b-5d2f-4a8e-9b7c-0123456789ab/{id}", True),
        ("/system.slice/docker-{id}.scope", True),
        ("/user.slice/user-0.slice/session-1.scope", False),
        ("/{id}", False),  # a bare id not under a pod is not a container cgroup
    ],
)
def test_container_of_a_process(tmp_path: Path, path: str, cid: bool) -> None:
    proc = FakeProcfs(tmp_path)
    proc.add_process(42, cgroup=path.format(id=container_id(9)))
    components = cgroups.process_cgroup(str(tmp_path), 42)
    assert components is not None
    assert cgroups.container_id_of(components) == (container_id(9) if cid else None)
    assert cgroups.process_cgroup(str(tmp_path), 43) is None


def test_online_cpus_from_proc_stat(tmp_path: Path) -> None:
    FakeProcfs(tmp_path, cpus=12)
    assert cgroups.online_cpus(str(tmp_path)) == 12
    assert cgroups.online_cpus(str(tmp_path / "missing")) >= 1


def test_slurm_job_from_cgroup_path() -> None:
    assert cgroups.slurm_job_of(["system.slice", "slurmstepd.scope", "job_4711", "step_0", "task_0"]) == "4711"
    assert cgroups.slurm_job_of(["user.slice"]) is None


def test_scan_finds_containers_of_a_nested_kubelet(tmp_path: Path) -> None:
    """kind: kubelet runs inside a container and its pods sit under kubelet.slice."""
    pod = (tmp_path / "kubelet.slice" / "kubelet-kubepods.slice" / "kubelet-kubepods-besteffort.slice"
           / "kubelet-kubepods-besteffort-pod3c1e9a0b_5d2f_4a8e_9b7c_0123456789ab.slice")
    scope = pod / f"cri-containerd-{container_id(5)}.scope"
    scope.mkdir(parents=True)
    assert cgroups.scan_containers(str(tmp_path)) == {container_id(5): str(scope)}
    assert cgroups.container_id_of([*pod.relative_to(tmp_path).parts, scope.name]) == container_id(5)


def _pod_uid(n: int) -> str:
    return f"{n:08d}-0000-0000-0000-000000000000"  # a pod uid, 36 characters


def test_a_pod_directory_is_listed_again_only_when_its_link_count_moves_or_it_is_forgotten(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    a, b, c = (str(tree.add_container(_pod_uid(1), container_id(n))) for n in (1, 2, 3))
    scan = cgroups.ContainerScan(str(tmp_path))
    assert scan.scan() == {container_id(1): a, container_id(2): b, container_id(3): c}
    d = str(tree.add_container(_pod_uid(1), container_id(4)))  # one more subdirectory: listed again
    assert scan.scan() == {container_id(1): a, container_id(2): b, container_id(3): c, container_id(4): d}
    tree.remove_container(container_id(2))
    assert container_id(2) not in (scan.scan() or {})
    # A restart in one pass: one container gone, one made, the count as it was. The scan still tells
    # the old one (as remembered) until the caller finds it gone and forgets it.
    tree.remove_container(container_id(3))
    e = str(tree.add_container(_pod_uid(1), container_id(5)))
    assert scan.scan() == {container_id(1): a, container_id(3): c, container_id(4): d}
    scan.forget(c)
    assert scan.scan() == {container_id(1): a, container_id(4): d, container_id(5): e}
    assert scan.scan(full=True) == cgroups.scan_containers(str(tmp_path))


def test_every_few_scans_lists_every_pod_directory(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.add_container(_pod_uid(1), container_id(1))
    scan = cgroups.ContainerScan(str(tmp_path))
    scan.scan()
    tree.remove_container(container_id(1))
    new = str(tree.add_container(_pod_uid(1), container_id(2)))  # unseen: the count stands
    seen = [container_id(2) in (scan.scan() or {}) for _ in range(cgroups.ContainerScan.FULL_SCAN_EVERY)]
    assert seen == [False] * (cgroups.ContainerScan.FULL_SCAN_EVERY - 2) + [True, True]
    assert scan.scan() == {container_id(2): new}


@settings(max_examples=25)  # each example makes a cgroup tree of ~60 files a directory
@given(steps=st.lists(st.tuples(st.sampled_from(["add", "remove", "swap"]), st.integers(0, 3), st.integers(1, 12)),
                      max_size=10))
def test_a_scan_after_forgetting_what_vanished_finds_what_a_full_scan_finds(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int]]) -> None:
    """The attributor's use: scan, forget each reported container whose directory is gone (its read
    fails), scan again; that second scan equals a walk of every directory, whatever was made and removed."""
    root = tmp_path_factory.mktemp("cg")
    tree = CgroupTree(root)
    scan = cgroups.ContainerScan(str(root))
    pods: dict[int, set[int]] = {}
    for op, pod, n in steps:
        cid = pod * 100 + n
        here = pods.setdefault(pod, set())
        if op in ("remove", "swap") and here:
            gone = min(here)
            tree.remove_container(container_id(gone))
            here.discard(gone)
        if op in ("add", "swap") and cid not in here:
            tree.add_container(_pod_uid(pod), container_id(cid), qos=("burstable", "guaranteed")[pod % 2])
            here.add(cid)
        for path in (scan.scan() or {}).values():
            if not os.path.isdir(path):
                scan.forget(path)
        assert scan.scan() == cgroups.scan_containers(str(root))


def _writable_kernel_cgroup() -> Path | None:
    """A cgroup directory of a kernel's cgroup filesystem (v2 or v1) this process may make children in."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] in ("cgroup2", "cgroup"):
            mount = Path(line.split()[4])
            if os.access(mount, os.W_OK):
                return mount
    return None


def test_a_kernel_cgroup_directorys_link_count_follows_its_children() -> None:
    """What ContainerScan rests on, on this machine's kernel (no fake): kernfs gives a cgroup directory
    st_nlink = 2 + its subdirectories, so making or removing a child cgroup changes it."""
    mount = _writable_kernel_cgroup()
    if mount is None:
        pytest.skip("no kernel cgroup hierarchy this process may write here")
    try:
        parent = Path(tempfile.mkdtemp(prefix="footprint-nlink-", dir=mount))  # a cgroup: its own interface files
    except OSError as exc:  # writable by its mode, refused by the kernel (a delegated or read-only hierarchy)
        pytest.skip(f"cannot make a cgroup under {mount}: {exc}")
    try:
        counts = [parent.stat().st_nlink]
        (parent / "a").mkdir()
        counts.append(parent.stat().st_nlink)
        (parent / "b").mkdir()
        counts.append(parent.stat().st_nlink)
        (parent / "a").rmdir()
        counts.append(parent.stat().st_nlink)
        assert counts == [2, 3, 4, 3]
    finally:
        for child in ("a", "b"):
            if (parent / child).exists():
                (parent / child).rmdir()
        parent.rmdir()


# --- the counter files' parsers, on anything ------------------------------------------------------


@given(before=st.binary(max_size=40), number=st.integers(min_value=0, max_value=10**19), after=st.binary(max_size=40))
def test_cpu_stat_usage_is_the_number_or_nothing(tmp_path_factory: pytest.TempPathFactory, before: bytes,
                                                number: int, after: bytes) -> None:
    """Whatever cpu.stat holds, `usage_usec` is a plain decimal that ended its line, or None."""
    d = tmp_path_factory.mktemp("cg")
    (d / "cpu.stat").write_bytes(b"usage_usec " + str(number).encode() + b"\n" + after)
    assert cgroups.cpu_usage_usec(str(d)) == number
    (d / "cpu.stat").write_bytes(before + after)
    got = cgroups.cpu_usage_usec(str(d))
    assert got is None or (isinstance(got, int) and got >= 0)


@given(texts=st.lists(st.lists(st.binary(max_size=60) | st.integers(0, 10**19).map(
    lambda n: b"usage_usec %d\nuser_usec 1\n" % n), min_size=3, max_size=3), min_size=1, max_size=4),
       budget=st.integers(0, 3))
@pytest.mark.parametrize("c_reader", [True, False])
def test_kept_cpu_stat_files_read_what_opening_them_reads(
        tmp_path_factory: pytest.TempPathFactory, texts: list[list[bytes]], budget: int, c_reader: bool) -> None:
    """Kept open and read again at offset 0 (or, past the budget, opened for the read), each pass gives
    what a fresh open gives, whatever the file holds and however it changed since (rewritten in place,
    as a kernel's cgroup file is the same file for the cgroup's life); through the C reader's
    `read_field` where it is built, and through the Python path."""
    if c_reader and cgroups._fastread is None:
        pytest.skip("the C reader is not built here")
    with mock.patch.object(cgroups, "_fastread", cgroups._fastread if c_reader else None):
        _kept_files_read_as_opened(tmp_path_factory, texts, budget)


def _kept_files_read_as_opened(tmp_path_factory: pytest.TempPathFactory, texts: list[list[bytes]],
                               budget: int) -> None:
    root = tmp_path_factory.mktemp("cg")
    dirs = [root / str(i) for i in range(3)]
    for d in dirs:
        d.mkdir()
        (d / "cpu.stat").write_bytes(b"")
    files = cgroups.CpuStatFiles(max_open=budget)
    try:
        for contents in texts:
            for d, text in zip(dirs, contents, strict=True):
                fd = os.open(d / "cpu.stat", os.O_WRONLY)
                os.pwrite(fd, text, 0)
                os.ftruncate(fd, len(text))
                os.close(fd)
            assert files.read([str(d) for d in dirs]) == [cgroups.cpu_usage_usec(str(d)) for d in dirs]
            assert len(files._fds) == min(budget, 3)
    finally:
        files.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_kept_cpu_stat_files_close_with_their_cgroups(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    for n in (1, 2, 3):
        tree.add_container("0000000-0000-0000-0000-00000000000" + str(n), container_id(n), "containerd", "burstable",
                           usage_usec=10 * n)
    files = cgroups.CpuStatFiles(max_open=100)
    before = _open_fds()
    found = cgroups.scan_containers(str(tmp_path))
    assert found is not None
    assert files.read([found[container_id(n)] for n in (1, 2, 3)]) == [10, 20, 30]
    assert _open_fds() == before + 3
    tree.advance(container_id(1), 5)  # seen through the kept descriptor
    tree.remove_container(container_id(2))
    found = cgroups.scan_containers(str(tmp_path))
    assert found is not None
    assert files.read([found[container_id(1)], found[container_id(3)]]) == [15, 30]
    assert _open_fds() == before + 2  # the removed container's closed
    files.close()
    assert _open_fds() == before


def _cgroup2_cpu_stat() -> Path | None:
    """This process's cgroup v2 cpu.stat, where a cgroup2 hierarchy is mounted."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = next(line[3:].strip() for line in Path("/proc/self/cgroup").read_text().splitlines()
                   if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    for line in mounts:
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].startswith("cgroup2 "):
            path = Path(line.split()[4] + own) / "cpu.stat"
            if path.exists():
                return path
    return None


def test_a_kept_kernel_cgroup_file_gives_its_current_value() -> None:
    """The assumption CpuStatFiles rests on, on this machine's kernel: a cgroup v2 cpu.stat kept open and
    read again at offset 0 shows CPU time used since (no fake: the real file, where one is mounted)."""
    stat = _cgroup2_cpu_stat()
    if stat is None:
        pytest.skip("no cgroup v2 hierarchy mounted here")
    files = cgroups.CpuStatFiles(max_open=1)
    try:
        (first,) = files.read([str(stat.parent)])
        assert first is not None and len(files._fds) == 1
        spent = 0
        while spent < 3:  # CPU time this process's cgroup is charged with: ~30 ms of work
            spent += sum(range(2_000_000)) > 0
        (second,) = files.read([str(stat.parent)])
        assert second is not None and second > first
    finally:
        files.close()


@given(text=st.text(max_size=120))
def test_proc_stat_of_anything_is_a_process_unreadable_or_none(tmp_path_factory: pytest.TempPathFactory,
                                                               text: str) -> None:
    proc = tmp_path_factory.mktemp("proc")
    (proc / "7").mkdir()
    (proc / "7" / "stat").write_text(text, encoding="utf-8", errors="surrogateescape")
    got = read_stat(str(proc), 7)
    assert got is None or got == UNREADABLE or (isinstance(got, tuple) and got[1] >= 0 and got[2] >= 0)


@pytest.mark.parametrize("driver", ["systemd", "cgroupfs"])
def test_the_scan_finds_the_same_containers_with_or_without_the_c_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: str) -> None:
    tree = CgroupTree(tmp_path, driver)
    for n, (runtime, qos) in enumerate([("containerd", "burstable"), ("crio", "guaranteed"),
                                        ("docker", "besteffort"), ("containerd", "burstable")], start=1):
        tree.add_container(f"1234567{n}-aaaa-bbbb-cccc-1234567890ab", container_id(n), runtime, qos)
    pod = tree.pod_dir("12345671-aaaa-bbbb-cccc-1234567890ab")
    (pod / container_id(9)).symlink_to(tree.paths[container_id(1)])  # a link is never a container
    with_c = cgroups.scan_containers(str(tmp_path))
    monkeypatch.setattr(cgroups, "_fastread", None)
    assert with_c == cgroups.scan_containers(str(tmp_path)) == {cid: str(p) for cid, p in tree.paths.items()}
