"""The command side: write services that accept commands only."""
