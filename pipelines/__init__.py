"""KFP pipelines of kfchain (training, model selection), the model registry, submit and compile.

Imports ``events`` (dependency direction of DESIGN.md); nothing here imports ``services``.
"""
