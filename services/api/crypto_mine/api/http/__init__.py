"""HTTP plumbing: middleware, errors, authentication, client addresses, connection limits."""
