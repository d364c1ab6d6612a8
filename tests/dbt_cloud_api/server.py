"""A local stand-in for dbt Cloud's Administrative API v2 that runs REAL dbt Core.

Test support (imperative, threads and subprocesses). It speaks the subset of
https://github.com/dbt-labs/dbt-cloud-openapi-spec/blob/master/openapi-v2.yaml
that DbtCloudExecutor uses: jobs (create, list, get, delete, trigger, job
artifacts) and runs (list, get, cancel, run artifacts). Each step of a job is run
as a ``dbt`` subprocess with the run's own ``--target-path``. Like dbt Cloud, runs
of one job never overlap and the account has ``run_slots`` runs at once (default 1,
which also keeps one DuckDB file from being opened by two dbt processes).
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

DBT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dbt"
_PREFIX = re.compile(r"^/api/v2/accounts/(?P<account>\d+)/(?P<rest>.*)$")
_Query = dict[str, list[str]]
_MAX_LIMIT = 100  # "Limit ... Can be an integer up to 100" (API v2, Pagination)


class RunStatus(enum.IntEnum):
    """dbt Cloud's run status codes (RunResponse.status)."""

    QUEUED = 1
    STARTING = 2
    RUNNING = 3
    SUCCESS = 10
    ERROR = 20
    CANCELLED = 30


_HUMANIZED = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}
_DONE = frozenset({RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED})


@attrs.frozen
class RecordedRequest:
    """One request as the server received it (``at`` is ``time.monotonic()``)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    at: float


PARTIAL_PARSE = "partial_parse.msgpack"


@attrs.frozen
class _Reply:
    code: int
    payload: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


class _ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.define
class _Run:
    id: int
    job: dict[str, Any]
    cause: str
    created_at: str
    status: RunStatus = RunStatus.QUEUED
    status_message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    step_dirs: list[Path] = attrs.Factory(list)
    step_logs: list[Path] = attrs.Factory(list)
    cancel: threading.Event = attrs.Factory(threading.Event)


@attrs.define
class _Faults:
    """Injected failures; every field is guarded by ``lock``."""

    lock: threading.Lock = attrs.Factory(threading.Lock)
    failures: list[tuple[int, int | None]] = attrs.Factory(list)
    limited_until: float = 0.0  # time.monotonic() until which every request gets 429
    drop: str | None = None
    failing_steps: set[str] = attrs.Factory(set)
    hanging_steps: set[str] = attrs.Factory(set)
    echo_auth: int | None = None  # the status of the next answer that echoes the token

    def take_echo(self, request: RecordedRequest) -> _Reply | None:
        with self.lock:
            code, self.echo_auth = self.echo_auth, None
        if code is None:
            return None
        told = request.headers.get("authorization", "")
        return _Reply(code, _envelope(code, None, f"bad gateway for {told}"))

    def take_failure(self) -> _Reply | None:
        retry_after: int | None
        with self.lock:
            left = self.limited_until - time.monotonic()
            if left > 0:
                code, retry_after = 429, max(1, math.ceil(left))
            elif not self.failures:
                return None
            else:
                code, retry_after = self.failures.pop(0)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return _Reply(code, _envelope(code, None, f"injected HTTP {code}"), headers=headers)

    def take_drop(self) -> str | None:
        with self.lock:
            drop, self.drop = self.drop, None
        return drop

    def matches(self, step: str, which: set[str]) -> bool:
        with self.lock:
            return any(part in step for part in which)


def _now() -> str:
    # dbt Cloud's timestamps look like "2024-05-01 12:00:00.123456+00:00".
    return datetime.now(UTC).isoformat(sep=" ")


def _envelope(code: int, data: Any, message: str = "Success!", **extra: Any) -> dict[str, Any]:
    status = {"code": code, "is_success": 200 <= code < 300, "user_message": message}
    return {"status": {**status, "developer_message": ""}, "data": data, **extra}


class DbtCloudServer:
    """dbt Cloud's API v2 on 127.0.0.1, running real dbt for each triggered run.

    Use as a context manager, or call ``start()`` and ``stop()``. ``requests``
    records every request received; ``fail_next``, ``fail_runs``, ``hang_runs``
    and ``drop_next_connection`` inject faults (all thread-safe).
    """

    def __init__(
        self,
        *,
        account_id: int,
        token: str,
        project_dir: Path,
        profiles_dir: Path,
        work_dir: Path,
        env: Mapping[str, str] | None = None,
        run_slots: int = 1,
    ) -> None:
        self.account_id, self._token = account_id, token
        self._project_dir, self._profiles_dir, self._work_dir = project_dir, profiles_dir, work_dir
        self._env = dict(env or {})
        self.requests: list[RecordedRequest] = []
        self.injected: list[RecordedRequest] = []  # the requests a fail_next answered
        self._faults = _Faults()
        self._cond = threading.Condition()
        self._jobs: dict[int, dict[str, Any]] = {}
        self._runs: dict[int, _Run] = {}
        self._busy_jobs: set[int] = set()
        self._last_parse: Path | None = None  # the newest step's partial_parse.msgpack
        self._ids = iter(range(1, 1_000_000))
        self._stopping = False
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(run_slots)]
        self._http: _HttpServer | None = None
        self._serving: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        assert self._http is not None, "start() the server first"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> DbtCloudServer:
        self._http = _HttpServer(("127.0.0.1", 0), _Handler)
        self._http.app = self
        self._serving = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._serving.start()
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        """Cancel every run (stopping its dbt process) and close the socket."""
        with self._cond:
            self._stopping = True
            for run in self._runs.values():
                run.cancel.set()
            self._cond.notify_all()
        for worker in self._workers:
            if worker.ident is not None:
                worker.join(timeout=30)
        if self._http is not None and self._serving is not None:
            self._http.shutdown()
            self._http.server_close()
            self._serving.join(timeout=10)

    def __enter__(self) -> DbtCloudServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ faults and state

    def fail_next(self, n: int, status: int = 429, retry_after: int | None = 1) -> None:
        """Answer the next ``n`` requests with ``status`` (``Retry-After`` on 429 only)."""
        with self._faults.lock:
            header = retry_after if status == 429 else None
            self._faults.failures.extend([(status, header)] * n)

    def echo_auth_next(self, status: int = 500) -> None:
        """Answer the next request with ``status`` and a message holding its
        Authorization header verbatim, as a misconfigured proxy might."""
        with self._faults.lock:
            self._faults.echo_auth = status

    def rate_limit(self, seconds: float) -> None:
        """dbt Cloud's cool-down after a burst: for ``seconds`` from now, every
        request gets 429 with ``Retry-After`` the seconds left (rounded up)."""
        with self._faults.lock:
            self._faults.limited_until = time.monotonic() + seconds

    def fail_runs(self, step_substring: str) -> None:
        """Runs reaching a step containing this end in ERROR without running dbt."""
        with self._faults.lock:
            self._faults.failing_steps.add(step_substring)

    def hang_runs(self, step_substring: str) -> None:
        """Runs reaching a step containing this stay RUNNING until cancelled."""
        with self._faults.lock:
            self._faults.hanging_steps.add(step_substring)

    def drop_next_connection(self, *, after_processing: bool = False) -> None:
        """Close the next request's connection unanswered; ``after_processing``
        first carries the request out (a job created whose answer is lost)."""
        with self._faults.lock:
            self._faults.drop = "after" if after_processing else "before"

    def jobs(self) -> list[dict[str, Any]]:
        """The jobs that exist (not deleted)."""
        with self._cond:
            return [dict(job) for job in self._jobs.values() if job["state"] == 1]

    def run_status(self, run_id: int) -> RunStatus:
        with self._cond:
            return self._runs[run_id].status

    # ------------------------------------------------------------ request handling

    def handle(self, request: RecordedRequest) -> _Reply | None:
        """The reply to one request, or None to close the connection unanswered."""
        with self._cond:
            self.requests.append(request)
        drop = self._faults.take_drop()
        if drop == "before":
            return None
        reply = self._faults.take_echo(request) or self._faults.take_failure()
        if reply is not None:
            with self._cond:
                self.injected.append(request)
        else:
            reply = self._dispatch(request)
        return None if drop == "after" else reply

    def _dispatch(self, request: RecordedRequest) -> _Reply:
        try:
            self._authorize(request.headers.get("authorization", ""))
            prefix = _PREFIX.match(request.path)
            if prefix is None or int(prefix["account"]) != self.account_id:
                raise _ApiError(404, "Account not found")
            matches = [(m, re.fullmatch(p, prefix["rest"]), a) for m, p, a in _ROUTES]
            for method, match, action in matches:
                if match and method == request.method:
                    return action(self, match, parse_qs(request.query, True), request.body)
            if any(match for _, match, _ in matches):
                raise _ApiError(405, f"Method {request.method} not allowed on {request.path}")
            raise _ApiError(404, f"No route for {request.method} {request.path}")
        except _ApiError as error:
            return _Reply(error.code, _envelope(error.code, None, error.message))

    def _authorize(self, header: str) -> None:
        # "Bearer can be used in place of Token ... Both syntaxes are equivalent."
        scheme, _, token = header.partition(" ")
        if scheme not in ("Token", "Bearer") or token != self._token:
            raise _ApiError(401, "Invalid token")

    # ------------------------------------------------------------ jobs

    def _create_job(self, _: re.Match[str], query: Any, body: bytes) -> _Reply:
        fields = _json_body(body)
        steps = fields.get("execute_steps")
        if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
            raise _ApiError(400, "execute_steps must be a non-empty list of dbt commands")
        for key in ("name", "project_id", "environment_id"):
            if key not in fields:
                raise _ApiError(400, f"{key} is required")
        with self._cond:
            job_id, now = next(self._ids), _now()
            job: dict[str, Any] = {
                "dbt_version": None,
                "job_type": "other",
                "triggers": {},
                "settings": {},
            }
            job |= fields | {"id": job_id, "account_id": self.account_id, "state": 1}
            job |= {"created_at": now, "updated_at": now}
            self._jobs[job_id] = job
            return _Reply(201, _envelope(201, dict(job), "Created"))

    def _list_jobs(self, _: re.Match[str], query: _Query, body: bytes) -> _Reply:
        with self._cond:
            jobs = [dict(job) for job in self._jobs.values()]
        return _Reply(200, _page(jobs, query, _JOB_FILTERS))

    def _get_job(self, match: re.Match[str], query: Any, body: bytes) -> _Reply:
        with self._cond:
            return _Reply(200, _envelope(200, dict(self._job(int(match["id"])))))

    def _delete_job(self, match: re.Match[str], query: Any, body: bytes) -> _Reply:
        with self._cond:
            job = self._job(int(match["id"]))
            job |= {"state": 2, "updated_at": _now()}
            return _Reply(200, _envelope(200, dict(job)))

    def _trigger(self, match: re.Match[str], query: Any, body: bytes) -> _Reply:
        fields = _json_body(body)
        cause = fields.get("cause")
        if not isinstance(cause, str) or not cause:
            raise _ApiError(400, "cause is required")
        # the run's own steps instead of the job's (the other *_override
        # fields are accepted; the steps carry --threads and --target here)
        steps = fields.get("steps_override")
        if steps is not None and (
            not isinstance(steps, list)
            or not steps
            or not all(isinstance(step, str) and step.startswith("dbt ") for step in steps)
        ):
            raise _ApiError(400, "steps_override must be a non-empty list of dbt commands")
        with self._cond:
            job = self._job(int(match["id"]))
            if job["state"] != 1:
                raise _ApiError(404, "Job not found")
            ran = dict(job) | ({"execute_steps": list(steps)} if steps else {})
            run = _Run(next(self._ids), ran, cause, _now())
            self._runs[run.id] = run
            self._cond.notify_all()
            return _Reply(200, _envelope(200, self._run_json(run)))

    def _job_artifact(self, match: re.Match[str], query: Any, body: bytes) -> _Reply:
        job_id = int(match["id"])
        with self._cond:
            self._job(job_id)
            done = [r for r in self._runs.values() if r.job["id"] == job_id]
            good = [r for r in done if r.status == RunStatus.SUCCESS and r.step_dirs]
            if not good:
                raise _ApiError(404, "No successful run of this job has artifacts")
            folder = max(good, key=lambda r: r.id).step_dirs[-1]
        return _artifact(folder, match["name"])

    def _job(self, job_id: int) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        if job is None:
            raise _ApiError(404, "Job not found")
        return job

    # ------------------------------------------------------------ runs

    def _list_runs(self, _: re.Match[str], query: _Query, body: bytes) -> _Reply:
        with self._cond:
            runs = [self._run_json(run) for run in self._runs.values()]
        return _Reply(200, _page(runs, query, _RUN_FILTERS))

    def _get_run(self, match: re.Match[str], query: _Query, body: bytes) -> _Reply:
        related = ",".join(query.get("include_related", []))
        with self._cond:
            run = self._run(int(match["id"]))
            return _Reply(200, _envelope(200, self._run_json(run, "run_steps" in related)))

    def _cancel(self, match: re.Match[str], query: Any, body: bytes) -> _Reply:
        with self._cond:
            run = self._run(int(match["id"]))
            if run.status == RunStatus.QUEUED:
                run.status, run.finished_at = RunStatus.CANCELLED, _now()
            run.cancel.set()
            return _Reply(200, _envelope(200, self._run_json(run)))

    def _run_artifact(self, match: re.Match[str], query: _Query, body: bytes) -> _Reply:
        with self._cond:
            dirs = list(self._run(int(match["id"])).step_dirs)
        # "If the step parameter is omitted, ... the artifacts compiled for the last step".
        step = int(query.get("step", [str(len(dirs))])[0] or 0)
        if not 1 <= step <= len(dirs):
            raise _ApiError(404, f"No artifacts for step {step} of this run")
        return _artifact(dirs[step - 1], match["name"])

    def _run(self, run_id: int) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise _ApiError(404, "Run not found")
        return run

    def _run_json(self, run: _Run, with_steps: bool = False) -> dict[str, Any]:
        job, status = run.job, run.status
        data = {
            "id": run.id, "trigger_id": run.id, "account_id": self.account_id,
            "project_id": job["project_id"], "environment_id": job["environment_id"],
            "job_definition_id": job["id"], "job_id": job["id"], "status": int(status),
            "status_humanized": _HUMANIZED[status], "status_message": run.status_message,
            "in_progress": status not in _DONE, "is_running": status == RunStatus.RUNNING,
            "is_complete": status in _DONE, "is_success": status == RunStatus.SUCCESS,
            "is_error": status == RunStatus.ERROR, "is_cancelled": status == RunStatus.CANCELLED,
            "created_at": run.created_at, "updated_at": _now(), "dequeued_at": run.started_at,
            "started_at": run.started_at, "finished_at": run.finished_at,
            "trigger": {"cause": run.cause, "job_definition_id": job["id"]},
            "artifacts_saved": bool(run.step_dirs) and status in _DONE,
            "href": f"/deploy/{self.account_id}/runs/{run.id}",
        }  # fmt: skip
        if with_steps:
            data["run_steps"] = [self._step_json(run, i) for i in range(len(run.step_logs))]
        return data

    def _step_json(self, run: _Run, index: int) -> dict[str, Any]:
        log = run.step_logs[index]
        name = f"Invoke dbt with `{run.job['execute_steps'][index]}`"
        logs = log.read_text(errors="replace") if log.exists() else ""
        return {"run_id": run.id, "account_id": self.account_id, "index": index + 1,
                "name": name, "logs": logs}  # fmt: skip

    # ------------------------------------------------------------ execution

    def _work(self) -> None:
        while (run := self._claim()) is not None:
            try:
                final = self._execute(run)
            except Exception as exc:  # a broken step must not kill the slot
                final, run.status_message = RunStatus.ERROR, f"server error: {exc!r}"
            with self._cond:
                run.status, run.finished_at = final, _now()
                self._busy_jobs.discard(run.job["id"])
                self._cond.notify_all()

    def _claim(self) -> _Run | None:
        """The oldest queued run whose job is not running (dbt Cloud's per-job queue)."""
        with self._cond:
            while not self._stopping:
                for run in sorted(self._runs.values(), key=lambda r: r.id):
                    if run.status == RunStatus.QUEUED and run.job["id"] not in self._busy_jobs:
                        self._busy_jobs.add(run.job["id"])
                        run.status, run.started_at = RunStatus.STARTING, _now()
                        return run
                self._cond.wait()
            return None

    def _execute(self, run: _Run) -> RunStatus:
        with self._cond:
            run.status = RunStatus.RUNNING
        for index, step in enumerate(run.job["execute_steps"], start=1):
            outcome = self._execute_step(run, index, step)
            if outcome != RunStatus.SUCCESS:
                return outcome
        return RunStatus.SUCCESS

    def _execute_step(self, run: _Run, index: int, step: str) -> RunStatus:
        if self._faults.matches(step, self._faults.failing_steps):
            run.status_message = f"injected failure of step {index}"
            return RunStatus.ERROR
        if self._faults.matches(step, self._faults.hanging_steps):
            run.cancel.wait()
            return RunStatus.CANCELLED
        argv = shlex.split(step)
        if argv[:1] != ["dbt"] or len(argv) < 2:
            run.status_message = f"step {index} is not a dbt command: {step!r}"
            return RunStatus.ERROR
        folder = self._work_dir / f"run-{run.id}"
        folder.mkdir(parents=True, exist_ok=True)
        with self._cond:
            run.step_dirs.append(folder / f"step-{index}")
            run.step_logs.append(folder / f"step-{index}.log")
        target = folder / f"step-{index}"
        self._reuse_parse(target)
        code = self._run_dbt(run, argv[1:], target)
        if (target / PARTIAL_PARSE).is_file():
            with self._cond:
                self._last_parse = target / PARTIAL_PARSE
        if code is None:
            return RunStatus.CANCELLED
        if code != 0:
            run.status_message = f"step {index} ({step}) exited with code {code}"
        return RunStatus.SUCCESS if code == 0 else RunStatus.ERROR

    def _reuse_parse(self, target: Path) -> None:
        """The last step's partial parse file, so dbt re-parses only what
        changed (dbt itself starts afresh when the project, vars or flags
        differ); every artifact is still the step's own."""
        with self._cond:
            last = self._last_parse
        if last is not None:
            target.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(last, target / PARTIAL_PARSE)

    def _run_dbt(self, run: _Run, args: list[str], target: Path) -> int | None:
        """dbt's exit code, or None once ``run`` was cancelled (its process stopped)."""
        command = [
            str(DBT), *args, "--project-dir", str(self._project_dir),
            "--profiles-dir", str(self._profiles_dir), "--target-path", str(target),
        ]  # fmt: skip
        env = {**_inherited_env(), **self._env, "DBT_LOG_PATH": str(target.parent / "logs")}
        with (target.parent / f"{target.name}.log").open("wb") as log:
            with subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._project_dir
            ) as process:
                while True:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        return process.wait(timeout=0.2)
                    if run.cancel.is_set():
                        _stop(process)
                        return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _inherited_env() -> dict[str, str]:
    return {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(body or b"{}")
    except ValueError as exc:
        raise _ApiError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise _ApiError(400, "body must be a JSON object")
    return fields


def _artifact(folder: Path, name: str) -> _Reply:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise _ApiError(404, f"Artifact {name} not found")
    return _Reply(200, raw=path.read_bytes())


# ---------------------------------------------------------------- list filters

_Filter = Callable[[dict[str, Any], str], bool]


def _ids_in(value: str) -> set[str]:
    return {part.strip() for part in value.strip("[]").split(",") if part.strip()}


def _equals(field: str) -> _Filter:
    return lambda row, value: str(row.get(field)) == value


def _state(row: dict[str, Any], value: str) -> bool:
    return value == "all" or str(row["state"]) == {"active": "1", "deleted": "2"}.get(value, value)


# The query parameters of "List Jobs" and "List Runs" in openapi-v2.yaml.
_JOB_FILTERS: dict[str, _Filter] = {
    "account_id": _equals("account_id"),
    "environment_id": _equals("environment_id"),
    "project_id": _equals("project_id"),
    "pk": _equals("id"),
    "project_id__in": lambda row, value: str(row.get("project_id")) in _ids_in(value),
    "dbt_version__in": lambda row, value: str(row.get("dbt_version")) in _ids_in(value),
    "name__icontains": lambda row, value: value.lower() in str(row.get("name", "")).lower(),
    "state": _state,
    "is_system": lambda row, value: value.lower() == "false",
    "triggers_schedule": lambda row, value: (
        str(bool(row.get("triggers", {}).get("schedule"))).lower() == value.lower()
    ),
}
_RUN_FILTERS: dict[str, _Filter] = {
    "account_id": _equals("account_id"),
    "environment_id": _equals("environment_id"),
    "project_id": _equals("project_id"),
    "job_definition_id": _equals("job_definition_id"),
    "pk": _equals("id"),
    "status": _equals("status"),
    "status__in": lambda row, value: str(row["status"]) in _ids_in(value),
}
_PAGING = frozenset({"limit", "offset", "order_by", "include_related"})


def _page(
    rows: list[dict[str, Any]], query: _Query, filters: Mapping[str, _Filter]
) -> dict[str, Any]:
    """Filter, order and paginate rows as the v2 list endpoints do (``extra`` included).

    Unknown parameters are refused (400) rather than ignored, so a client relying on
    a filter the real API lacks (``name__startswith``) fails here, not in production.
    """
    given = {key: values[-1] for key, values in query.items()}
    unknown = sorted(set(given) - set(filters) - _PAGING)
    if unknown:
        raise _ApiError(400, f"unknown query parameters {unknown}; known: {sorted(filters)}")
    if "state" in filters:
        given.setdefault("state", "1")  # like dbt Cloud, deleted jobs are hidden by default
    for key, value in given.items():
        if key in filters:
            rows = [row for row in rows if filters[key](row, value)]
    order = given.get("order_by", "id")
    if order.lstrip("-") not in ("id", "name", "created_at", "finished_at"):
        raise _ApiError(400, f"cannot order by {order!r}")
    rows.sort(key=lambda row: _sort_key(row.get(order.lstrip("-"))), reverse=order[0] == "-")
    limit, offset = _int_param(given, "limit", _MAX_LIMIT), _int_param(given, "offset", 0)
    if not 1 <= limit <= _MAX_LIMIT:
        raise _ApiError(400, f"limit must be between 1 and {_MAX_LIMIT}")
    page = rows[offset : offset + limit]
    filters_used = {k: v for k, v in given.items() if k not in _PAGING}
    pagination = {"count": len(page), "total_count": len(rows)}
    extra = {"filters": filters_used, "order_by": order, "pagination": pagination}
    return _envelope(200, page, extra=extra)


def _sort_key(value: Any) -> tuple[int, int, str]:
    if isinstance(value, int):
        return (0, value, "")
    return (2, 0, "") if value is None else (1, 0, str(value))


def _int_param(given: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(given.get(key, default))
    except ValueError as exc:
        raise _ApiError(400, f"{key} must be an integer") from exc


_Action = Callable[[DbtCloudServer, re.Match[str], Any, bytes], _Reply]
_ROUTES: tuple[tuple[str, str, _Action], ...] = (
    ("GET", r"jobs/", DbtCloudServer._list_jobs),
    ("POST", r"jobs/", DbtCloudServer._create_job),
    ("GET", r"jobs/(?P<id>\d+)/", DbtCloudServer._get_job),
    ("DELETE", r"jobs/(?P<id>\d+)/", DbtCloudServer._delete_job),
    ("POST", r"jobs/(?P<id>\d+)/run/", DbtCloudServer._trigger),
    ("GET", r"jobs/(?P<id>\d+)/artifacts/(?P<name>[\w./-]+)", DbtCloudServer._job_artifact),
    ("GET", r"runs/", DbtCloudServer._list_runs),
    ("GET", r"runs/(?P<id>\d+)/", DbtCloudServer._get_run),
    ("POST", r"runs/(?P<id>\d+)/cancel/", DbtCloudServer._cancel),
    ("GET", r"runs/(?P<id>\d+)/artifacts/(?P<name>[\w./-]+)", DbtCloudServer._run_artifact),
)


# ---------------------------------------------------------------- HTTP plumbing


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    app: DbtCloudServer


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read .requests, not stderr

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        recorded = RecordedRequest(
            self.command, parts.path, parts.query, headers, body, time.monotonic()
        )
        reply = self.server.app.handle(recorded)
        if reply is None:
            self.close_connection = True
            return
        content = reply.raw if reply.raw is not None else json.dumps(reply.payload).encode()
        self.send_response(reply.code)
        for name, value in {"Content-Type": "application/json", **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
