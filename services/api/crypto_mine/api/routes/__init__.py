"""The endpoints: one module per route or group of routes, with what only they use."""
