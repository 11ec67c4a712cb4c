"""pass@k evaluation through the sandbox."""
