"""What `mlstack promote`, `rollback` and `verify` do, apart from the command line: stack file
edits, registry changes, reading the live stack and the stack's update history."""
