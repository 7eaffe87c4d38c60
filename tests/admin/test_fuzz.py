"""Property-based fuzzing of every admin route from its own OpenAPI schema (schemathesis), against
the real admin process over HTTP, with valid and invalid data: no 5xx, every status code and body
as documented, no route that ignores its API key. Its own Redis: the fuzzer deletes things."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from admin.core.config import Settings
from admin.main import create_app
from procs.redis_server import EmbeddedRedis
from tests.admin.conftest import AdminProcess, make_key

pytestmark = pytest.mark.timeout(300)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.ignored_auth,
]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    server = EmbeddedRedis(base / "redis").start()
    admin = AdminProcess(
        server.url,
        base / "admin.log",
        rate_limit_requests=1_000_000,
        model_health_urls='["http://127.0.0.1:9/healthz"]',
        scrape_timeout_s=0.2,
    ).start()
    key = make_key(server.url, "admin", "fuzzer")
    yield admin, key
    admin.stop()
    server.stop()


# The schema the admin app serves, built at collection time (schemathesis's lazy loading from a
# fixture does not work with this pytest); `test_the_served_schema_is_the_fuzzed_one` checks that
# the running process serves this same document.
OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_served_schema_is_the_fuzzed_one(fuzz_target):
    admin, _ = fuzz_target
    with admin.client() as client:
        assert client.get("/openapi.json").json() == OPENAPI
        assert client.get("/docs").status_code == 200


@schema.parametrize()
@settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
def test_every_route_keeps_to_its_schema(case, fuzz_target):
    admin, key = fuzz_target
    case.call_and_validate(base_url=admin.url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
