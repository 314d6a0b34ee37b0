"""Discovery (slow path): venue catalogues -> selection rules -> atomic snapshots + market records."""
