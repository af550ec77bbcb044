"""What the two programs, their components and the CLI all know the project by: where its files
are (`paths`), the two Pulumi projects an environment is made of (`layers`), the physical names
that are contracts (`naming`) and the names of the stack outputs (`outputs`)."""
