"""Run the Pulumi program without the Pulumi CLI or cloud credentials, under Pulumi's mock runtime."""
