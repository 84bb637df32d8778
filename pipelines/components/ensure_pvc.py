"""ensure_pvc (cluster only): create the model PVC; an existing one is fine, any other error fails."""

from pipelines.components.common import component


@component
def ensure_pvc(
    pvc_name: str = "model-pvc",
    size: str = "1Gi",
    storage_class: str = "",
    access_mode: str = "ReadWriteOnce",
) -> str:
    """Create ``pvc_name`` in the run's namespace unless it exists; return its name."""
    from pipelines.cluster import ensure_pvc as create_or_keep
    from pipelines.components.report import reporting

    with reporting("ensure_pvc", pvc=pvc_name) as info:
        info["created"] = create_or_keep(
            pvc_name, size=size, storage_class=storage_class, access_mode=access_mode
        )
    return pvc_name
