"""kfchain's event contract (v1) and its transport: catalogue, codec, Kafka, broker, store.

Imports nothing else of the project (see ../shared/DESIGN.md, dependency direction).
"""
