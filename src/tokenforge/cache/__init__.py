"""Cache for hot reads (token detail, token lists, chain list), chosen by URL."""
