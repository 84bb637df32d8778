"""Kubernetes manifests of kfchain (kustomize) and the local runtime that runs them on one machine."""
