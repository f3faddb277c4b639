"""The worker child process of `serve` and the supervisor that starts and restarts it."""
