"""Grafana dashboards of crypto-mine, generated from Python (``python -m grafana``)."""
