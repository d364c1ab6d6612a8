"""``dbt-orchestrate ls`` prints what ``dbt ls --quiet`` prints, and the Python
selector engine picks what ``dbt ls`` picks.

Both sides run in this process on the same parse: dbt parses a copy of the
project once (writing ``target/manifest.json``, which ``dbt-orchestrate ls``
reads) and lists from the parsed manifest with ``dbtRunner(manifest=...)``,
exactly what ``dbt ls`` does after parsing. Each dbt ls line is captured from
stdout, where dbt prints it.

Projects: a copy of the demo with what it lacks for the output formats (a
versioned model, an exposure, a unit test on a version, an analysis, YAML
selectors), and a generated 50-model project (``gen_project.py``) with YAML
selectors added.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from dbt.cli.main import dbtRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.adapters.cli.main import main
from prefect_dbt_orchestrator.adapters.local.manifest_file import read_manifest
from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.selection import SelectionContext, SelectionRequest, select
from tests.corpus import corpus_dir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo"
QUIET = ("--quiet", "--log-level-file", "none", "--no-send-anonymous-usage-stats")

DEMO_EXTRAS = {
    "models/marts/_extras.yml": """
models:
  - name: dim_bikes
    description: Bikes, in two versions.
    latest_version: 2
    versions:
      - v: 1
      - v: 2
        config:
          tags: ["v2"]
exposures:
  - name: station_dashboard
    type: dashboard
    owner: {name: Ops, email: ops@example.com}
    depends_on: ["ref('mart_station_daily')", "ref('dim_bikes', v=2)"]
unit_tests:
  - name: test_dim_bikes_keeps_rows
    model: dim_bikes
    versions: {include: [2]}
    given:
      - input: ref('stg_bikes')
        rows: [{bike_id: 1}]
    expect:
      rows: [{bike_id: 1}]
""",
    "models/marts/dim_bikes_v1.sql": "select bike_id from {{ ref('stg_bikes') }}\n",
    "models/marts/dim_bikes_v2.sql": "select bike_id, 2 as v from {{ ref('stg_bikes') }}\n",
    "analyses/ride_count.sql": "select count(*) as rides from {{ ref('fct_rides') }}\n",
    "selectors.yml": """
selectors:
  - name: nightly
    definition:
      union:
        - method: tag
          value: daily
        - method: fqn
          value: fct_rides
          parents: true
        - exclude:
            - method: fqn
              value: stg_stations
  - name: staging_cautious
    definition:
      method: path
      value: models/staging
      indirect_selection: cautious
""",
}

GEN_SELECTORS = """
selectors:
  - name: marts_and_parents
    definition:
      method: tag
      value: marts
      parents: true
  - name: daily_tables
    definition:
      intersection:
        - method: tag
          value: daily
        - method: config.materialized
          value: table
"""

# Selection flags per project; every case runs with every output format.
DEMO_CASES: dict[str, tuple[str, ...]] = {
    "default": (),
    "all-types": ("--resource-type", "all"),
    "parents": ("-s", "+fct_rides"),
    "at": ("-s", "@stg_rides"),
    "tag-children-exclude": ("-s", "tag:daily+", "--exclude", "mart_bike_usage"),
    "path-cautious": ("-s", "path:models/staging+", "--indirect-selection", "cautious"),
    "buildable": ("-s", "stg_rides+", "--indirect-selection", "buildable"),
    "empty-indirect": ("-s", "stg_rides+", "--indirect-selection", "empty"),
    "types-multi": ("--resource-type", "model", "seed"),
    "exclude-types": ("--exclude-resource-type", "test", "unit_test"),
    "intersection": ("-s", "config.materialized:table,tag:daily"),
    "selector": ("--selector", "nightly"),
    "selector-cautious": ("--selector", "staging_cautious"),
    "models-flag": ("-m", "marts"),
    "versions": ("-s", "dim_bikes", "version:latest+"),
    "source-and-exposure": ("-s", "source:bikeshare+", "+exposure:station_dashboard"),
    "unit-tests": ("--resource-type", "unit_test"),
    "nothing": ("-s", "no_such_model"),
}
GEN_CASES: dict[str, tuple[str, ...]] = {
    "default": (),
    "parents": ("-s", "+int02_0024"),
    "children-depth": ("-s", "stg_0003+2", "--exclude", "tag:hourly"),
    "path-cautious": ("-s", "path:models/intermediate/l01+", "--indirect-selection", "cautious"),
    "tags-union": ("-s", "tag:daily tag:seed", "--resource-type", "model seed"),
    "materialized": ("-s", "config.materialized:ephemeral+", "--indirect-selection", "buildable"),
    "selector": ("--selector", "marts_and_parents"),
    "selector-intersection": ("--selector", "daily_tables"),
    "sources": ("-s", "source:*", "--resource-type", "all"),
}
OUTPUTS: dict[str, tuple[str, ...]] = {
    "json": ("--output", "json"),
    "json-keys": ("--output", "json", "--output-keys", "unique_id", "name", "config.materialized"),
    "name": ("--output", "name"),
    "selector": ("--output", "selector"),
    "path": ("--output", "path"),
}


@attrs.frozen
class Parsed:
    """A project parsed once by dbt: its dir, dbt's manifest object, ours."""

    project: Path
    dbt_manifest: Any
    manifest: Manifest
    context: SelectionContext

    def location(self) -> list[str]:
        return ["--project-dir", str(self.project), "--profiles-dir", str(self.project)]


def _parse(project: Path) -> Parsed:
    outcome = dbtRunner().invoke(
        ["parse", *QUIET, "--project-dir", str(project), "--profiles-dir", str(project)]
    )
    assert outcome.success, outcome.exception
    manifest = read_manifest(project / "target" / "manifest.json")
    return Parsed(project, outcome.result, manifest, selection_context(project))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parsed]:
    root = tmp_path_factory.mktemp("ls-demo")
    project = root / "demo"
    shutil.copytree(DEMO_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    for name, text in DEMO_EXTRAS.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text.lstrip(), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMO_DUCKDB_PATH", str(root / "demo.duckdb"))
        yield _parse(project)


def generate(out: Path, models: int, layers: int) -> Path:
    """A ``gen_project.py`` project at ``out`` (the script lives beside the corpus)."""
    script = corpus_dir().parent / "bench" / "gen_project.py"
    subprocess.run(
        [sys.executable, str(script), "--models", str(models), "--layers", str(layers),
         "--tests-per-model", "2", "--seed", "42", "--out", str(out),
         "--db-path", str(out / "bench.duckdb")],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def gen50(tmp_path_factory: pytest.TempPathFactory) -> Parsed:
    project = generate(tmp_path_factory.mktemp("ls-gen") / "gen50", 50, 5)
    (project / "selectors.yml").write_text(GEN_SELECTORS.lstrip(), encoding="utf-8")
    return _parse(project)


def dbt_ls(parsed: Parsed, *flags: str) -> Any:
    """``dbt ls`` on the parsed manifest, as dbt runs it after parsing."""
    return dbtRunner(manifest=parsed.dbt_manifest).invoke(
        ["ls", *QUIET, "--no-write-json", *parsed.location(), *flags]
    )


def _compare(
    parsed: Parsed, flags: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> list[str]:
    capsys.readouterr()
    outcome = dbt_ls(parsed, *flags)
    printed = capsys.readouterr()
    assert outcome.success, outcome.exception
    assert printed.out.splitlines() == list(outcome.result)  # stdout holds only the results

    code = main(["ls", *parsed.location(), *flags])
    ours = capsys.readouterr()
    assert code == 0, ours.err
    assert ours.out.splitlines() == printed.out.splitlines()
    assert ours.out == printed.out
    return ours.out.splitlines()


@pytest.mark.parametrize("output", OUTPUTS.values(), ids=list(OUTPUTS))
@pytest.mark.parametrize("case", DEMO_CASES.values(), ids=list(DEMO_CASES))
def test_ls_prints_what_dbt_ls_prints_on_the_demo(
    demo: Parsed, case: tuple[str, ...], output: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    printed = _compare(demo, case + output, capsys)
    assert bool(printed) == (case != DEMO_CASES["nothing"])


@pytest.mark.parametrize("output", OUTPUTS.values(), ids=list(OUTPUTS))
@pytest.mark.parametrize("case", GEN_CASES.values(), ids=list(GEN_CASES))
def test_ls_prints_what_dbt_ls_prints_on_a_generated_project(
    gen50: Parsed,
    case: tuple[str, ...],
    output: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _compare(gen50, case + output, capsys)


def test_the_demo_copy_has_every_kind_the_formats_name_differently(demo: Parsed) -> None:
    # Guards the parity cases above: each of these prints differently per format.
    manifest = demo.manifest
    assert {n.resource_type.value for n in manifest.nodes.values()} >= {
        "model", "seed", "snapshot", "test", "analysis",
    }  # fmt: skip
    assert [n.version for n in manifest.nodes.values() if n.name == "dim_bikes"] == ["1", "2"]
    assert manifest.sources and manifest.exposures and len(manifest.unit_tests) == 2
    assert set(manifest.selectors) == {"nightly", "staging_cautious"}


def test_ls_names_versioned_models_sources_and_unit_tests_as_dbt_does(
    demo: Parsed, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ("-s", "dim_bikes", "source:bikeshare", "exposure:*", "unit_test:*")
    names = _compare(demo, (*flags, "--output", "name"), capsys)
    selectors = _compare(demo, (*flags, "--output", "selector"), capsys)
    assert names == [
        "station_dashboard",
        "dim_bikes.v1",
        "dim_bikes.v2",
        "bikeshare.rides",
        "test_dim_bikes_keeps_rows",
        "test_station_daily_counts_completed_rides_only",
    ]
    assert selectors == [
        "exposure:demo.station_dashboard",
        "demo.marts.dim_bikes.v1",
        "demo.marts.dim_bikes.v2",
        "source:demo.bikeshare.rides",
        "unit_test:demo.test_dim_bikes_keeps_rows_v2",
        "unit_test:demo.test_station_daily_counts_completed_rides_only",
    ]


def test_json_keeps_the_resources_key_order_and_nested_keys(
    demo: Parsed, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _compare(demo, ("-s", "fct_rides", "--output", "json"), capsys)
    assert list(json.loads(lines[0])) == [
        "name", "resource_type", "package_name", "original_file_path", "unique_id",
        "alias", "config", "tags", "depends_on",
    ]  # fmt: skip
    keys = ("--output-keys", "config.materialized unique_id", "config.no_such_key")
    lines = _compare(demo, ("-m", "fct_rides", "--output", "json", *keys), capsys)
    assert lines == ['{"config.materialized": "incremental", "unique_id": "model.demo.fct_rides"}']


def test_nothing_selected_prints_nothing_and_warns_on_stderr(
    demo: Parsed, capsys: pytest.CaptureFixture[str]
) -> None:
    _compare(demo, ("-s", "no_such_model"), capsys)
    main(["ls", *demo.location(), "-s", "no_such_model"])
    # dbt's two warnings, in dbt's order: the unmatched term, then the empty selection
    unmatched = "The selection criterion 'no_such_model' does not match any enabled nodes"
    assert capsys.readouterr() == ("", f"{unmatched}\nNo nodes selected!\n")
    main(["ls", *demo.location(), "-s", "no_such_model", "--quiet"])
    assert capsys.readouterr() == ("", "")


def test_models_and_select_together_exit_2_as_dbt_refuses_them(
    demo: Parsed, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = dbt_ls(demo, "-m", "marts", "-s", "stg_rides")
    assert not outcome.success and "mutually exclusive" in str(outcome.exception)
    capsys.readouterr()
    assert main(["ls", *demo.location(), "-m", "marts", "-s", "stg_rides"]) == 2
    err = capsys.readouterr().err
    assert '"models" and "select" are mutually exclusive' in err and "--resource-type model" in err


# -- the engine against dbt ls, on generated selector expressions -----------------------

_VALUES = {
    "tag": ("daily", "hourly", "v2", "nope"),
    "path": ("models/staging", "models/marts", "models/marts/dim_stations.sql", "seeds", "tests",
             "snapshots", "models/*/stg_*.sql", "analyses"),
    "resource_type": ("model", "test", "seed", "snapshot", "source", "unit_test", "exposure",
                      "analysis"),
    "config.materialized": ("table", "view", "ephemeral", "incremental", "seed", "test"),
    "fqn": ("demo.staging", "demo.marts.*", "stg_rides", "dim_bikes", "demo.marts.dim_bikes.v2"),
    "test_type": ("generic", "singular", "unit", "data"),
    "test_name": ("unique", "not_null", "relationships", "accepted_values"),
    "source": ("bikeshare", "bikeshare.rides", "*"),
    "exposure": ("station_dashboard", "*"),
    "version": ("latest", "old", "none"),
    "package": ("demo",),
}  # fmt: skip
_NAMES = (
    "stg_rides", "stg_bikes", "fct_rides", "dim_stations", "mart_station_daily", "dim_bikes",
    "int_rides_enriched", "raw_rides", "snap_bikes", "unique_fct_rides_ride_id", "*", "marts",
    "assert_station_daily_reconciles_with_fct_rides", "stg_*", "ride_count",
)  # fmt: skip

atoms = st.one_of(
    st.sampled_from(_NAMES),
    st.sampled_from(sorted(_VALUES)).flatmap(
        lambda m: st.sampled_from(_VALUES[m]).map(lambda v: f"{m}:{v}")
    ),
)


@st.composite
def terms(draw: st.DrawFn) -> str:
    atom = draw(atoms)
    if draw(st.booleans()) and draw(st.booleans()):
        return f"@{atom}"
    before = draw(st.sampled_from(("", "", "+", "1+", "2+")))
    after = draw(st.sampled_from(("", "", "+", "+1", "+3")))
    return f"{before}{atom}{after}"


intersections = st.lists(terms(), min_size=1, max_size=2).map(",".join)
unions = st.lists(intersections, min_size=1, max_size=3).map(" ".join)


@st.composite
def requests(draw: st.DrawFn) -> SelectionRequest:
    select_values = draw(st.lists(unions, max_size=2))
    return SelectionRequest(
        select=tuple(select_values),
        exclude=tuple(draw(st.lists(unions, max_size=1))),
        resource_types=draw(st.sampled_from(((), ("all",), ("model",), ("test", "unit_test")))),
        exclude_resource_types=draw(st.sampled_from(((), (), ("test",), ("source", "seed")))),
        indirect_selection=draw(st.sampled_from(("eager", "cautious", "buildable", "empty"))),
    )


def ls_flags(request: SelectionRequest) -> list[str]:
    flags: list[str] = []
    for flag, values in (
        ("--select", request.select),
        ("--exclude", request.exclude),
        ("--resource-type", request.resource_types),
        ("--exclude-resource-type", request.exclude_resource_types),
    ):
        flags += [f for value in values for f in (flag, value)]
    return [*flags, "--indirect-selection", request.indirect_selection]


def dbt_selected(parsed: Parsed, request: SelectionRequest) -> frozenset[str]:
    outcome = dbt_ls(parsed, "--output", "json", "--output-keys", "unique_id", *ls_flags(request))
    assert outcome.success, outcome.exception
    return frozenset(json.loads(line)["unique_id"] for line in outcome.result)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_the_engine_selects_what_dbt_ls_selects(demo: Parsed, request: SelectionRequest) -> None:
    expected = dbt_selected(demo, request)
    event("dbt ls selected nothing" if not expected else "dbt ls selected some nodes")
    assert select(demo.manifest, request, demo.context).unique_ids == expected


@pytest.mark.parametrize(
    "request_",
    [
        SelectionRequest(select=("+mart_station_daily",), indirect_selection="cautious"),
        SelectionRequest(select=("@stg_bikes",), exclude=("test_type:unit",)),
        SelectionRequest(selector="nightly"),
        SelectionRequest(selector="staging_cautious"),
        SelectionRequest(select=("tag:v2+", "source:*"), resource_types=("all",)),
    ],
)
def test_the_engine_selects_what_dbt_ls_selects_for_named_cases(
    demo: Parsed, request_: SelectionRequest
) -> None:
    flags = ("--selector", request_.selector) if request_.selector else ()
    outcome = dbt_ls(
        demo, "--output", "json", "--output-keys", "unique_id", *flags, *ls_flags(request_)
    )
    assert outcome.success, outcome.exception
    expected = frozenset(json.loads(line)["unique_id"] for line in outcome.result)
    assert expected  # each case selects something, so equality is not vacuous
    assert select(demo.manifest, request_, demo.context).unique_ids == expected
