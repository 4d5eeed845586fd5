"""``python -m benchmarks.fanout [--accounts 1,10,40,100] [--import]``: what an account costs.

**SDK** (the default): for N accounts (a profile each, in a temporary ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE``)
it makes an omics and an S3 client per profile, as a fan-out over N stores does, and reports the
growth of the process's resident memory and the CPU it took, in two ways, each in a fresh process:

* ``separate``: an ``aioboto3.Session`` per profile with its own botocore loader (what every AWS
  caller did before :mod:`async_refimport.aws.clients`);
* ``pool``: one :class:`~async_refimport.aws.clients.ClientPool`, whose sessions share one loader.

No request is sent: the clients point at an endpoint nobody listens on (issue 23).

**Import** (``--import``): N accounts x ``--rows`` rows imported by one Importer against the
emulator (a process of its own), a store per account (a profile each, its access key the
account's id), sources checked in the emulator's S3. Reported: the importing process's peak RSS,
its CPU per store (and the garbage collector's share of it), its API calls per store and CPU per
call, the time to the first Start of the last store, the makespan, and the host's load average at
the end (``--json``: the calls per store, and so the CPU, follow it); ``--results`` splices them
into RESULTS.md ("Fan-out across accounts").

To see where the importing process's CPU goes: ``FANOUT_PROFILE=out.prof`` (cProfile, CPU time,
the event loop's thread) or ``FANOUT_PY_SPY=out.txt`` (py-spy's raw samples, every thread; py-spy
installed in the same environment).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from typing import Any

ENDPOINT = "http://127.0.0.1:9"
MODES = ("separate", "pool")
ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"
TIME_SCALE = 0.002  # a job of 1,000 bases: 30 s of the real service's overhead, 60 ms here


_GC_TIMES: list[float] = []
_GC_STARTED: list[float] = []


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    # Installed in the importing process only (_child_import): the CPU of each collection.
    if phase == "start":
        _GC_STARTED[:] = [time.thread_time()]
    elif _GC_STARTED:
        _GC_TIMES.append(time.thread_time() - _GC_STARTED[0])


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _key(i: int) -> str:
    # The emulator takes a 12-digit access key id as the account's id.
    return f"{100_000_000_000 + i}"


def _write_profiles(directory: str, accounts: int) -> None:
    with open(os.path.join(directory, "config"), "w") as config:
        for i in range(accounts):
            config.write(f"[profile acct{i}]\nregion = us-east-1\n\n")
    with open(os.path.join(directory, "credentials"), "w") as credentials:
        for i in range(accounts):
            credentials.write(
                f"[acct{i}]\naws_access_key_id = {_key(i)}\n"
                "aws_secret_access_key = fanout-secret-not-real\n\n"
            )
    os.environ["AWS_CONFIG_FILE"] = os.path.join(directory, "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(directory, "credentials")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)


async def _separate(accounts: int, stack: AsyncExitStack) -> None:
    import aioboto3

    from async_refimport.aws.clients import no_retries

    for i in range(accounts):
        session = aioboto3.Session(profile_name=f"acct{i}")
        for service in ("omics", "s3"):
            await stack.enter_async_context(
                session.client(service, endpoint_url=ENDPOINT, config=no_retries())
            )


async def _pool(accounts: int, stack: AsyncExitStack) -> None:
    from async_refimport.aws.clients import ClientPool

    pool = await stack.enter_async_context(ClientPool())
    for i in range(accounts):
        for service in ("omics", "s3"):
            await pool.client(service, profile=f"acct{i}", endpoint_url=ENDPOINT)


async def _measure(mode: str, accounts: int) -> dict[str, Any]:
    import aioboto3  # noqa: F401  (imported before the baseline: the import is not an account's)
    import botocore.session  # noqa: F401

    from async_refimport.aws import clients  # noqa: F401

    before, cpu, started = _rss_mib(), _cpu(), time.perf_counter()
    async with AsyncExitStack() as stack:
        await (_separate if mode == "separate" else _pool)(accounts, stack)
        grown = _rss_mib() - before
        spent = _cpu() - cpu
        elapsed = time.perf_counter() - started
    return {
        "mode": mode,
        "accounts": accounts,
        "rss_growth_mib": round(grown, 1),
        "rss_per_account_mib": round(grown / accounts, 2),
        "cpu_s": round(spent, 2),
        "cpu_per_account_ms": round(1000 * spent / accounts, 1),
        "elapsed_s": round(elapsed, 2),
    }


def _child(mode: str, accounts: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _write_profiles(directory, accounts)
        print(json.dumps(asyncio.run(_measure(mode, accounts))))


def _requests(spec: dict[str, Any]) -> list[Any]:
    from async_refimport import ImportRequest

    return [
        ImportRequest(
            store_id,
            ROLE_ARN,
            spec["uris"][r % len(spec["uris"])],
            f"acct{a}-ref{r:04d}",
            region="us-east-1",
            endpoint_url=spec["omics"],
            profile=f"acct{a}",
        )
        for a, store_id in enumerate(spec["stores"])
        for r in range(spec["rows"])
    ]


async def _import(spec: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import replace

    from async_refimport import Importer, JobStarted, PreflightPolicy
    from benchmarks._common import project_settings

    settings = project_settings(TIME_SCALE, rates_scaled=False)
    settings = replace(settings, preflight=PreflightPolicy(s3_endpoint_url=spec["s3"]))
    requests = _requests(spec)
    first_start: dict[str, float] = {}
    cpu, started, loop_cpu = _cpu(), time.perf_counter(), time.thread_time()
    async with Importer(spec["journal"], region="us-east-1", settings=settings) as imp:
        async with imp.subscribe() as events:

            async def watch() -> None:
                async for event in events:
                    if isinstance(event, JobStarted):
                        first_start.setdefault(event.store.key, time.perf_counter() - started)

            import anyio

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                results = await imp.wait(await imp.submit(requests))
                tg.cancel_scope.cancel()
            calls = {api.operation: api.calls for api in (await imp.status()).api}
    makespan = time.perf_counter() - started
    spent, loop_spent = _cpu() - cpu, time.thread_time() - loop_cpu
    gc_spent = sum(_GC_TIMES)
    n = len(spec["stores"])
    return {
        "accounts": n,
        "rows": len(requests),
        "imported": sum(r.state.value == "IMPORTED" for r in results),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_per_store_ms": round(1000 * spent / n, 1),
        # The event loop's thread alone (the rest: the journal's and the resolver's threads).
        "loop_cpu_per_store_ms": round(1000 * loop_spent / n, 1),
        # The garbage collector's share of the loop's (its pauses, whatever code they stop).
        "gc_per_store_ms": round(1000 * gc_spent / n, 1),
        # The work itself: each call is botocore's serialising, signing, sending and parsing.
        "calls_per_store": round(sum(calls.values()) / n, 1),
        "calls": calls,
        "last_first_start_s": round(max(first_start.values(), default=0.0), 2),
        "makespan_s": round(makespan, 2),
        # The polls a job takes follow its wall-clock length, which follows the host's load.
        "host_load_1min": round(os.getloadavg()[0], 2),
    }


def _import_run(accounts: int, rows: int) -> dict[str, Any]:
    from botocore.config import Config

    from async_refimport.aws.clients import sync_client
    from benchmarks._common import EmulatorProcess

    with (
        tempfile.TemporaryDirectory() as directory,
        EmulatorProcess(time_scale=TIME_SCALE, store_quota=1) as emu,
    ):
        _write_profiles(directory, accounts)
        uris = emu.upload_genomes(min(rows, 20), bases=1_000)
        stores = []
        for i in range(accounts):
            omics = sync_client(
                "omics",
                endpoint_url=emu.omics_endpoint_url,
                region_name="us-east-1",
                aws_access_key_id=_key(i),
                aws_secret_access_key="fanout-secret-not-real",
                config=Config(inject_host_prefix=False),
            )
            stores.append(str(omics.create_reference_store(name=f"fanout-{i}")["id"]))
        spec = {
            "stores": stores,
            "rows": rows,
            "uris": uris,
            "omics": emu.omics_endpoint_url,
            "s3": emu.endpoints["s3_endpoint_url"],
            "journal": os.path.join(directory, "journal.sqlite"),
        }
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.fanout", "--child-import", json.dumps(spec)],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ),
        ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _child_import(spec_json: str) -> None:
    from benchmarks._common import quiet_logs

    quiet_logs()
    gc.callbacks.append(_gc_timer)
    profile_to = os.environ.get("FANOUT_PROFILE")
    sampled_to = os.environ.get("FANOUT_PY_SPY")
    if sampled_to:  # py-spy (installed apart), sampling this process until it exits
        py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        command = [py_spy, "record", "--pid", str(os.getpid()), "--rate", "250"]
        quiet = subprocess.DEVNULL  # this process's stdout is its answer
        subprocess.Popen(
            [*command, "--format", "raw", "-o", sampled_to], stdout=quiet, stderr=quiet
        )
        time.sleep(2.0)  # attached before the run begins
    if not profile_to:
        print(json.dumps(asyncio.run(_import(json.loads(spec_json)))))
        return
    import cProfile

    # A profile of the importing process only (the emulator is another process).
    profiler = cProfile.Profile(time.process_time)
    result = profiler.runcall(asyncio.run, _import(json.loads(spec_json)))
    profiler.dump_stats(profile_to)
    print(json.dumps(result))


SECTION = "Fan-out across accounts"
COLUMNS = (
    ("accounts", "accounts (stores)"),
    ("rows", "rows"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("cpu_per_store_ms", "CPU ms / store"),
    ("gc_per_store_ms", "of which GC"),
    ("calls_per_store", "API calls / store"),
    ("cpu_per_call_ms", "CPU ms / call"),
    ("last_first_start_s", "last store's 1st Start s"),
    ("makespan_s", "makespan s"),
)


def section_lines(results: list[dict[str, Any]]) -> list[str]:
    """The RESULTS.md section of an ``--import`` run.

    Args:
        results: One figure set per number of accounts (:func:`_import_run`).

    Returns:
        The section's lines, its heading first.
    """
    lines = [
        f"## {SECTION}",
        "",
        "`python -m benchmarks.fanout --import --accounts 1,10,50,100,200 --results`: one Importer,",
        "a store per account (a profile each in `AWS_CONFIG_FILE`/`AWS_SHARED_CREDENTIALS_FILE`),",
        f"{results[0]['rows'] // max(1, results[0]['accounts'])} rows per store, sources checked "
        f"in the emulator's S3, time scale {TIME_SCALE}. CPU is the importing process's (user +",
        "system, every thread) from the Importer's opening to the last row's end; GC is the",
        "garbage collector's share of it. Nearly every API call is a status poll",
        "(GetReferenceImportJob), and how many a job takes follows how long it runs in wall-clock",
        "time: on a loaded machine more polls, and more CPU per store, for the same work.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in results:
        lines.append("| " + " | ".join(f"{r.get(key, '')}" for key, _ in COLUMNS) + " |")
    return lines


def _import_table(
    accounts: list[int], rows: int, as_json: bool, results_md: str | None = None
) -> None:
    results = []
    for n in accounts:
        results.append(_import_run(n, rows))
        calls = results[-1]["calls_per_store"]
        results[-1]["cpu_per_call_ms"] = round(results[-1]["cpu_per_store_ms"] / calls, 2)
        if as_json:
            print(json.dumps(results[-1]), flush=True)
    lines = section_lines(results)
    if results_md:
        from pathlib import Path

        from benchmarks._common import splice_section

        splice_section(Path(results_md), SECTION, lines)
    print("\n".join(lines[-len(results) - 2 :]))


def main(argv: list[str] | None = None) -> None:
    """Run every (mode, N) in a fresh process and print a table (and ``--json`` lines).

    Args:
        argv: The command line (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout")
    parser.add_argument("--accounts", default="1,10,40,100")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--import", dest="imports", action="store_true")
    parser.add_argument("--rows", type=int, default=10, help="rows per store (--import)")
    parser.add_argument(
        "--results",
        nargs="?",
        const=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"),
        help="splice the --import figures into this RESULTS.md (default: the benchmarks')",
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--child-import", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if args.child_import:
        _child_import(args.child_import)
        return
    if args.imports:
        accounts = [int(x) for x in args.accounts.split(",")]
        _import_table(accounts, args.rows, args.json, args.results)
        return
    rows = []
    for n in (int(x) for x in args.accounts.split(",")):
        for mode in args.modes.split(","):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.fanout", "--child", mode, str(n)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    print(f"{'mode':<9} {'accounts':>8} {'RSS +MiB':>9} {'MiB/acct':>9} {'CPU ms/acct':>12}")
    for r in rows:
        print(
            f"{r['mode']:<9} {r['accounts']:>8} {r['rss_growth_mib']:>9} "
            f"{r['rss_per_account_mib']:>9} {r['cpu_per_account_ms']:>12}"
        )


if __name__ == "__main__":
    main()
