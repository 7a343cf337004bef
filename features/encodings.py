"""String encodings of architectures for language-model surrogates.

Three encodings (``StringEncoder(kind=...)``):

* ``compact``: the canonical compact string, the published ``arch`` column;
* ``long``: the published ``arch_long`` string, every terminal annotated with its output feature shape;
* ``tokens``: a grammar-aware token sequence, one token per operation and per opening or closing bracket
  (commas and shapes carry no information the grammar does not already fix).  Seed-sized networks give a
  few hundred tokens here against thousands of WordPiece tokens for the long string.

``GrammarVocabulary`` lists every token of a grammar with stable ids, to be added to a tokenizer's
vocabulary or used as an embedding table.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from nas.grammar import Grammar, get_grammar
from nas.grammar.derive import Node

KINDS = ("compact", "long", "tokens")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def grammar_tokens(arch) -> list[str]:
    """One token per operation and bracket, in pre-order: ``sequential ( computation < relu > … )``."""
    grammar = arch.grammar
    out: list[str] = []

    def walk(node: Node, level: str) -> None:
        op = grammar.operation(level, node.op)
        out.append(node.op)
        if node.children:
            out.append(op.brackets[0])
            for child, child_level in zip(node.children, op.children):
                walk(child, child_level)
            out.append(op.brackets[1])

    walk(arch.root, grammar.start)
    return out


class GrammarVocabulary:
    """Every token ``grammar_tokens`` can produce for ``grammar`` (weight-0 options included), after the
    special tokens, in a stable order: ids do not depend on what was seen in training."""

    def __init__(self, grammar: "str | Grammar" = "einspace") -> None:
        self.grammar = get_grammar(grammar)
        tokens: list[str] = list(SPECIAL_TOKENS)
        seen = set(tokens)
        for ops in self.grammar.levels.values():
            for op in ops:
                for tok in (op.name, *op.brackets):
                    if tok not in seen:
                        seen.add(tok)
                        tokens.append(tok)
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, arch, max_length: int | None = None, add_special: bool = True) -> list[int]:
        """Token ids of an architecture (``[CLS] … [SEP]`` with ``add_special``), cut at ``max_length``."""
        unk = self.ids["[UNK]"]
        ids = [self.ids.get(t, unk) for t in grammar_tokens(arch)]
        if add_special:
            ids = [self.ids["[CLS]"], *ids, self.ids["[SEP]"]]
        return ids if max_length is None else ids[:max_length]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"grammar": self.grammar.name, "tokens": list(self.tokens)})


class StringEncoder(TransformerMixin, BaseEstimator):
    """Architectures -> strings (an object array of shape ``(n, 1)``).  ``kind`` is ``compact``, ``long``
    or ``tokens`` (grammar tokens joined by spaces).  Stateless."""

    version = "1"

    def __init__(self, kind: str = "long") -> None:
        self.kind = kind

    def fit(self, X: Iterable[Any], y: Any = None) -> "StringEncoder":
        if self.kind not in KINDS:
            raise ValueError(f"StringEncoder: kind must be one of {KINDS}, got {self.kind!r}")
        return self

    def encode_one(self, arch) -> str:
        if self.kind == "compact":
            return arch.to_string()
        if self.kind == "long":
            return arch.long_string()
        if self.kind == "tokens":
            return " ".join(grammar_tokens(arch))
        raise ValueError(f"StringEncoder: kind must be one of {KINDS}, got {self.kind!r}")

    def transform(self, X: Iterable[Any]) -> np.ndarray:
        return np.array([[self.encode_one(a)] for a in X], dtype=object).reshape(-1, 1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        name = {"compact": "arch", "long": "arch_long", "tokens": "arch_tokens"}.get(self.kind, self.kind)
        return np.asarray([name], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
