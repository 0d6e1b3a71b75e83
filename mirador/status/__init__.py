"""`mirador status`: are the published views fresh, and if not, where is the flow stuck."""
