"""The simulated shop's memory: every open order filed under its step, picks only among free ones."""

from __future__ import annotations

import random
import uuid
from collections import Counter

from traffic.shop import Bag, Shop


def answer(call, rng: random.Random) -> tuple[int, dict]:
    """What the services would answer, refusing some commands as they can."""
    if call.kind in ("sell stock", "pay order") and rng.random() < 0.1:
        return 409, {}
    return 201, {"id": str(uuid.uuid4()), "version": rng.randint(2, 9), "line_no": rng.randint(2, 9)}


def run(seed: int, calls: int) -> tuple[Shop, list[str]]:
    shop, rng, in_flight, kinds = Shop(seed), random.Random(seed), [], []
    for _ in range(calls):
        call = shop.next_call()
        assert call.subject is None or call.subject not in shop.busy, "picked an order a command is about"
        shop.begin(call)
        in_flight.append(call)
        kinds.append(call.kind)
        if len(in_flight) > 16:  # answers come back in another order than the calls went out
            done = in_flight.pop(rng.randrange(len(in_flight)))
            for follow_up in shop.learn(done, *answer(done, rng)):
                shop.begin(follow_up)
                in_flight.append(follow_up)
                kinds.append(follow_up.kind)
    return shop, kinds


def test_every_open_order_is_filed_under_its_step_once():
    shop, kinds = run(seed=7, calls=5_000)
    filed = Counter(order_id for bag in shop.steps.values() for order_id in bag.keys)
    assert set(filed) == set(shop.orders) and set(filed.values()) == {1}
    for step, bag in shop.steps.items():
        assert all(shop.orders[order_id].step == step for order_id in bag.keys)
    assert set(shop.picks["customers"].keys) == set(shop.customers)
    assert set(shop.picks["products"].keys) == set(shop.products)
    # The whole life of an order happens, not only its first steps.
    assert {"place order", "pay order", "issue invoice", "pay invoice", "ship order", "sell stock"} <= set(kinds)


def test_a_seed_replays_the_same_choices():
    def kinds(seed: int) -> list[str]:
        # Same answers: ids, versions and refusals drawn from a generator seeded alike.
        uuid4, state = uuid.uuid4, random.Random(seed)
        uuid.uuid4 = lambda: uuid.UUID(int=state.getrandbits(128), version=4)
        try:
            shop, made = run(seed, 2_000)
            return made + sorted(shop.orders)
        finally:
            uuid.uuid4 = uuid4

    assert kinds(3) == kinds(3)
    assert kinds(3) != kinds(4)


def test_a_bag_picks_only_free_keys_and_none_when_all_are_busy():
    bag, rng = Bag(), random.Random(1)
    for key in "abcdef":
        bag.add(key)
    bag.discard("c")
    bag.discard("f")  # the last one
    bag.add("a")  # already in
    assert sorted(bag.keys) == ["a", "b", "d", "e"] and {bag.keys[i]: i for i in range(4)} == bag.index
    assert {bag.pick(rng, busy={"a", "b", "d"}) for _ in range(20)} == {"e"}
    assert bag.pick(rng, busy=set("abde")) is None
    assert {bag.pick(rng) for _ in range(200)} == {"a", "b", "d", "e"}
