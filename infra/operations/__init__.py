"""What `mlstack promote`, `rollback`, `verify`, `train`, `score` and `demo` do, apart from the
command line: stack file edits, registry changes, reading the live stack and the stack's update
history, runs and jobs, and the local demo's processes."""
