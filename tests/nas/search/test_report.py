"""Reports over groups of runs: run folders found and grouped, mean ± sd tables and curves, ``nas compare``
and the HTML page of ``nas report`` (its content, without a browser; ``test_report_browser`` opens it)."""

import base64
import html
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from data.archive import Archive
from nas.cli import main
from nas.search import FunctionEvaluator, RandomSearch, SearchRun
from nas.search.factory import make_strategy
from nas.search.html_report import (_drawing, _png_size, build_report, failure_reasons, plot_predictions,
                                    surrogate_points, top_architectures)
from nas.search.report import (ArchiveSet, compare_groups, curve_on_trained, curve_on_wall, group_curves, mean_sd,
                               plot_best_so_far, plot_group_curves, plus_minus)
from nas.search.rundirs import find_run_dirs, group_runs, read_run_dir, seed_of, strip_seed

STRATEGIES = ("re", "random", "filtered")
SEEDS = (0, 1)
TOY_REASONS = ("no path from the input to the output", "too many 3x3 convolutions for the toy budget")
TOY_SPACE = SimpleNamespace(input_shape=(3, 32, 32))  # what a strategy needs of a task: the input shape


def toy_objective(arch):
    """A table-free objective on NB201 cells that fails for two reasons (module level: picklable)."""
    text = arch.to_string()
    if text.count("none") >= 3:
        raise ValueError(TOY_REASONS[0])
    if text.count("nor_conv_3x3") >= 3:
        raise RuntimeError(TOY_REASONS[1])
    return 0.5 + 0.08 * text.count("conv") - 0.02 * text.count("pool")


class ToySurrogate:
    """Predicts the toy objective's trend (more convolutions are better), with no failures."""

    def fit(self, archs, y):
        return self

    def predict(self, archs):
        return np.array([0.4 + 0.07 * a.to_string().count("conv") for a in archs])


def write_run_json(run_dir, run, label, task, strategy, **extra):
    (run_dir / "run.json").write_text(json.dumps({"archive": "archive.sqlite", "run": run, "label": label,
                                                  "task": task, "strategy": strategy, **extra}))


def make_toy_study(root, budget=20):
    """A study in seconds, with no look-up table: random, RE and surrogate-filtered RE × two seeds on the toy
    objective (task ``toy-a``, one run folder each in the ``nas run`` layout ``root/TASK/LABEL/seed-S``), and
    two seeds of random search on task ``toy-b``."""
    options = {"re": {}, "random": {}, "filtered": dict(surrogate=ToySurrogate(), start_after=6, refit_every=5,
                                                        n_candidates=10, k=3)}
    plan = [("toy-a", s) for s in STRATEGIES] + [("toy-b", "random")]
    for task, strategy in plan:
        for seed in SEEDS:
            run_dir = root / task / strategy / f"seed-{seed}"
            run_dir.mkdir(parents=True)
            run = f"{strategy}-seed{seed}"
            made = make_strategy(strategy, TOY_SPACE, seed, grammar="nb201", population_size=6, tournament_size=3,
                                 **options[strategy])
            with Archive(run_dir / "archive.sqlite") as archive:
                SearchRun(archive, run, FunctionEvaluator(toy_objective, task=task), progress=False).run(
                    made, budget_evals=budget)
            write_run_json(run_dir, run, strategy, task, strategy, command=f"python make_toy_study.py --seed {seed}")
    return root


def make_study(root, budget=20):
    """A study as a user makes one: ``nas search`` on the NB201 look-up table (no training) with three
    strategies × two seeds, in folders ``root/STRATEGY-sSEED``."""
    for strategy in STRATEGIES:
        extra = ["--start-after", "6", "--refit-every", "5", "--n-candidates", "10", "--k", "3", "--features", "graf"] \
            if strategy == "filtered" else []
        for seed in SEEDS:
            code = main(["search", "--task", "nb201-cifar10", "--budget", str(budget), "--population", "6",
                         "--tournament", "3", "--strategy", strategy, *extra, "--seed", str(seed),
                         "--run-dir", str(root / f"{strategy}-s{seed}")])
            assert code == 0
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_toy_study(tmp_path_factory.mktemp("study"))


# -- run folders ------------------------------------------------------------------------------------------------


def test_seed_marks():
    assert [seed_of(n) for n in ("re-seed3", "seed-3", "run_s12", "re", "resnet18")] == [3, 3, 12, None, None]
    assert [strip_seed(n) for n in ("re-seed3", "filtered_s1", "seed-3", "re")] == ["re", "filtered", "seed-3", "re"]


def test_run_folders_are_found_and_grouped_by_task_and_label(study):
    runs = find_run_dirs([study])
    assert len(runs) == len(STRATEGIES) * len(SEEDS) + 2
    groups = group_runs(runs)
    assert list(groups) == [("toy-a", s) for s in ("filtered", "random", "re")] + [("toy-b", "random")]
    for rs in groups.values():
        assert [r.seed for r in rs] == [0, 1]
    # the same runs given twice (a folder and a run folder below it) count once
    assert len(find_run_dirs([study / "toy-a", study / "toy-a" / "re" / "seed-0"])) == len(STRATEGIES) * len(SEEDS)


def test_a_seed_folder_takes_its_group_from_the_folder_above(tmp_path):
    run_dir = tmp_path / "my-experiment" / "seed-4"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"archive": "a.sqlite", "run": "x", "label": "seed-4"}))
    r = read_run_dir(run_dir)
    assert (r.group, r.seed, r.label) == ("my-experiment", 4, "seed-4")
    (run_dir / "run.json").write_text(json.dumps({"archive": "a.sqlite", "run": "x", "group": "g", "seed": 9}))
    assert (read_run_dir(run_dir).group, read_run_dir(run_dir).seed) == ("g", 9)


@pytest.mark.parametrize("content, message", [
    ("[1]", "expected a JSON object"),
    ("{", "not valid JSON"),
    ('{"archive": "a.sqlite"}', "'run' must be a non-empty string"),
    ('{"archive": "a.sqlite", "run": "r", "seed": "1"}', "'seed' must be an integer"),
])
def test_a_bad_run_json_is_one_error_naming_it(tmp_path, content, message):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        find_run_dirs([tmp_path])
    assert "run.json" in str(err.value)


def test_a_folder_without_runs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no run.json"):
        find_run_dirs([tmp_path])
    with pytest.raises(ValueError, match="no such folder"):
        find_run_dirs([tmp_path / "missing"])


# -- curves over seeds ------------------------------------------------------------------------------------------


def test_curves_on_a_common_axis():
    curve = {"trained": np.array([0, 1, 1, 2, 3]), "wall": np.array([0.5, 1.0, 1.5, 2.0, 4.0]),
             "best": np.array([np.nan, 0.5, 0.6, 0.6, 0.7])}
    # the last step with n trained counts (a duplicate after it included); a run that stopped keeps its best
    np.testing.assert_array_equal(curve_on_trained(curve, 5), [0.6, 0.6, 0.7, 0.7, 0.7])
    np.testing.assert_array_equal(curve_on_wall(curve, np.array([0.0, 0.5, 1.2, 3.9, 9.0])),
                                  [np.nan, np.nan, 0.5, 0.6, 0.7])
    mean, sd, n = mean_sd(np.array([[1.0, np.nan, 2.0], [3.0, np.nan, 2.0]]))
    np.testing.assert_array_equal(n, [2, 0, 2])
    np.testing.assert_allclose(mean, [2.0, np.nan, 2.0])
    np.testing.assert_allclose(sd, [np.sqrt(2.0), 0.0, 0.0])  # ddof 1


def test_group_curves_start_once_every_seed_has_a_success(study):
    groups = group_runs(find_run_dirs([study / "toy-a"]))
    with ArchiveSet() as archives:
        c = group_curves(archives, groups[("toy-a", "re")])
    assert c["trained"][0] == 1 and len(c["trained"]) == len(c["best_trained"])
    finite = c["best_trained"][np.isfinite(c["best_trained"])]
    assert finite.size and np.all(np.diff(finite) >= 0)  # a best-so-far mean never falls
    assert np.all(c["sd_trained"][np.isfinite(c["sd_trained"])] >= 0)


def test_plus_minus():
    assert plus_minus([0.5, 0.7], 2) == "0.60 ± 0.14"
    assert plus_minus([20.0, 20.0], 0) == "20"
    assert plus_minus([0.9], 4) == "0.9000"
    assert plus_minus([np.nan], 4) == "–"


# -- tables and plots -------------------------------------------------------------------------------------------


def test_compare_groups_is_a_table_per_task_with_mean_and_sd(study):
    text = compare_groups(group_runs(find_run_dirs([study])))
    blocks = text.strip().split("\n\n")
    assert len(blocks) == 2  # two tasks
    rows = [line for line in blocks[0].splitlines()[2:]]
    assert [r.split(" | ")[1] for r in rows] == ["filtered", "random", "re"]
    assert all(" | 2 (0, 1) | " in r and " ± " in r for r in rows)
    assert "| toy-b | random | random | 2 (0, 1) |" in blocks[1]


def test_nas_compare_on_folders_prints_groups_and_draws_bands(study, capsys, tmp_path):
    assert main(["compare", str(study), "--plot", str(tmp_path / "c.png"), "--per-run"]) == 0
    out = capsys.readouterr().out
    assert "| toy-a | re | re | 2 (0, 1) |" in out
    assert "| run | strategy |" in out  # --per-run
    for name in ("c-toy-a.png", "c-toy-b.png"):  # one figure per task
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_name_task_and_strategy_and_count_in_whole_numbers(study):
    from matplotlib.ticker import MaxNLocator

    runs = find_run_dirs([study / "toy-a" / "re" / "seed-0"])
    fig = plot_best_so_far([r.ref for r in runs])
    title = fig._suptitle.get_text()
    assert "toy-a" in title and "RegularizedEvolution" in title
    locator = fig.axes[0].xaxis.get_major_locator()
    assert isinstance(locator, MaxNLocator) and locator._integer
    groups = group_runs(find_run_dirs([study / "toy-a"]))
    with ArchiveSet() as archives:
        fig = plot_group_curves(archives, groups, "toy-a")
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "toy-a" in title and "mean ± sd" in title and "filtered (n=2)" in title
    assert all(np.all(np.asarray(t) == np.round(t)) for t in [fig.axes[0].get_xticks()])
    assert len(fig.axes[0].collections) == 3  # one ± sd band per group


# -- the HTML page ----------------------------------------------------------------------------------------------


def test_report_sections_from_the_runs(study):
    runs = find_run_dirs([study])
    with ArchiveSet() as archives:
        points = surrogate_points(archives, group_runs(runs)[("toy-a", "filtered")])
        assert len(points["passed"]) + len(points["failed"]) >= 2 * 8  # filtered asks record their prediction
        assert all(np.isnan(true) for true, _ in points["failed"])
        assert not surrogate_points(archives, group_runs(runs)[("toy-a", "re")])["passed"]
        reasons = failure_reasons(archives, group_runs(runs)[("toy-b", "random")])
        assert {r.split(": ", 2)[-1] for r, _, _ in reasons} == set(TOY_REASONS)
        assert all(groups == ["random"] for _, _, groups in reasons)
        tops = top_architectures(archives, runs[:2], top=5)
    accs = [t["val_acc"] for t in tops]
    assert len(tops) == 5 and accs == sorted(accs, reverse=True) and len({t["arch"].hash for t in tops}) == 5
    tag = _drawing(tops[0]["arch"], "best", max_pixels=300)  # redrawn smaller rather than a huge image
    png = base64.b64decode(re.search(r'base64,([^"]+)"', tag).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 100 < max(_png_size(png)) <= 300


def test_report_html_is_self_contained(study, tmp_path):
    assert main(["report", str(study), "-o", str(tmp_path / "report.html")]) == 0
    text = (tmp_path / "report.html").read_text()
    assert not re.search(r"""(?:src|href)=["'](?!data:|#)""", text)  # nothing outside the file
    assert "http://" not in text and "https://" not in text
    images = re.findall(r'<img class="plot[^"]*" src="data:image/png;base64,([^"]+)"', text)
    # curves per task (2), the filtered group's predictions (1), a drawing of the best per task (2)
    assert len(images) == 5 == text.count("<img")
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    for heading in ("Comparison", "Best so far", "Surrogate: predicted vs true", "Top architectures",
                    "Failures by reason", "Configuration", "Software"):
        assert f">{heading}</h2>" in text
    assert "<td>2 (0, 1)</td>" in text and "± " in text
    assert all(reason in text for reason in TOY_REASONS)
    assert "python make_toy_study.py --seed 1" in text  # the command a run recorded
    plain = html.unescape(text)
    assert "RegularizedEvolution" in plain and '"population_size": 6' in plain  # the stored configuration
    assert "surrogate-nas" in text and "numpy" in text  # software versions


def test_report_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one run"):
        build_report([])


# -- the surrogates' plots --------------------------------------------------------------------------------------


def test_transfer_heatmap_names_its_axes_and_averages_off_the_diagonal(tmp_path):
    from surrogates.transfer import heatmap, off_diagonal_means

    tasks = ["addnist-mini", "chesseract-mini", "language-mini"]
    m = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, np.nan], [0.3, 0.5, 0.7]])
    np.testing.assert_allclose(off_diagonal_means(m, tasks, tasks), [0.3, 0.1, 0.4])  # the diagonal left out
    title = ("One-to-one transfer: Kendall τ of a rf surrogate on graf,zcp features, fitted on the source task (row) "
             "and scored on the target task (column); the diagonal is within-task")
    fig = heatmap(m, tasks, tmp_path / "h.png", title=title, off_diagonal_mean=True)
    ax = fig.axes[0]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("source task", "target task")
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "mean off-diagonal"
    assert [t.get_text() for t in ax.texts[3::4]] == ["0.30", "0.10", "0.40"]  # the last column (row-major)
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert fig._suptitle.get_text().replace("\n", " ") == title
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height  # not cut off


def test_scatter_marks_failed_networks(tmp_path):
    from surrogates.workflows import scatter

    y = np.array([0.6, 0.7, 0.8, 0.0, 0.0])  # failed trainings are recorded as 0
    fig = scatter(y, np.array([0.62, 0.71, 0.77, 0.5, 0.3]), str(tmp_path / "s.png"), "rf on toy")
    ax = fig.axes[0]
    crosses = [c for c in ax.collections if len(c.get_offsets()) == 2]
    assert len(crosses) == 1 and tuple(crosses[0].get_facecolor()[0][:3]) == (1.0, 0.0, 0.0)
    assert np.all(crosses[0].get_offsets()[:, 0] < 0.6)  # on the strip left of the successes, not at 0
    assert crosses[0].get_offsets()[0, 0] > 0.4
    assert "failed (2)" in [t.get_text() for t in ax.get_legend().get_texts()][1]


class RecordsRejections(RandomSearch):
    """Random search that reports each ask as let through by a surrogate, with the first candidate as a rejected
    one (so its accuracy is known): the shape of ``info`` a filtered strategy records."""

    def _ask(self, step):
        arch, info = super()._ask(step)
        if step == 0:
            self.first = arch.hash
            return arch, info
        return arch, {**info, "kind": "filtered", "predicted": 0.5 + 0.01 * step,
                      "rejected": [{"hash": self.first, "predicted": 0.1}, {"hash": "unknown", "predicted": 0.2}]}


def test_surrogate_points_include_rejected_candidates_whose_accuracy_is_known(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    strategy = RecordsRejections(make_strategy("random", TOY_SPACE, 0, grammar="nb201").sampler, 0)
    with Archive(run_dir / "archive.sqlite") as archive:
        SearchRun(archive, "r", FunctionEvaluator(lambda a: 0.7), progress=False).run(strategy, budget_evals=4)
    write_run_json(run_dir, "r", "rej", "objective", "random")
    with ArchiveSet() as archives:
        points = surrogate_points(archives, find_run_dirs([run_dir]))
    assert points["passed"] == [(0.7, 0.51), (0.7, 0.52), (0.7, 0.53)]
    assert points["rejected"] == [(0.7, 0.1)] * 3  # the unknown hash has no accuracy: left out
    fig = plot_predictions(points, "toy")
    assert any("rejected" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_an_experiment_file_names_its_started_runs(study, capsys, tmp_path):
    experiment = tmp_path / "study.toml"
    experiment.write_text(f'[study]\ntask = "toy-a"\nseeds = [0, 1, 2]\nout = "{study}"\n\n'
                          '[strategies.re]\nstrategy = "re"\n\n[strategies.filtered]\nstrategy = "filtered"\n')
    assert main(["compare", str(experiment)]) == 0
    out = capsys.readouterr().out  # seed 2 has not run: left out
    assert "| toy-a | filtered | filtered | 2 (0, 1) |" in out and "| toy-a | re | re | 2 (0, 1) |" in out
    assert "random" not in out
    experiment.write_text(experiment.read_text().replace('"toy-a"', '"toy-c"'))
    assert main(["report", str(experiment), "-o", str(tmp_path / "r.html")]) == 2
    assert "none of the experiment's runs has started" in capsys.readouterr().err
