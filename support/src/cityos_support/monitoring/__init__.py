"""Monitoring: Prometheus metrics shared by every HTTP app."""
