"""The market: quotes, trade transactions, the indexer, analytics and the native price feed."""
