"""features package (filled by later issues)."""
