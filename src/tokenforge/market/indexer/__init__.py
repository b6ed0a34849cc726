"""The market indexer: follows each chain's blocks and writes trades, candles, holders and
market state (see :mod:`.runner` for the loop, :mod:`.writer` for the transaction)."""
