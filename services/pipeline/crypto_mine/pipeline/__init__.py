"""crypto-mine's click pipeline: the queue, the exactly-once ledger, batches and their outcomes."""
