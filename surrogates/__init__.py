"""Surrogates: models that predict an architecture's score from its features (tabular, ensemble, transfer) or
its string encoding (a fine-tuned language model); one contract (``surrogates.base``), one registry of names
(``surrogates.registry``) and one folder format (``surrogates.persistence``)."""
