"""`mlstack`, the command line of the people who run the stack: one module per command, each
adding its parser and handler; `main` wires them."""
