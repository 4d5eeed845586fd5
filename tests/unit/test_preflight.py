"""The pre-flight's decisions with a fake S3: each object once, failures, and the off switch."""

from __future__ import annotations

import anyio

from async_refimport import PreflightPolicy, StoreRef
from async_refimport.aws.preflight import Preflight, SourceMissing, SourceUncheckable


class FakeS3:
    def __init__(self, sizes: dict[str, int], denied: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.sizes, self.denied, self.heads = sizes, denied, 0
        self.in_flight = self.most_in_flight = 0

    async def size(self, uri: str, profile: str | None = None) -> int:
        self.heads += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await anyio.sleep(0.001)
        self.in_flight -= 1
        if uri in self.denied:
            raise SourceUncheckable(f"{uri}: S3 answered 403 AccessDenied")
        if uri not in self.sizes:
            raise SourceMissing(f"{uri}: not found in S3 (404)")
        return self.sizes[uri]

    async def aclose(self) -> None:
        pass


async def test_sizes_failures_and_each_object_once() -> None:
    s3 = FakeS3({f"s3://b/{i}.fa": 100 + i for i in range(40)} | {"s3://b/huge.fa": 10**12})
    preflight = Preflight(s3, PreflightPolicy(concurrency=4, max_bytes=10**9))  # type: ignore[arg-type]
    uris = [f"s3://b/{i}.fa" for i in range(40)] + ["s3://b/huge.fa", "s3://b/gone.fa"]
    found = await preflight.check((u, None) for u in uris)
    assert found["s3://b/3.fa"].size == 103 and found["s3://b/3.fa"].failure is None
    assert "over the service's limit" in (found["s3://b/huge.fa"].failure or "")
    assert found["s3://b/gone.fa"].failure == "s3://b/gone.fa: not found in S3 (404)"
    assert s3.most_in_flight <= 4
    await preflight.check((u, None) for u in uris)
    assert s3.heads == len(uris)  # kept: never asked twice
    assert preflight.size("s3://b/7.fa") == 107 and preflight.size("s3://b/nope.fa") is None


async def test_a_denied_head_turns_the_check_off_and_fails_nothing() -> None:
    s3 = FakeS3({"s3://b/a.fa": 1}, denied={"s3://b/secret.fa"})
    preflight = Preflight(s3, PreflightPolicy(concurrency=1))  # type: ignore[arg-type]
    found = await preflight.check([("s3://b/secret.fa", None), ("s3://b/x.fa", None)])
    assert found == {}  # nothing failed, nothing known
    assert preflight.off_reason == "s3://b/secret.fa: S3 answered 403 AccessDenied"
    assert await preflight.check([("s3://b/a.fa", None)]) == {}
    assert s3.heads == 1


def test_custom_endpoints_are_checked_only_with_their_s3() -> None:
    aws = StoreRef("1234567890", "us-east-1")
    emulated = StoreRef("1234567890", "us-east-1", "http://127.0.0.1:1234")
    plain = Preflight(FakeS3({}), PreflightPolicy())  # type: ignore[arg-type]
    named = Preflight(FakeS3({}), PreflightPolicy(s3_endpoint_url="http://127.0.0.1:5678"))  # type: ignore[arg-type]
    assert plain.applies(aws) and not plain.applies(emulated)
    assert named.applies(emulated)
