"""Kubeflow Pipelines: compile the pipeline with KubeflowV2DagRunner."""
