"""Workload kind of a pod: training, inference or unknown.

In order, the first that answers wins:
1. the configured pod label (`--kubernetes.workload-label`, default `footprint.dev/workload`): its value
   `training` or `inference` (any case); any other value means `unknown`, on purpose;
2. training operators: an ownerReference of kind PyTorchJob, TFJob, MPIJob, XGBoostJob, PaddleJob,
   JAXJob, MXJob or TrainJob from a `*kubeflow.org` API group, or any `training.kubeflow.org/` or
   `trainer.kubeflow.org/` label (Kubeflow Training Operator v1 and Trainer v2);
3. serving: any `serving.kserve.io/` label (KServe InferenceService pods), a `seldon-deployment-id`
   label (Seldon Core), or a container image or `app` / `app.kubernetes.io/name` label naming vLLM,
   Triton Inference Server or Hugging Face TGI;
4. otherwise `unknown`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

TRAINING, INFERENCE, UNKNOWN = "training", "inference", "unknown"

TRAINING_KINDS = frozenset(
    {"PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob", "MXJob", "TrainJob"}
)
TRAINING_LABEL_PREFIXES = ("training.kubeflow.org/", "trainer.kubeflow.org/")
SERVING_LABEL_PREFIXES = ("serving.kserve.io/",)
SERVING_LABELS = ("seldon-deployment-id",)
APP_LABELS = ("app.kubernetes.io/name", "app")
# Repository names (last path segment, tag and digest removed) and app names of inference servers.
SERVER_NAME = re.compile(
    r"^(vllm(-openai|-tpu|-cpu)?|tritonserver|triton(-inference-server)?|text-generation-inference|tgi)$"
)


def _repository(image: str) -> str:
    """`nvcr.io/nvidia/tritonserver:24.01-py3` -> `tritonserver` (registry port and digest safe)."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def classify(
    labels: Mapping[str, str],
    owners: Iterable[Mapping[str, Any]],
    images: Iterable[str],
    label_key: str,
) -> str:
    if label_key and label_key in labels:
        value = str(labels[label_key]).strip().lower()
        return value if value in (TRAINING, INFERENCE) else UNKNOWN
    for owner in owners:
        group = str(owner.get("apiVersion", "")).split("/", 1)[0]
        if owner.get("kind") in TRAINING_KINDS and group.endswith("kubeflow.org"):
            return TRAINING
    if any(key.startswith(TRAINING_LABEL_PREFIXES) for key in labels):
        return TRAINING
    if any(key.startswith(SERVING_LABEL_PREFIXES) or key in SERVING_LABELS for key in labels):
        return INFERENCE
    if any(SERVER_NAME.match(str(labels.get(key, "")).lower()) for key in APP_LABELS):
        return INFERENCE
    if any(SERVER_NAME.match(_repository(image)) for image in images):
        return INFERENCE
    return UNKNOWN


def classify_pod(pod: Mapping[str, Any], label_key: str) -> str:
    """Classify a pod object as the API server serves it (metadata + spec)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    owners = [o for o in (meta.get("ownerReferences") or []) if isinstance(o, Mapping)]
    images = [
        str(c.get("image", ""))
        for key in ("containers", "initContainers")
        for c in (spec.get(key) or [])
        if isinstance(c, Mapping)
    ]
    return classify(labels, owners, images, label_key)
