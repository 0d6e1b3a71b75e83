"""The read API: GET over the published view tables."""
