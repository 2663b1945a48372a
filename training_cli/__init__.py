"""The `osteo` command: one subcommand per engine entry point, argument parsing only."""
