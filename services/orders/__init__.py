"""The orders service: place orders with lines, change lines while placed, move them along."""
