"""kfchain's Knative Services (CloudEvent sinks) and the KServe predictor. Nothing imports this package."""
