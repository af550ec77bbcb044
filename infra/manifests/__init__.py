"""Pure builders of the Kubernetes objects the stack declares, one module per workload.

Each returns plain dictionaries exactly as the API server takes them, so they are validated
against the Kubernetes OpenAPI schema, checked by policy and rendered for review without any
engine; the components only hand them to `pulumi_kubernetes`.
"""
