"""The stack's configuration: read from the stack files or the engine, checked, and typed.

- `schema`: the `mlstack:*` keys `Pulumi.yaml` declares, with their types and defaults.
- `stackfiles`: a stack's values as the Pulumi CLI hands them to the program, from the files.
- `reader`: the config bag read key by key by its declared type, every problem collected.
- `sections`: one module per section of the typed config (network, storage, cluster, registry,
  serving, training, monitoring, ci): its frozen dataclass, the formats its keys take, how it
  is read.
- `rules`: refusals that involve keys of more than one section, and keys that have no effect.
- `stack`: the whole `StackConfig`, `load_config` (a mapping) and `from_pulumi` (the program).
- `errors`: `ConfigError`, every problem in one message.
- `regions`, `eks_versions`: the allowed AWS regions and Kubernetes versions, and what each
  version pins.
- `serving_targets`, `pinned_versions`: what a checked config means for the programs: where
  models are served and what watches them; the pinned model versions resolved through the
  registry.
"""
