"""`parley seed` and `parley bench tools`, run as real processes."""

from __future__ import annotations

import json

import pytest

from procs.redis_server import EmbeddedRedis
from tests.parley.test_cli import parley
from workers.shop import Shop
from workers.store import ShopStore

pytestmark = pytest.mark.timeout(120)


def test_seed_writes_the_shop_to_redis(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        res = parley("seed", "--redis-url", server.url)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        shop = Shop.default()
        assert out == {
            "shop": shop.name,
            "seed": 0,
            "orders": len(shop.orders),
            "customers": len(shop.customers),
        }
        store = ShopStore(server.client())
        order = shop.orders[7]
        assert store.shop_for(order.order_id).orders == (order,)
        assert parley("seed", "--redis-url", server.url, "--shop-seed", "3").returncode == 0
        other = Shop.generate(3)
        assert store.shop().seed == 3 and store.shop_for(other.orders[0].order_id).orders == (
            other.orders[0],
        )
    assert "cannot seed Redis" in parley("seed", "--redis-url", server.url).stderr  # it is gone


def test_bench_tools_prints_figures():
    res = parley("bench", "tools", "--calls", "2", "--seconds", "1", "--throughput-tasks", "40")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["tool_calls"] > 0 and out["added_ms_p50"] > 0 and out["tasks_per_s_per_worker"] > 0
    assert out["router"]["sent"] >= out["tool_calls"]
