"""Temporal operations: instances in time windows, aggregation, history edits, analytics."""
