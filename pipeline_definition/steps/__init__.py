"""One module per pipeline step (or group of steps that only make sense together)."""
