"""A FIX 4.4 venue: a matching engine behind a quickfix acceptor, with market data,
a liquidity provider and fault injection."""
