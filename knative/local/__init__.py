"""The local Knative runtime: runs the manifests in ``knative/`` on one machine.

``python -m knative.local up|status|down|dispatch``. The dispatcher (``dispatcher.py``) does what
the Knative Kafka Broker's data plane does for each Trigger (and KafkaSource): one consumer group,
filters, the delivery spec, reply events, dead letters, commits only after an outcome. The
supervisor (``supervisor.py``) starts the broker, every Knative Service, the predictor and the
dispatcher as processes. Nothing here imports ``services``: they are started by their manifest's
command.
"""
