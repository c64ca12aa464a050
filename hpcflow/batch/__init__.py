"""Batch systems: allocation detection, job-script templates, submission."""
