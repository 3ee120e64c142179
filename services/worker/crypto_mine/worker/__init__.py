"""crypto-mine."""
