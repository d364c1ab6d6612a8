"""The file cache store: entries survive a round trip, broken files read as misses
with one warning, writes are atomic under concurrent threads and processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefect_dbt_orchestrator.adapters.local import file_cache_store
from prefect_dbt_orchestrator.adapters.local.file_cache_store import (
    FORMAT,
    FileCacheStore,
    entry_from_json,
    entry_to_json,
    safe_name,
    tombstone_json,
)
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
    Timing,
)
from prefect_dbt_orchestrator.ports.cache_store import CacheEntry

UID = "model.jaffle_shop.orders"
START = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
LOGGER = "prefect_dbt_orchestrator"


def entry_for(key: str, unique_id: str = UID) -> CacheEntry:
    """A deterministic entry for ``key``, large enough (~4 KB) that a torn read shows."""
    result = NodeResult(
        unique_id,
        NodeStatus.SUCCESS,
        DbtStatus.SUCCESS,
        message=f"OK created table {key} " + "x" * 4000,
        timing=Timing(START, START + timedelta(seconds=2)),
        invocation=Invocation("run", ("--select", unique_id)),
        rows_affected=7,
        adapter_response={"_message": "OK", "rows_affected": 7},
    )
    return CacheEntry(
        unique_id=unique_id,
        key=key,
        components={"sql": f"sql-{key}", "config": f"config-{key}", "upstream a": "f00"},
        result=result,
        cached_at=START,
        expires_at=START + timedelta(days=1),
    )


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# ---------------------------------------------------------------- round trips

_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
_MOMENTS = st.datetimes(timezones=_ZONES)
_WORDS = st.text(min_size=1, max_size=20)


@st.composite
def node_results(draw: st.DrawFn, unique_id: str) -> NodeResult:
    started = draw(_MOMENTS)
    return NodeResult(
        unique_id,
        draw(st.sampled_from(NodeStatus)),
        draw(st.none() | st.sampled_from(DbtStatus)),
        message=draw(st.none() | _WORDS),
        timing=draw(st.none() | st.just(Timing(started, started + timedelta(seconds=3)))),
        invocation=draw(st.none() | st.builds(Invocation, _WORDS, st.tuples(_WORDS))),
        error=draw(st.none() | st.builds(ErrorInfo, _WORDS, _WORDS)),
        reason=draw(st.none() | _WORDS),
        failed_upstream=tuple(draw(st.lists(_WORDS, max_size=3))),
        rows_affected=draw(st.none() | st.integers(0, 10**9)),
        failures=draw(st.none() | st.integers(0, 100)),
        adapter_response=draw(st.dictionaries(_WORDS, st.integers() | _WORDS, max_size=3)),
        cache_key=draw(st.none() | _WORDS),
        cached_at=draw(st.none() | _MOMENTS),
        attempts=draw(st.integers(1, 5)),
    )


@st.composite
def cache_entries(draw: st.DrawFn) -> CacheEntry:
    unique_id = draw(st.text(min_size=1, max_size=60))
    return CacheEntry(
        unique_id=unique_id,
        key=draw(st.text(max_size=64)),
        components=draw(st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=6)),
        result=draw(node_results(unique_id)),
        cached_at=draw(_MOMENTS),
        expires_at=draw(st.none() | _MOMENTS),
    )


def assert_same_entry(loaded: CacheEntry | None, entry: CacheEntry) -> None:
    assert loaded == entry
    assert list(loaded.components) == list(entry.components)
    assert loaded.cached_at.utcoffset() == entry.cached_at.utcoffset()
    if entry.expires_at is not None:
        assert loaded.expires_at is not None
        assert loaded.expires_at.utcoffset() == entry.expires_at.utcoffset()


@given(cache_entries())
def test_any_entry_survives_its_json(entry: CacheEntry) -> None:
    text = entry_to_json(entry)
    assert json.loads(text)["format"] == FORMAT
    assert_same_entry(entry_from_json(text, source="test"), entry)


@given(cache_entries())
def test_any_entry_put_is_the_latest_one_read_back(
    tmp_path_factory: pytest.TempPathFactory, entry: CacheEntry
) -> None:
    store = FileCacheStore(tmp_path_factory.getbasetemp() / "hypothesis", "proj/dev")
    store.put(entry)
    assert_same_entry(store.latest(entry.unique_id), entry)


def test_an_entry_keeps_its_timezone_and_component_order(tmp_path: Path) -> None:
    entry = entry_for("k1")
    store = FileCacheStore(tmp_path)
    store.put(entry)
    loaded = store.latest(UID)
    assert_same_entry(loaded, entry)
    assert loaded is not None and list(loaded.components) == ["sql", "config", "upstream a"]
    stored = json.loads(store.path_for(UID).read_text(encoding="utf-8"))
    assert stored["cached_at"] == "2026-03-01T09:30:15.123456+02:00"


def test_a_naive_datetime_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    naive = CacheEntry(UID, "k1", {}, entry_for("k1").result, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no timezone"):
        store.put(naive)
    assert not store.path_for(UID).exists()


# ---------------------------------------------------------------- latest, put, forget


def test_a_node_never_stored_reads_as_none_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert FileCacheStore(tmp_path / "never-created").latest(UID) is None
    assert warnings_of(caplog) == []


def test_a_later_put_replaces_the_earlier_entry(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.put(entry_for("old"))
    store.put(entry_for("new"))
    assert store.latest(UID) == entry_for("new")
    assert [p.name for p in tmp_path.iterdir()] == [f"{UID}.json"]


def test_forget_drops_the_entry_and_is_a_no_op_when_there_is_none(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.forget(UID)
    store.put(entry_for("k1"))
    store.put(entry_for("k1", "model.jaffle_shop.customers"))
    store.forget(UID)
    assert store.latest(UID) is None
    assert store.latest("model.jaffle_shop.customers") is not None
    assert not store.path_for(UID).exists()


def test_a_tombstone_reads_as_none_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileCacheStore(tmp_path)
    store.path_for(UID).write_text(tombstone_json(UID), encoding="utf-8")
    assert store.latest(UID) is None
    assert warnings_of(caplog) == []


_WHOLE = entry_to_json(entry_for("k1"))
UNREADABLE = {
    "truncated": _WHOLE[:200].encode(),
    "not-json": b"this is not json",
    "empty": b"",
    "not-utf8": b"\xff\xfe",
    "other-format": json.dumps({"format": "dbt-orchestrator-cache/99", "unique_id": UID}).encode(),
    "not-an-object": b"[1, 2, 3]",
    "bad-status": _WHOLE.replace('"success"', '"great"').encode(),
    "naive-time": _WHOLE.replace("+02:00", "").encode(),
    "bad-fields": json.dumps({"format": FORMAT, "unique_id": UID, "key": 3}).encode(),
    "other-unique-id": entry_to_json(entry_for("k1", "model.jaffle_shop.customers")).encode(),
}


@pytest.mark.parametrize("content", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_file_is_a_miss_with_exactly_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    store = FileCacheStore(tmp_path)
    path = store.path_for(UID)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.latest(UID) is None
    warned = warnings_of(caplog)
    assert len(warned) == 1, warned
    assert str(path) in warned[0].getMessage()
    assert "cache miss" in warned[0].getMessage()


def test_a_directory_where_the_file_should_be_raises_oserror(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.path_for(UID).mkdir(parents=True)
    with pytest.raises(OSError):
        store.latest(UID)


# ---------------------------------------------------------------- atomic writes


def test_a_write_leaves_no_temp_file(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path, "proj")
    for key in ("a", "b", "c"):
        store.put(entry_for(key))
    assert [p.name for p in (tmp_path / "proj").iterdir()] == [f"{UID}.json"]


def test_a_failed_write_keeps_the_old_entry_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileCacheStore(tmp_path)
    store.put(entry_for("old"))

    def refuse(source: object, target: object) -> None:
        assert Path(str(source)).exists(), "the temp file is written before the move"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(f"{file_cache_store.__name__}.os.replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        store.put(entry_for("new"))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [f"{UID}.json"]
    assert store.latest(UID) == entry_for("old")


def test_an_entry_json_cannot_hold_fails_before_any_file_is_written(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    result = NodeResult(UID, NodeStatus.SUCCESS, adapter_response={"when": object()})
    with pytest.raises(TypeError):
        store.put(CacheEntry(UID, "k1", {}, result, START))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- names


ODD_IDS = [
    "model.a.b",
    "model.a/b",
    "model.a%2Fb",
    "model.a\\b",
    "model.a b",
    "model.A B",
    "model.a:b",
    "model.é",
    "model.a.b?*<>|",
    ".",
    "..",
    ".hidden",
    "../../escape",
    "test." + "x" * 300,
    "test." + "x" * 300 + "y",
]


def test_odd_unique_ids_map_to_distinct_files_inside_the_namespace(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path, "ns")
    for uid in ODD_IDS:
        store.put(entry_for("k", uid))
    files = list((tmp_path / "ns").iterdir())
    assert len(files) == len(ODD_IDS)
    assert all(len(p.name.encode()) <= 255 and not p.name.startswith(".") for p in files)
    for uid in ODD_IDS:
        assert store.latest(uid) == entry_for("k", uid)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != tmp_path / "ns"] == []


def test_safe_names_stay_readable() -> None:
    assert safe_name("model.jaffle_shop.orders") == "model.jaffle_shop.orders"
    assert safe_name("model.a/b c") == "model.a%2Fb%20c"
    assert safe_name("%") == "%25"
    assert safe_name("..") == "%2E."
    assert safe_name("test." + "x" * 300).startswith("test.xxxx")


def test_namespaces_keep_their_entries_apart(tmp_path: Path) -> None:
    dev, prod = FileCacheStore(tmp_path, "proj/dev"), FileCacheStore(tmp_path, "proj/prod")
    bare, escape = FileCacheStore(tmp_path), FileCacheStore(tmp_path, "../..")
    for store, key in ((dev, "dev"), (prod, "prod"), (bare, "bare"), (escape, "escape")):
        store.put(entry_for(key))
    assert [s.latest(UID).key for s in (dev, prod, bare, escape)] == [  # type: ignore[union-attr]
        "dev",
        "prod",
        "bare",
        "escape",
    ]
    assert dev.path_for(UID) == tmp_path / "proj" / "dev" / f"{UID}.json"
    assert escape.path_for(UID).is_relative_to(tmp_path)
    dev.forget(UID)
    assert dev.latest(UID) is None and prod.latest(UID) is not None


# ---------------------------------------------------------------- concurrency

ROUNDS = 300


def hammer(root: str, writer: str, rounds: int) -> list[str]:
    """Put then read ``rounds`` times; every problem seen, as text. Runs in threads
    and in spawned processes, so it is importable and reports instead of asserting."""
    store = FileCacheStore(Path(root), "proj/dev")
    problems: list[str] = []
    for index in range(rounds):
        store.put(entry_for(f"{writer}-{index}"))
        try:
            seen = store.latest(UID)
        except Exception as exc:  # report every failure, whatever it is
            problems.append(f"{writer} round {index}: {exc!r}")
            continue
        if seen is None or seen != entry_for(seen.key):
            problems.append(f"{writer} round {index}: read {seen!r:.200}")
    return problems


def _read_until(store: FileCacheStore, finished: Callable[[], bool]) -> list[str]:
    """Read while writers run: None only before the first entry, then whole entries."""
    problems: list[str] = []
    written = False
    while not finished():
        seen = store.latest(UID)
        if seen is None:
            if written:
                problems.append("None after an entry was written")
            continue
        written = True
        if seen != entry_for(seen.key) or seen.key.split("-")[0] not in ("w1", "w2"):
            problems.append(f"read {seen.key!r}, not an entry that was written")
    return problems


def test_threads_writing_and_reading_one_node_see_only_whole_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results: dict[str, list[str]] = {}

    def run(writer: str) -> None:
        results[writer] = hammer(str(tmp_path), writer, ROUNDS)

    writers = [threading.Thread(target=run, args=(name,)) for name in ("w1", "w2")]
    done = threading.Event()
    for thread in writers:
        thread.start()
    reader_problems: list[str] = []
    reader = threading.Thread(
        target=lambda: reader_problems.extend(
            _read_until(FileCacheStore(tmp_path, "proj/dev"), done.is_set)
        )
    )
    reader.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert results == {"w1": [], "w2": []}
    assert reader_problems == []
    assert warnings_of(caplog) == []
    assert [p.name for p in (tmp_path / "proj" / "dev").iterdir()] == [f"{UID}.json"]


def test_processes_writing_and_reading_one_node_see_only_whole_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pending = pool.starmap_async(hammer, [(str(tmp_path), w, ROUNDS) for w in ("w1", "w2")])
        store = FileCacheStore(tmp_path, "proj/dev")
        reader_problems = _read_until(store, pending.ready)
        writer_problems = pending.get(timeout=300)
    assert writer_problems == [[], []]
    assert reader_problems == []
    assert warnings_of(caplog) == []
    final = store.latest(UID)
    assert final is not None and final.key in (f"w1-{ROUNDS - 1}", f"w2-{ROUNDS - 1}")
    assert [p.name for p in (tmp_path / "proj" / "dev").iterdir()] == [f"{UID}.json"]
