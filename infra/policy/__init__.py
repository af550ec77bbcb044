"""Policy rules run over the resources a stack declares, offline in tests and in CrossGuard packs."""
