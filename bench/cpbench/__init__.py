"""Helpers for the issuance benchmark (bench/issuance.py): client, responder, targets, report."""
