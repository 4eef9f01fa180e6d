"""Lists from outside, one item at a time (issue 16): a pod with oddly typed fields, or a garbled
pod-resources entry, costs only itself. Property tests for the pod parser and the pod-resources decoder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from footprint.attribution import apiserver
from footprint.attribution.apiserver import SKIP_REASONS, ApiServerClient, Skip, parse_pod, parse_pods
from footprint.attribution.podresources import PodResourcesClient, decode_list_response
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.kube_apiserver import make_pod, running_apiserver
from tests.fakes.podresources_server import (
    FakeContainer,
    FakePodResources,
    FakePodResourcesServer,
    encode_response,
    tagged,
)

LABEL = "footprint.dev/workload"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=12,
)


def good_pod(name: str = "bert-0") -> dict[str, Any]:
    pod = make_pod(name, "ml", containers=[("pytorch", "pytorch/pytorch:2.4", "a" * 64), ("log", "fluent-bit", "")],
                   labels={"training.kubeflow.org/job-name": "bert"},
                   owners=[{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "bert"}])
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    pod["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"containerID": "containerd://" + "b" * 64}}
    return pod


# Every place the parser looks, and the objects on the way there.
PATHS: list[tuple[Any, ...]] = [
    (), ("metadata",), ("metadata", "name"), ("metadata", "namespace"), ("metadata", "uid"), ("metadata", "labels"),
    ("metadata", "labels", "training.kubeflow.org/job-name"), ("metadata", "ownerReferences"),
    ("metadata", "ownerReferences", 0), ("metadata", "ownerReferences", 0, "kind"), ("spec",),
    ("spec", "containers"), ("spec", "containers", 0), ("spec", "containers", 0, "name"),
    ("spec", "containers", 0, "image"), ("spec", "initContainers"), ("spec", "initContainers", 0), ("status",),
    ("status", "phase"), ("status", "containerStatuses"), ("status", "containerStatuses", 0),
    ("status", "containerStatuses", 0, "name"), ("status", "containerStatuses", 0, "containerID"),
    ("status", "containerStatuses", 0, "lastState"), ("status", "containerStatuses", 0, "lastState", "terminated"),
    ("status", "containerStatuses", 0, "lastState", "terminated", "containerID"),
]


def replaced(pod: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(pod)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def test_the_issues_pods_are_skipped_and_the_rest_used() -> None:
    """`spec: [null]` and `status: "Running"` once froze the node's whole pod list."""
    odd_spec = replaced(good_pod("odd-spec"), ("spec",), [None])
    odd_status = replaced(good_pod("odd-status"), ("status",), "Running")
    items = [good_pod("a"), odd_spec, 42, odd_status, {"metadata": {"namespace": "x"}}, good_pod("b")]
    pods, skipped = parse_pods(items, LABEL)
    assert [p.name for p in pods] == ["a", "b"]
    assert dict(skipped) == {"malformed": 3, "missing_name": 1}
    with pytest.raises(Skip, match=r"^malformed: spec is list, not an object$"):
        parse_pod(odd_spec, LABEL)


def test_a_good_pod_reads_every_field() -> None:
    info = parse_pod(good_pod(), LABEL)
    assert (info.namespace, info.name, info.workload, info.phase) == ("ml", "bert-0", "training", "Running")
    assert info.containers == ("init", "pytorch", "log")
    assert info.container_ids == (("a" * 64, "pytorch"), ("b" * 64, "pytorch"))


@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_json_anywhere_in_a_pod_is_a_pod_or_a_counted_skip(path: tuple[Any, ...], value: Any) -> None:
    item = replaced(good_pod(), path, value)
    try:
        info = parse_pod(item, LABEL)
    except Skip as exc:
        assert exc.reason in SKIP_REASONS
    else:
        assert info.name


@given(before=st.lists(json_values, max_size=4), after=st.lists(json_values, max_size=4))
def test_a_valid_pod_parses_the_same_whatever_surrounds_it(before: list[Any], after: list[Any]) -> None:
    alone = parse_pod(good_pod(), LABEL)
    pods, skipped = parse_pods([*before, good_pod(), *after], LABEL)
    assert alone in pods
    assert len(pods) + sum(skipped.values()) == len(before) + len(after) + 1


def test_the_api_server_client_hands_over_every_item_and_refuses_endless_pages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("tok")
    items: list[Any] = [good_pod("a"), "not a pod", None, good_pod("b")]
    with running_apiserver("tok", items) as api:
        client = ApiServerClient(api.url, "node-1", str(token), "", page_size=3)
        pods, skipped = parse_pods(client.list_pods(), LABEL)
        assert [p.name for p in pods] == ["a", "b"] and dict(skipped) == {"malformed": 2}
        monkeypatch.setattr(apiserver, "MAX_PAGES", 3)
        with pytest.raises(ValueError, match="more than 3 pages"):
            ApiServerClient(api.url, "node-1", str(token), "", page_size=1).list_pods()


# --- pod-resources ---------------------------------------------------------------------------------




GOOD = [FakePodResources("train-0", "ml", [FakeContainer("trainer", [("nvidia.com/gpu", ["GPU-1"])])])]


def test_a_garbled_pod_resources_entry_is_skipped_over_real_grpc(socket_dir: Path) -> None:
    garbled = tagged(1, b"\x0a\x09train-1")  # a pod whose name says 9 bytes and has 7
    server = FakePodResourcesServer(socket_dir / "kubelet.sock", GOOD, raw_tail=garbled + tagged(1, b"\x0a\x01p"))
    server.start()
    client = PodResourcesClient(str(socket_dir / "kubelet.sock"))
    try:
        answer = client.list()
    finally:
        client.close()
        server.stop()
    assert [p.name for p in answer.pods] == ["train-0", "p"]
    assert dict(answer.skipped) == {"malformed": 1}


@given(junk=st.lists(st.binary(max_size=24), max_size=4))
def test_any_bytes_inside_pod_entries_never_break_the_others(junk: list[bytes]) -> None:
    answer = decode_list_response(encode_response(GOOD) + b"".join(tagged(1, j) for j in junk))
    assert answer.pods[0] == decode_list_response(encode_response(GOOD)).pods[0]
    assert len(answer.pods) + sum(answer.skipped.values()) == 1 + len(junk)
