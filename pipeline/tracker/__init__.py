"""The marginal-utility tracker: stats, ledger, yield curve, scaling laws and value, decision, sources and budget,
report."""
