"""The FIX-agnostic core of cross-market-connect.

Nothing under ``oms`` may import quickfix, simplefix or ``sessions``: the wire stops at
``sessions`` and only typed values cross into here.
"""
