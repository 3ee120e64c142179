"""Development stack: starts real Redis, MongoDB wire-protocol and service processes locally."""
