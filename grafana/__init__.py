"""Grafana dashboards of crypto-mine, built with Grafana's foundation SDK.

``python -m grafana`` writes them.
"""
