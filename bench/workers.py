"""Full-flow throughput of `hoctap run --role web` with 1 and 2 worker processes, on SQLite and
on PostgreSQL, as ratios against SQLite with one worker measured in the same run.

Everything is real except Telegram: the project's fake Bot API server runs in its own process
(`tests/fakes/telegram_bot_api.py`), `hoctap init` loads the example commune, and N real
`hoctap run --role web` processes serve the Telegram webhook, each on its own port, on the same
database and evidence folder. This script plays Telegram's side: P people each go through a whole
conversation (consent, register for Công dân học tập, declare the ten items — the first with a
photo the bot downloads with getFile — and submit), posted to `/telegram/webhook` over HTTP with
the secret header. Like Telegram, it keeps one update per chat in flight (the next one is posted
once the previous was answered 200), re-posts an update answered 503, and runs all the people at
once. With two workers a person's consecutive updates alternate between the workers, so every
step is taken by the other process than the step before: the conversation can only go on if its
state is in the database.

Measured per configuration: updates per second (wall clock, first post to last answer), CPU
seconds per update summed over the worker processes (psutil), peak RSS of each worker (VmHWM),
answer latency. Checked: every declaration reached 'submitted' with its ten answers and its
photo, no update was answered anything but 200 (503s re-posted as Telegram does are counted
apart), no worker logged an error, and each person's last update, delivered once more (to the
other worker when there are two) as Telegram does when it missed an answer, made the bot send
nothing. Exit status 1 when a check fails.

Pacing is off (TELEGRAM_RATE_PER_SECOND=0, TELEGRAM_CHAT_RATE_PER_SECOND=0): Telegram's limits
would measure the limiter, not the workers.

    .venv/bin/python bench/workers.py                          # 4 configurations, about 2-3 minutes
    .venv/bin/python bench/workers.py --output bench/RESULTS.md
    .venv/bin/python bench/workers.py --quick --configs sqlite1,sqlite2
    .venv/bin/python bench/workers.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bench.common import PHOTO, SCRIPT_WITH_PHOTO, FakeServer, median  # noqa: E402
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.storage.models import Answer, Evidence, Submission  # noqa: E402
from tests.fakes.telegram_bot_api import TOKEN  # noqa: E402
from tests.support.db import create_database, drop_database  # noqa: E402

CONFIGS = {  # name → (database, workers)
    "sqlite1": ("SQLite", 1),
    "sqlite2": ("SQLite", 2),
    "pg1": ("PostgreSQL", 1),
    "pg2": ("PostgreSQL", 2),
}
DEFAULT_PG_URL = os.environ.get("HOCTAP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
WEBHOOK_SECRET = "bench_workers-secret"
COMMUNE = ROOT / "examples" / "commune.yaml"
HOCTAP = Path(sys.executable).with_name("hoctap")
FIRST_USER = 500_000_000
RETRY_503_DELAY = 0.2  # Telegram waits longer; a short pause keeps the run short
FAILURE_RETRIES = 5
MARK_BEGIN = "<!-- bench/workers.py: begin -->"
MARK_END = "<!-- bench/workers.py: end -->"
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|database is locked", re.IGNORECASE)


@dataclass
class Outcome:
    config: str
    database: str
    workers: int
    people: int
    updates: int = 0
    wall: float = 0.0
    worker_cpu: float = 0.0
    fake_cpu: float = 0.0
    driver_cpu: float = 0.0
    server_cpu: float = 0.0  # PostgreSQL server processes
    machine_busy: float = 0.0  # share of all cores busy during the load, whoever used them
    peak_rss_mb: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    retries_503: int = 0
    failures: int = 0
    failure_codes: dict[str, int] = field(default_factory=dict)
    submitted: int = 0
    answers: int = 0
    photos: int = 0
    log_errors: list[str] = field(default_factory=list)
    redelivered: int = 0  # last updates posted again, to the other worker, after the run
    extra_replies: int = 0  # messages the bot sent for those (must be 0: already answered)

    @property
    def per_second(self) -> float:
        return self.updates / self.wall if self.wall else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.worker_cpu / self.updates if self.updates else 0.0

    @property
    def all_submitted(self) -> bool:
        return self.submitted == self.people and self.answers == 10 * self.people and self.photos >= self.people

    @property
    def ok(self) -> bool:
        return self.all_submitted and self.failures == 0 and not self.log_errors and self.extra_replies == 0

    def latency_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


# ---- databases -------------------------------------------------------------------------------


async def pg_answers(admin_url: str) -> bool:
    engine = create_async_engine(admin_url)
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def count_results(database_url: str) -> tuple[int, int, int]:
    """Declarations submitted, answers and evidence photos in the database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            submitted = await conn.scalar(
                select(func.count()).select_from(Submission).where(Submission.state == "submitted")
            )
            answers = await conn.scalar(select(func.count()).select_from(Answer))
            photos = await conn.scalar(select(func.count()).select_from(Evidence))
    finally:
        await engine.dispose()
    return submitted or 0, answers or 0, photos or 0


# ---- worker processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment() -> dict[str, str]:
    """The caller's environment without any setting of the bot (a token or a database URL there
    must not leak into the measured processes)."""
    names = {(info.alias or name).upper() for name, info in Settings.model_fields.items()}
    return {key: value for key, value in os.environ.items() if key.upper() not in names}


def worker_environment(fake: FakeServer, database_url: str, folder: Path) -> dict[str, str]:
    env = clean_environment()
    env.update(
        DATABASE_URL=database_url,
        EVIDENCE_DIR=str(folder / "evidence"),
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=f"{fake.base}/bot",
        TELEGRAM_API_FILE_URL=f"{fake.base}/file/bot",
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TELEGRAM_RATE_PER_SECOND="0",
        TELEGRAM_CHAT_RATE_PER_SECOND="0",
        SIGNING_SECRET="bench-signing-secret",
        WEB_HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


class Worker:
    """One `hoctap run --role web` process serving the Telegram webhook on its own port."""

    def __init__(self, number: int, env: dict[str, str], folder: Path) -> None:
        self.port = free_port()
        self.log_path = folder / f"worker-{number}.log"
        env = {**env, "WEB_PORT": str(self.port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}"}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(HOCTAP), "run", "--role", "web"], cwd=folder, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.process.pid)
        self.sampled_rss = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def wait_ready(self, client: httpx.AsyncClient, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker on port {self.port} exited: {self.log_path.read_text()[-2000:]}")
            try:
                if (await client.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"worker on port {self.port} did not answer /healthz: {self.log_path.read_text()[-2000:]}")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def sample(self) -> None:
        try:
            self.sampled_rss = max(self.sampled_rss, self.ps.memory_info().rss)
        except psutil.Error:
            pass

    def peak_rss(self) -> int:
        """VmHWM (the kernel's high-water mark of the resident set) where there is one."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        self.sample()
        return self.sampled_rss

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def errors(self) -> list[str]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [f"worker {self.port}: {line}" for line in lines if ERROR_LINE.search(line)]


def process_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of the PostgreSQL server's processes on this machine, by pid."""
    found = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] == "postgres" and proc.info["cpu_times"] is not None:
            found[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores."""
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


# ---- Telegram's side -------------------------------------------------------------------------


def photo_bytes(person: int) -> bytes:
    """A distinct photo per person (evidence is stored once per sha256)."""
    buffer = io.BytesIO()
    color = ((person * 37) % 256, (person * 91) % 256, (person * 53) % 256)
    Image.new("RGB", (640, 480), color).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


class Telegram:
    """Posts each person's updates to the workers as Telegram does: one in flight per chat."""

    def __init__(self, client: httpx.AsyncClient, workers: list[Worker], outcome: Outcome) -> None:
        self.client = client
        self.workers = workers
        self.outcome = outcome
        self.update_ids = iter(range(1, 10**9))
        self.last: dict[int, tuple[int, dict]] = {}  # person → (worker index, their last update)

    async def deliver(self, worker: Worker, update: dict) -> None:
        body = json.dumps(update)
        headers = {"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET}
        failures = 0
        while True:
            started = time.perf_counter()
            try:
                response = await self.client.post(worker.url, content=body, headers=headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status == "200":
                self.outcome.latencies.append(time.perf_counter() - started)
                return
            if status == "503":  # "deliver again later": Telegram does
                self.outcome.retries_503 += 1
                await asyncio.sleep(RETRY_503_DELAY)
                continue
            self.outcome.failures += 1
            self.outcome.failure_codes[status] = self.outcome.failure_codes.get(status, 0) + 1
            failures += 1
            if failures > FAILURE_RETRIES:
                return
            await asyncio.sleep(1.0)

    async def person(self, number: int, photo: dict) -> None:
        user = FIRST_USER + number
        sender = {"id": user, "is_bot": False, "first_name": "An", "language_code": "vi"}
        chat = {"id": user, "type": "private", "first_name": "An"}
        for step, what in enumerate(SCRIPT_WITH_PHOTO):
            message: dict = {"message_id": step + 1, "date": int(time.time()), "chat": chat, "from": sender}
            if what is PHOTO:
                message["photo"] = [{**photo, "width": 640, "height": 480}]
            else:
                message["text"] = what
            update = {"update_id": next(self.update_ids), "message": message}
            # Consecutive updates of one person go to different workers (when there are two).
            target = (number + step) % len(self.workers)
            await self.deliver(self.workers[target], update)
            self.outcome.updates += 1
            self.last[number] = (target, update)

    async def redeliver_last(self) -> None:
        """Telegram delivers an update again when it missed the answer: post each person's last
        update once more, to the other worker when there are two. It must change nothing."""
        for target, update in self.last.values():
            await self.deliver(self.workers[(target + 1) % len(self.workers)], update)
            self.outcome.redelivered += 1


# ---- one configuration -----------------------------------------------------------------------


async def run_config(name: str, people: int, fake: FakeServer, admin_url: str) -> Outcome:
    database, count = CONFIGS[name]
    outcome = Outcome(name, database, count, people)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        folder = Path(tmp)
        if database == "PostgreSQL":
            database_url = await create_database(admin_url, prefix="hoctap_bench")
        else:
            database_url = f"sqlite+aiosqlite:///{folder / 'hoctap.db'}"
        workers: list[Worker] = []
        try:
            env = worker_environment(fake, database_url, folder)
            init = subprocess.run(
                [str(HOCTAP), "init", "--commune", str(COMMUNE)], cwd=folder, env=env, capture_output=True, text=True
            )
            if init.returncode != 0:
                raise RuntimeError(f"hoctap init failed: {init.stdout}{init.stderr}")
            workers = [Worker(number, env, folder) for number in range(count)]
            # Idle connections are dropped after 2 s, before uvicorn closes them (5 s): reusing one
            # the server is closing at that moment would fail as a ReadError.
            limits = httpx.Limits(
                max_connections=people * count + 10, max_keepalive_connections=people * count + 10, keepalive_expiry=2.0
            )
            async with httpx.AsyncClient(timeout=120, limits=limits) as client:
                for worker in workers:
                    await worker.wait_ready(client)
                photos = [await fake.add_file(photo_bytes(number)) for number in range(people)]
                telegram = Telegram(client, workers, outcome)

                async def sampler() -> None:
                    while True:
                        for worker in workers:
                            worker.sample()
                        await asyncio.sleep(0.25)

                sampling = asyncio.create_task(sampler())
                cpu_before = [worker.cpu() for worker in workers]
                fake_before, driver_before = process_cpu(fake.pid), time.process_time()
                server_before, machine_before = postgres_cpu(), machine_cpu()
                started = time.perf_counter()
                await asyncio.gather(*(telegram.person(number, photos[number]) for number in range(people)))
                outcome.wall = time.perf_counter() - started
                machine_after = machine_cpu()
                outcome.machine_busy = (machine_after[0] - machine_before[0]) / max(
                    machine_after[1] - machine_before[1], 1e-9
                )
                if database == "PostgreSQL":
                    outcome.server_cpu = sum(cpu - server_before.get(pid, 0.0) for pid, cpu in postgres_cpu().items())
                outcome.worker_cpu = sum(
                    worker.cpu() - before for worker, before in zip(workers, cpu_before, strict=False)
                )
                outcome.fake_cpu = process_cpu(fake.pid) - fake_before
                outcome.driver_cpu = time.process_time() - driver_before
                sampling.cancel()
                sent_before = (await fake.stats())["sent"]
                await telegram.redeliver_last()
                outcome.extra_replies = (await fake.stats())["sent"] - sent_before
            outcome.peak_rss_mb = [worker.peak_rss() / 2**20 for worker in workers]
        finally:
            for worker in workers:
                worker.stop()
        for worker in workers:
            outcome.log_errors.extend(worker.errors())
        try:
            outcome.submitted, outcome.answers, outcome.photos = await count_results(database_url)
        finally:
            if database == "PostgreSQL":
                await drop_database(database_url, admin_url)
    return outcome


# ---- report ----------------------------------------------------------------------------------


def label(outcome: Outcome) -> str:
    return f"{outcome.database} × {outcome.workers} worker{'s' if outcome.workers > 1 else ''}"


def table(rounds: list[dict[str, Outcome]], baseline: str) -> list[str]:
    """Markdown table: medians over rounds; ratios are taken per round against that round's
    baseline, then the median of the ratios is shown."""
    names = [name for name in CONFIGS if any(name in r for r in rounds)]
    lines = [
        "| configuration | updates / s | × throughput | CPU ms / update (workers) | × CPU / update "
        "| PostgreSQL server CPU ms / update | machine busy | peak RSS per worker, MB | answer p50 / p95, ms "
        "| 503 re-posted | failed | submitted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        runs = [r[name] for r in rounds if name in r]
        throughput = [r[name].per_second / r[baseline].per_second for r in rounds if name in r and baseline in r]
        cpu = [r[name].cpu_ms / r[baseline].cpu_ms for r in rounds if name in r and baseline in r]
        last = runs[-1]
        server = (
            f"{median([1000 * run.server_cpu / run.updates for run in runs]):.1f}"
            if last.database == "PostgreSQL"
            else "–"
        )
        rss = " / ".join(f"{max(run.peak_rss_mb[i] for run in runs):.0f}" for i in range(last.workers))
        lines.append(
            f"| {label(last)} | {median([run.per_second for run in runs]):.1f} "
            f"| {median(throughput):.2f}× | {median([run.cpu_ms for run in runs]):.1f} | {median(cpu):.2f}× "
            f"| {server} | {median([100 * run.machine_busy for run in runs]):.0f}% "
            f"| {rss} | {median([run.latency_ms(0.5) for run in runs]):.0f} / {median([run.latency_ms(0.95) for run in runs]):.0f} "
            f"| {sum(run.retries_503 for run in runs)} | {sum(run.failures for run in runs)} "
            f"| {sum(run.submitted for run in runs)}/{sum(run.people for run in runs)} |"
        )
    return lines


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB, Python {platform.python_version()}, load average {load:.1f} at start"
    )


def write_results(path: Path, block: str) -> None:
    """Replace the generated part of RESULTS.md (between the markers), keeping the hand-written
    text around it; create the file when there is none."""
    generated = f"{MARK_BEGIN}\n{block.rstrip()}\n{MARK_END}\n"
    if path.exists():
        current = path.read_text()
        if MARK_BEGIN in current and MARK_END in current:
            before = current.split(MARK_BEGIN, 1)[0]
            after = current.split(MARK_END, 1)[1].lstrip("\n")
            path.write_text(before + generated + ("\n" + after if after else ""))
            return
        path.write_text(current.rstrip() + "\n\n" + generated)
        return
    path.write_text("# Benchmark results\n\n" + generated)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=None, help="people talking at once (default 24; --quick: 2)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds over all configurations; medians (default 2; --quick: 1)"
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help="a PostgreSQL server (a fresh database is created per configuration)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="write the figures into this Markdown file (e.g. bench/RESULTS.md)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 people, 1 round")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    people = args.people or (2 if args.quick else 24)
    rounds_wanted = args.rounds or (1 if args.quick else 2)
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")
    notes = []
    if any(CONFIGS[name][0] == "PostgreSQL" for name in configs) and not await pg_answers(args.database_url):
        server = make_url(args.database_url).render_as_string(hide_password=True)
        notes.append(f"PostgreSQL skipped: no server answers at {server}")
        configs = [name for name in configs if CONFIGS[name][0] != "PostgreSQL"]
    if not configs:
        print("nothing to run: " + "; ".join(notes))
        return 1
    baseline = "sqlite1" if "sqlite1" in configs else configs[0]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    print(
        f"{where}; {people} people x {len(SCRIPT_WITH_PHOTO)} updates; {rounds_wanted} round(s); {', '.join(configs)}",
        flush=True,
    )
    for note in notes:
        print(note, flush=True)

    fake = FakeServer()
    rounds: list[dict[str, Outcome]] = []
    try:
        for number in range(rounds_wanted):
            results: dict[str, Outcome] = {}
            # Every other round runs the configurations in reverse order, so that a drift in the
            # machine's load does not always favour the same ones.
            for name in configs if number % 2 == 0 else list(reversed(configs)):
                outcome = await run_config(name, people, fake, args.database_url)
                results[name] = outcome
                print(
                    f"round {number + 1} {name:<8} {outcome.per_second:7.1f} upd/s {outcome.cpu_ms:7.1f} ms CPU/upd "
                    + (
                        f"(PostgreSQL {1000 * outcome.server_cpu / max(outcome.updates, 1):.1f}, "
                        if outcome.database == "PostgreSQL"
                        else "("
                    )
                    + f"fake {1000 * outcome.fake_cpu / max(outcome.updates, 1):.1f}, "
                    f"driver {1000 * outcome.driver_cpu / max(outcome.updates, 1):.1f}; machine {100 * outcome.machine_busy:.0f}% busy) "
                    f"peak RSS {' / '.join(f'{mb:.0f}' for mb in outcome.peak_rss_mb)} MB; "
                    f"answer max {outcome.latency_ms(1.0):.0f} ms; submitted {outcome.submitted}/{people}, 503 re-posted {outcome.retries_503}, failed {outcome.failures}"
                    + (f" {outcome.failure_codes}" if outcome.failure_codes else "")
                    + (f", {len(outcome.log_errors)} error lines logged" if outcome.log_errors else "")
                    + (f", {outcome.extra_replies} replies to a redelivery" if outcome.extra_replies else ""),
                    flush=True,
                )
                for line in outcome.log_errors[:5]:
                    print("   ", line[:300])
            rounds.append(results)
        calls = (await fake.stats())["calls"]
    finally:
        fake.close()

    everything = [outcome for results in rounds for outcome in results.values()]
    submitted = sum(o.submitted for o in everything)
    expected = sum(o.people for o in everything)
    failures = sum(o.failures for o in everything)
    retries = sum(o.retries_503 for o in everything)
    errors = sum(len(o.log_errors) for o in everything)
    ok = all(o.ok for o in everything)
    lines = [
        f"Run of {when} on {where}.",
        f"{people} people at once, each {len(SCRIPT_WITH_PHOTO)} updates (one photo); {rounds_wanted} round(s), "
        f"medians (ratios: median of each round's ratio against {label(rounds[0][baseline])} of that round).",
        "",
        *table(rounds, baseline),
        "",
        f"Checks: {submitted}/{expected} declarations submitted with all answers and photos; "
        f"{failures} updates failed; {retries} answered 503 and posted again; {errors} error lines in worker logs; "
        f"{sum(o.redelivered for o in everything)} last updates delivered again (to the other worker when there are two), "
        f"answered with {sum(o.extra_replies for o in everything)} extra messages.",
    ]
    lines += [f"{note}." for note in notes]
    lines.append(f"Bot API calls seen by the fake server: {json.dumps(calls, sort_keys=True)}")
    block = "\n".join(lines)
    print()
    print(block)
    print(
        f"RESULT all_submitted={'yes' if submitted == expected and all(o.all_submitted for o in everything) else 'no'} "
        f"failures={failures} retries_503={retries} log_errors={errors} "
        f"extra_replies={sum(o.extra_replies for o in everything)} ok={'yes' if ok else 'no'}"
    )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **{k: v for k, v in o.__dict__.items() if k != "latencies"},
                        "updates_per_second": o.per_second,
                        "cpu_ms_per_update": o.cpu_ms,
                    }
                    for o in everything
                ]
            )
        )
    if args.output:
        write_results(args.output, block)
        print(f"written to {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
