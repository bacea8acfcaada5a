"""The audit side of the receipt store: verify the hash chain, reconcile with the FIX log,
export (CSV, JSON, an HTML report with plots) and trace one trade.

Everything here reads the store through streaming queries and runs outside the trading
process (``cmc audit ...``), or in the receipt writer's process (the reconciliation at
start): never on the OMS thread.
"""
