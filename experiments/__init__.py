"""experiments package (filled by later issues)."""
