"""``python -m benchmarks.fanout [--accounts 1,10,40,100,200]``: what an account costs in SDK memory.

For N accounts (a profile each, in a temporary ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE``)
it makes an omics and an S3 client per profile, as a fan-out over N stores does, and reports the
growth of the process's resident memory and the CPU it took, in two ways, each in a fresh process:

* ``separate``: an ``aioboto3.Session`` per profile with its own botocore loader (what every AWS
  caller did before :mod:`async_refimport.aws.clients`);
* ``pool``: one :class:`~async_refimport.aws.clients.ClientPool`, whose sessions share one loader.

No request is sent: the clients point at an endpoint nobody listens on (issue 23).
"""

from __future__ import annotations

import argparse
import asyncio
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


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_profiles(directory: str, accounts: int) -> None:
    with open(os.path.join(directory, "config"), "w") as config:
        for i in range(accounts):
            config.write(f"[profile acct{i}]\nregion = us-east-1\n\n")
    with open(os.path.join(directory, "credentials"), "w") as credentials:
        for i in range(accounts):
            credentials.write(
                f"[acct{i}]\naws_access_key_id = AKIAFANOUT{i:010d}\n"
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


def main(argv: list[str] | None = None) -> None:
    """Run every (mode, N) in a fresh process and print a table (and ``--json`` lines).

    Args:
        argv: The command line (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout")
    parser.add_argument("--accounts", default="1,10,40,100")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
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
