"""Policy rules over the resources a stack declares: offline in tests, and as a CrossGuard pack."""
