"""Spark + Delta jobs of the daily pipeline: one module per stage."""
