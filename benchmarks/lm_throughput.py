"""LM surrogate throughput on CPU with the packaged all-MiniLM-L6-v2 encoder.

Token lengths of the ``long`` (WordPiece) and ``tokens`` (grammar tokens) encodings for random 3×32×32 einspace
architectures and for the ResNet-18 seed; then fine-tuning and inference throughput in architectures per
second for both encodings, for full fine-tuning, head-only training and the encoder truncated to 2 layers.
Fine-tuning is timed on a second ``fit`` with ``warm_start=True`` so model loading is not counted (the
tokenisation is).  One line per figure: ``name: value unit``.  Needs ``pip install 'surrogate-nas[lm]'``.

Run by hand:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/lm_throughput.py [--threads 2] [--n-train 32]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

# Run as ``python benchmarks/lm_throughput.py``, benchmarks/ comes first on sys.path, where
# benchmarks/surrogates.py would shadow the ``surrogates`` package: drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np

VARIANTS = {"full": {"mode": "full"}, "head": {"mode": "head"}, "2layers": {"num_layers": 2}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-lengths", type=int, default=200, help="random architectures for the length figures")
    parser.add_argument("--n-train", type=int, default=32, help="architectures per timed fine-tuning epoch")
    parser.add_argument("--n-predict", type=int, default=64, help="architectures per timed inference")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    from data.training import machine
    from features.encodings import grammar_tokens
    from nas.grammar import Budget
    from nas.sampler import Sampler
    from nas.seeds import get_seed
    from surrogates.lm import LMSurrogate, default_model_path

    sampler = Sampler("einspace", (3, 32, 32), Budget())
    rng = np.random.default_rng(args.seed)
    archs = [sampler.sample(rng) for _ in range(max(args.n_lengths, args.n_train + args.n_predict))]
    resnet = get_seed("resnet18")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)

    def long_len(a) -> int:
        return len(tok(a.long_string(), verbose=False)["input_ids"])

    def tokens_len(a) -> int:
        return len(grammar_tokens(a)) + 2  # [CLS] … [SEP]

    print(f"# machine: {machine()}, torch {torch.__version__}, {args.threads} threads, model all-MiniLM-L6-v2")
    sample = archs[: args.n_lengths]
    for name, fn in (("long", long_len), ("tokens", tokens_len)):
        lengths = np.array([fn(a) for a in sample])
        print(f"length_{name}_random_mean: {lengths.mean():.0f} tokens")
        print(f"length_{name}_random_p90: {np.percentile(lengths, 90):.0f} tokens")
        print(f"length_{name}_random_over_{args.max_length}: {100 * np.mean(lengths > args.max_length):.1f} %")
        print(f"length_{name}_resnet18: {fn(resnet)} tokens")

    train = archs[: args.n_train]
    y = np.linspace(0.0, 1.0, len(train))
    predict = archs[args.n_train : args.n_train + args.n_predict]
    for encoding in ("long", "tokens"):
        for variant, extra in VARIANTS.items():
            m = LMSurrogate(
                encoding=encoding, epochs=1, batch_size=8, max_length=args.max_length, progress=False,
                warm_start=True, random_state=args.seed, device="cpu", **extra,
            )
            m.fit(train[:2], y[:2])  # loads the model; not timed
            start = time.perf_counter()
            m.fit(train, y)
            rate = len(train) / (time.perf_counter() - start)
            print(f"finetune_{encoding}_{variant}: {rate:.2f} archs/s")
            if variant != "head":  # head-only inference is the full model's
                start = time.perf_counter()
                m.predict(predict)
                rate = len(predict) / (time.perf_counter() - start)
                print(f"inference_{encoding}_{variant}: {rate:.1f} archs/s")


if __name__ == "__main__":
    main()
