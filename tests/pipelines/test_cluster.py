"""The model PVC step of the selection pipeline on a cluster, against kmock's KubernetesEmulator:
created when missing, an existing one is fine (409), any other API error fails the task with a
message naming the PVC and namespace (no ``ignore_upstream_failure`` hiding it)."""

from __future__ import annotations

import asyncio

import kmock
import pytest
from kubernetes import client as k8s

from pipelines.cluster import ensure_pvc

PVCS = kmock.resource("", "v1", "persistentvolumeclaims")


def core_api(emulator: kmock.KubernetesEmulator) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s.ApiClient(k8s.Configuration(host=str(emulator.url).rstrip("/"))))


async def test_missing_pvc_is_created_and_an_existing_one_is_fine(kmock: kmock.KubernetesEmulator) -> None:
    api = core_api(kmock)
    created = await asyncio.to_thread(
        ensure_pvc, "model-pvc", size="2Gi", storage_class="fast", namespace="team-a", api=api
    )
    again = await asyncio.to_thread(ensure_pvc, "model-pvc", namespace="team-a", api=api)
    assert (created, again) == (True, False)
    pvc = kmock.objects[PVCS, "team-a", "model-pvc"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["spec"]["storageClassName"] == "fast"


async def test_any_other_api_error_fails_naming_the_pvc_and_namespace(
    kmock: kmock.KubernetesEmulator,
) -> None:
    kmock["post /api/v1/namespaces/team-b/persistentvolumeclaims"] << 403
    with pytest.raises(RuntimeError) as failed:
        await asyncio.to_thread(ensure_pvc, "model-pvc", namespace="team-b", api=core_api(kmock))
    assert "'model-pvc'" in str(failed.value) and "'team-b'" in str(failed.value)
    assert "HTTP 403" in str(failed.value)
