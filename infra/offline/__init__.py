"""Run the Pulumi program under Pulumi's mock runtime: no CLI, no cloud credentials."""
