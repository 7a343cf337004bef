"""surrogates package (filled by later issues)."""
