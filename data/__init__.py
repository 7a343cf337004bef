"""data package (filled by later issues)."""
