"""Quotas and rate limits: GCRA buckets (pure), limits as data, the bucket store port."""
