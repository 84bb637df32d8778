"""announce: the exit handler; publishes pipeline.run.succeeded / pipeline.run.failed to Kafka."""

from kfp.dsl import PipelineTaskFinalStatus

from pipelines.components.common import component


@component
def announce(
    status: PipelineTaskFinalStatus,
    pipeline: str,
    model_name: str,
    model_version: str,
    registry_uri: str,
    run_id: str = "",
    job_id: str = "",
    chain_id: str = "",
    causation_id: str = "",
    kafka_bootstrap_servers: str = "",
    kafka_topic: str = "",
    notes_dir: str = "",
) -> str:
    """Publish the run's end event and return its id.

    ``run_id`` is set by the local runner; on a cluster it is empty and the KFP run id (``job_id``)
    is used. Empty Kafka parameters mean this container's ``KAFKA_BOOTSTRAP_SERVERS``/``KFCHAIN_TOPIC``.
    """
    from pipelines.announce import RunEnd, announce, read_local_errors
    from pipelines.components.report import reporting
    from pipelines.registry import open_registry

    with reporting("announce", pipeline=pipeline) as info:
        error = "; ".join(e for e in (status.error_message or "", read_local_errors(notes_dir)) if e)
        end = RunEnd(
            pipeline=pipeline,
            run_id=run_id or job_id or status.pipeline_job_resource_name,
            state=status.state,
            model_name=model_name,
            model_version=model_version,
            error=error,
            chain_id=chain_id,
            causation_id=causation_id,
        )
        event = announce(end, open_registry(registry_uri), kafka_bootstrap_servers, kafka_topic)
        info.update(event_type=event.type, event_id=event.id, chainid=event.chainid, state=end.state)
    return event.id
