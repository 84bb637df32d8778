"""KFP lightweight components, one per module. Imports live inside the function bodies (KFP
serialises the function source); the heavy lifting is in ``pipelines.model`` and friends, which the
image (cluster) or the venv (local) provides, so nothing is pip-installed at runtime.
"""
