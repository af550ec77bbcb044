"""Run the Pulumi programs under Pulumi's mock runtime (no CLI, no cloud credentials), and render
what a run declares: the plan as a tree or JSON (`plan`), the committed snapshots (`snapshot`),
and the Kubernetes objects as YAML files (`k8s_yaml`)."""
