"""Counters judged, joules charged to grams, the ledger that keeps the totals."""
