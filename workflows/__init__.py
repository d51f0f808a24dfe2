"""The Kubernetes path: a RunSpec becomes one Argo Workflow, built with Hera (DESIGN.md)."""
