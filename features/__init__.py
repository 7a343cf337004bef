"""Features of architectures for surrogates: GRAF graph features, zero-cost proxies, string encodings and
their cache, all as scikit-learn transformers."""
