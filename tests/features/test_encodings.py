import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from features.encodings import GrammarVocabulary, StringEncoder, grammar_tokens
from nas.architecture import Architecture
from nas.sampler import Sampler
from nas.seeds import get_seed

CONV = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>)"


def test_tokens_by_hand():
    a = Architecture.from_string(CONV, (3, 8, 8))
    assert grammar_tokens(a) == [
        "sequential", "(", "routing", "[", "im2col(3,1,1)", "computation", "<", "linear(16)", ">", "col2im", "]",
        "computation", "<", "relu", ">", ")",
    ]


def test_string_encoder_kinds():
    a = Architecture.from_string(CONV, (3, 8, 8))
    assert StringEncoder("compact").fit([a]).transform([a])[0, 0] == CONV
    assert StringEncoder("long").fit([a]).transform([a])[0, 0] == a.long_string()
    assert StringEncoder("tokens").fit([a]).transform([a]).shape == (1, 1)
    assert StringEncoder("long").get_feature_names_out().tolist() == ["arch_long"]
    with pytest.raises(ValueError, match="kind must be one of"):
        StringEncoder("bogus").fit([a])


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1))
def test_vocabulary_covers_every_sample_and_is_stable(seed):
    vocab = GrammarVocabulary("einspace")
    a = Sampler("einspace", (3, 16, 16)).sample(seed)
    ids = vocab.encode(a)
    assert vocab.ids["[UNK]"] not in ids
    assert vocab.decode(ids)[1:-1] == grammar_tokens(a)
    assert GrammarVocabulary("einspace").tokens == vocab.tokens


def test_tokens_are_much_shorter_than_the_long_string():
    a = get_seed("resnet18")
    # 559 grammar tokens against 6,992 characters of long string (which WordPiece cuts into thousands)
    assert 10 * len(grammar_tokens(a)) < len(a.long_string())
    assert len(GrammarVocabulary("einspace").encode(a, max_length=10)) == 10
