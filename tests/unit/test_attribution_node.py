"""The grid region from this node's Node object (attribution/node.py), against the fake API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from footprint.attribution.node import Placement, choose, cloud_of, placements, with_node_region
from footprint.config import Settings
from footprint.grid.providers.static import Tables
from hypothesis import given

from tests.fakes.kube_apiserver import make_node_object, running_apiserver
from tests.unit.test_attribution_pods import json_values

AZURE = "azure:///subscriptions/0000/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachines/aks-np-1"
REGION = "topology.kubernetes.io/region"


@pytest.mark.parametrize(
    ("provider_id", "cloud", "region"),
    [
        ("aws:///us-east-1a/i-0abcdef1234567890", "aws", "us-east-1"),
        ("aws:///us-gov-west-1b/i-0abc", "aws", "us-gov-west-1"),
        ("aws:///us-west-2-lax-1a/i-0abc", "aws", "us-west-2"),  # a Local Zone: its parent region
        ("gce://my-project/us-central1-a/gke-pool-1-abcd", "gcp", "us-central1"),
        ("gce://p/northamerica-northeast1-b/n", "gcp", "northamerica-northeast1"),
        (AZURE, "azure", ""),  # no region in Azure's providerID
        ("kind://docker/kind/kind-worker", "", ""),
        ("aws:///i-0abc", "aws", ""),  # no zone part
        ("gce://p/not-a-zone/n", "gcp", ""),
        ("", "", ""),
        ("garbage", "", ""),
    ],
)
def test_provider_ids_of_the_clouds(provider_id: str, cloud: str, region: str) -> None:
    assert cloud_of(provider_id) == (cloud, region)


def test_the_region_label_comes_first_then_the_old_label_then_the_provider_id() -> None:
    node = make_node_object(labels={REGION: "us-east-2", "failure-domain.beta.kubernetes.io/region": "old"},
                            provider_id="aws:///us-east-1a/i-1")
    assert [p.region for p in placements(node)] == ["us-east-2", "old", "us-east-1"]
    assert placements(node)[0].source == f"label {REGION}; cloud aws (spec.providerID)"
    known = set(Tables().region_zone)
    assert choose(placements(node), known) == Placement("us-east-2", f"label {REGION}; cloud aws (spec.providerID)")
    on_prem = make_node_object(labels={REGION: "dc-west"}, provider_id="gce://p/europe-west4-a/n")
    assert choose(placements(on_prem), known) == Placement("europe-west4", "spec.providerID gce://p/europe-west4-a/n")
    assert choose(placements(make_node_object(labels={REGION: "dc-west"})), known) == Placement(
        "dc-west", f"label {REGION}")  # unknown, but said: the grid warns about it
    assert placements(make_node_object()) == []


@given(node=json_values)
def test_any_json_as_a_node_never_raises(node: Any) -> None:
    assert isinstance(placements(node), list)


def settings(url: str, token: Path, **more: Any) -> Settings:
    return Settings(**{"kubernetes_enabled": True, "kubernetes_node_name": "node-1", "kubernetes_api_url": url,
                       "kubernetes_token_file": str(token), **more})


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("tok\n")
    return path


def test_region_and_its_origin_from_the_node(token: Path) -> None:
    node = make_node_object(labels={REGION: "eastus"}, provider_id=AZURE)
    with running_apiserver("tok", nodes=[node]) as api:
        got = with_node_region(settings(api.url, token))
        assert api.requests == ["/api/v1/nodes/node-1"]
    assert got.grid_region_label == "eastus"
    assert got.origin("grid.region") == f"node node-1: label {REGION}; cloud azure (spec.providerID)"


@pytest.mark.parametrize("configured", [{"grid_zone": "DE"}, {"grid_region_label": "eu-west-1"},
                                        {"kubernetes_enabled": False}])
def test_no_lookup_when_a_zone_or_region_is_set_or_kubernetes_is_off(token: Path, configured: dict[str, Any]) -> None:
    with running_apiserver("tok", nodes=[make_node_object(labels={REGION: "eastus"})]) as api:
        given_settings = settings(api.url, token, **configured)
        assert with_node_region(given_settings) is given_settings
        assert api.requests == []


def test_a_failed_lookup_leaves_the_settings_and_warns(token: Path, caplog: pytest.LogCaptureFixture) -> None:
    with running_apiserver("tok", nodes=[make_node_object("other-node", labels={REGION: "eastus"})]) as api:
        missing = settings(api.url, token)
        assert with_node_region(missing) is missing  # 404: no such node
        wrong_token = settings(api.url, token.with_name("nothing"))
        assert with_node_region(wrong_token) is wrong_token  # 401
    refused = settings("http://127.0.0.1:9", token)
    assert with_node_region(refused) is refused
    assert sum("cannot read node 'node-1'" in r.getMessage() for r in caplog.records) == 3
    with running_apiserver("tok", nodes=[make_node_object()]) as api:
        bare = settings(api.url, token)
        assert with_node_region(bare) is bare  # bare metal: no label, no providerID
    assert "has no region label or providerID region" in caplog.text
