"""Running the Trainer on several workers in a cluster (Kubeflow TFJob, Vertex).

See docs/distributed.md; ``launch`` is the command every worker runs.
"""
