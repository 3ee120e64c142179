"""The benchmark harness: ``python -m bench`` (``make bench``); see ``__main__``."""
