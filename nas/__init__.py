"""Neural architecture search in grammar-based search spaces: grammar, architectures, compiler, search."""
