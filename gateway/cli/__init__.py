"""The `edocgw` command: `main` parses and dispatches, one module per group of commands."""
