"""model.scheduler on its own: plain Python, no tensors, a fake runner in place of the model.

Admission into free slots and refusal at capacity, a join's reset/prefix/sampling handed to the
runner once, late slots masked out and counted, the bounded inboxes (dropped and skipped frames,
refused events), leaving and rejoining a slot, and a seeded random run whose accounting must add up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from model.protocol import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from model.scheduler import Sampling, Scheduler, TickPlan


@dataclass
class FakeSlot:
    """What the runner's state for one slot has taken in since its last reset."""

    prefix: list[int] | None = None
    sampling: Sampling | None = None
    frames: list[bytes] = field(default_factory=list)
    frame_index: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)


class FakeRunner:
    """Executes plans the way `model.runner.Runner` does (resets, then sampling, then prefixes, then
    the step), on plain Python state; checks the plan's shape as it goes."""

    def __init__(self, max_slots: int) -> None:
        self.slots: list[FakeSlot | None] = [None] * max_slots  # None: never reset
        self.plans: list[TickPlan] = []

    def execute(self, plan: TickPlan) -> dict[int, int]:
        assert plan.step == sorted(set(plan.step)), "step is ascending, each slot once"
        assert set(plan.frames) == set(plan.frame_index) == set(plan.step)
        assert set(plan.events) <= set(plan.step), "events only for slots that step"
        assert all(plan.events.values()), "no empty event chunk"
        self.plans.append(plan)
        for slot in plan.resets:
            self.slots[slot] = FakeSlot()
        for slot, sampling in plan.sampling.items():
            self.slots[slot].sampling = sampling
        for slot, prefix in plan.prefills.items():
            self.slots[slot].prefix = prefix
        for slot in plan.step:
            state = self.slots[slot]
            assert state is not None, f"slot {slot} stepped before it was ever reset"
            state.frames.append(plan.frames[slot])
            state.frame_index.append(plan.frame_index[slot])
            state.events.extend(plan.events.get(slot, []))
        return {slot: plan.frame_index[slot] for slot in plan.step}


def tick(s: Scheduler, runner: FakeRunner) -> TickPlan:
    plan = s.plan()
    runner.execute(plan)
    return plan


def test_sampling_defaults_are_the_protocols():
    assert (Sampling().temperature, Sampling().top_p) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P)


def test_admission_takes_the_lowest_free_slot_and_refuses_at_capacity():
    with pytest.raises(ValueError, match="max_slots=0"):
        Scheduler(max_slots=0, max_event_tokens=4)
    s = Scheduler(max_slots=3, max_event_tokens=4)
    assert [s.admit(name, [], Sampling()) for name in "abc"] == [0, 1, 2]
    assert s.active == 3
    assert s.admit("d", [], Sampling()) is None and s.active == 3  # refused, nothing changed
    assert s.release(1) is not None and s.active == 2
    assert s.release(1) is None and s.stats(1) is None  # leaving twice frees nothing twice
    assert s.admit("e", [], Sampling()) == 1
    s.release(2)
    s.release(0)
    assert s.admit("f", [], Sampling()) == 0 and s.admit("g", [], Sampling()) == 2
    assert s.admit("h", [], Sampling()) is None


def test_a_join_is_reset_pinned_and_handed_to_the_runner_once():
    s = Scheduler(max_slots=2, max_event_tokens=4)
    prefix, sampling = [5, 6, 7], Sampling(temperature=0.3, top_p=0.5, seed=11)
    slot = s.admit("a", prefix, sampling)
    prefix.append(99)  # the caller's list is not the pinned prefix
    plan = s.plan()
    assert plan.tick == 0 and plan.resets == [slot]
    assert plan.prefills == {slot: [5, 6, 7]} and plan.sampling == {slot: sampling}
    assert plan.step == [] and plan.frames == {} and plan.events == {}  # no frame yet: nothing steps
    again = s.plan()
    assert again.tick == 1 and again.resets == [] and again.prefills == {} and again.sampling == {}
    assert s.stats(slot).late == 0  # not late before its first frame


def test_a_slot_whose_frame_did_not_arrive_is_masked_out_and_counted_late():
    s, runner = Scheduler(max_slots=3, max_event_tokens=4), FakeRunner(3)
    a, b, c = (s.admit(name, [], Sampling()) for name in "abc")
    s.push_frame(a, b"a0")
    s.push_frame(b, b"b0")
    assert tick(s, runner).step == [a, b]  # c has sent nothing yet
    s.push_frame(b, b"b1")
    plan = tick(s, runner)
    assert plan.step == [b] and plan.frames == {b: b"b1"} and plan.frame_index == {b: 1}
    assert (s.stats(a).late, s.stats(b).late, s.stats(c).late) == (1, 0, 0)
    assert s.total_late == 1
    tick(s, runner)  # both late now
    assert (s.stats(a).late, s.stats(b).late, s.total_late) == (2, 1, 3)
    s.push_frame(a, b"a1")
    plan = tick(s, runner)
    # a resumes where it stopped: its next frame, its state advanced only on the ticks it stepped.
    assert plan.step == [a] and plan.frame_index == {a: 1}
    assert runner.slots[a].frames == [b"a0", b"a1"] and runner.slots[b].frames == [b"b0", b"b1"]
    assert runner.slots[c].frames == []
    assert (s.stats(a).stepped, s.stats(a).frames, s.stats(b).stepped) == (2, 2, 2)


def test_a_full_inbox_drops_the_oldest_frames_and_counts_them():
    s = Scheduler(max_slots=2, max_event_tokens=4, max_queued_frames=2)
    slot, other = s.admit("a", [], Sampling()), s.admit("b", [], Sampling())
    assert [s.push_frame(slot, f"F{i}".encode()) for i in range(5)] == [0, 0, 1, 1, 1]
    s.push_frame(other, b"G0")
    assert s.stats(slot).dropped == 3 and s.stats(slot).frames == 5 and s.total_dropped == 3
    assert s.stats(other).dropped == 0
    first, second, third = s.plan(), s.plan(), s.plan()
    assert (first.frames[slot], first.frame_index[slot]) == (b"F3", 3)  # the newest two were kept
    assert (second.frames[slot], second.frame_index[slot]) == (b"F4", 4)
    assert third.step == [] and s.stats(slot).late == 1
    assert s.stats(slot).stepped == 2 and s.stats(slot).skipped == 0


def test_events_wait_for_their_slot_to_step_and_a_full_backlog_is_refused():
    s = Scheduler(max_slots=1, max_event_tokens=3, max_pending_event_tokens=5)
    slot = s.admit("a", [], Sampling())
    assert s.push_event(slot, [1, 2, 3, 4])
    assert not s.push_event(slot, [5, 6])  # 4 + 2 > 5: refused whole, nothing queued
    assert s.push_event(slot, [5])  # exactly the limit is taken
    assert s.plan().events == {}  # no frame: the slot does not step, its events wait
    s.push_frame(slot, b"F0")
    assert s.plan().events == {slot: [1, 2, 3]}  # at most max_event_tokens a tick, in order
    assert s.push_event(slot, [6, 7, 8])  # room again: 2 pending + 3
    got = []
    for i in range(1, 4):
        s.push_frame(slot, f"F{i}".encode())
        got.append(s.plan().events.get(slot))
    assert got == [[4, 5, 6], [7, 8], None]


def test_words_mode_queues_and_pops_whole_events():
    with pytest.raises(ValueError, match="event_repr='tokens' must be one of bytes, words"):
        Scheduler(max_slots=1, max_event_tokens=2, event_repr="tokens")
    s, runner = (
        Scheduler(max_slots=1, max_event_tokens=2, event_repr="words", max_pending_events=3),
        FakeRunner(1),
    )
    slot = s.admit("a", [], Sampling())
    reply = [270, *range(100)]  # longer than any token budget, still one event
    assert s.push_event(slot, reply) and s.push_event(slot, [264]) and s.push_event(slot, [265, 52])
    assert not s.push_event(slot, [266])  # a fourth pending event is refused whole
    reply.append(7)  # the caller's list is not the queued event
    got = []
    for i in range(3):
        s.push_frame(slot, f"F{i}".encode())
        got.append(tick(s, runner).events.get(slot))
    assert got == [[[270, *range(100)], [264]], [[265, 52]], None]  # at most 2 events a tick, in order
    assert s.push_event(slot, [266])  # room again


def test_scheduler_plans_ready_slots_and_chunks_events():
    s = Scheduler(max_slots=3, max_event_tokens=4, max_queued_frames=2)
    a = s.admit("a", [1, 2], Sampling())
    b = s.admit("b", [], Sampling())
    c = s.admit("c", [], Sampling())
    assert s.admit("d", [], Sampling()) is None
    s.push_frame(a, b"A0")
    s.push_frame(c, b"C0")
    s.push_event(a, list(range(10)))
    plan = s.plan()
    assert plan.step == [a, c] and plan.resets == [a, b, c] and plan.prefills[a] == [1, 2]
    assert plan.events == {a: [0, 1, 2, 3]}
    plan = s.plan()  # nobody sent: a and c are late, b never started
    assert plan.step == [] and s.stats(a).late == 1 and s.stats(b).late == 0
    for i in range(4):
        s.push_frame(a, f"A{i + 1}".encode())
    assert s.stats(a).dropped == 2
    plan = s.plan()
    assert plan.frames[a] == b"A3" and plan.events[a] == [4, 5, 6, 7] and plan.resets == []
    s.release(b)
    assert s.admit("e", [9], Sampling()) == b


def test_scheduler_skips_a_frame_when_a_backlog_stands():
    s = Scheduler(max_slots=1, max_event_tokens=4, max_queued_frames=3, catch_up_after=3)
    slot = s.admit("a", [], Sampling())
    s.push_frame(slot, b"F0")  # one frame of backlog, then frames arrive exactly at the tick rate
    stepped = []
    for i in range(1, 8):
        s.push_frame(slot, f"F{i}".encode())
        stepped.append(s.plan().frames[slot])
    # After 3 ticks with a frame waiting behind the stepped one, one frame is skipped: caught up.
    assert stepped == [b"F0", b"F1", b"F3", b"F4", b"F5", b"F6", b"F7"]
    assert s.stats(slot).skipped == 1 and s.total_skipped == 1
    # Jitter (nothing for a tick, then two at once) never skips.
    assert s.plan().step == []
    s.push_frame(slot, b"F8")
    s.push_frame(slot, b"F9")
    assert s.plan().frames[slot] == b"F8" and s.plan().frames[slot] == b"F9"
    assert s.stats(slot).skipped == 1


def test_a_skip_shows_in_the_frame_index_and_needs_the_backlog_ticks_in_a_row():
    s = Scheduler(max_slots=1, max_event_tokens=4, max_queued_frames=4, catch_up_after=2)
    slot = s.admit("a", [], Sampling())
    pushed = 0

    def step(arrivals: int) -> int | None:
        nonlocal pushed
        for _ in range(arrivals):
            s.push_frame(slot, f"F{pushed}".encode())
            pushed += 1
        plan = s.plan()
        return plan.frame_index.get(slot)

    # A backlog of one tick, then a tick with no frame waiting behind: the count starts again.
    assert [step(2), step(0), step(2), step(0)] == [0, 1, 2, 3]
    assert s.stats(slot).skipped == 0
    # Two ticks in a row with a frame waiting: frame 5 is skipped, and the turn says frame 6.
    assert [step(2), step(1)] == [4, 6]
    assert s.stats(slot).skipped == 1 and step(0) is None and s.stats(slot).late == 1
    # Two frames behind: a skip starts the count again, so it takes two skips, two ticks apart.
    assert [step(3), step(1), step(1), step(1), step(1)] == [7, 9, 10, 12, 13]
    assert s.stats(slot).skipped == 3 and s.total_skipped == 3


def test_leaving_frees_the_slot_and_the_next_session_starts_clean():
    s, runner = Scheduler(max_slots=1, max_event_tokens=2), FakeRunner(1)
    first = Sampling(seed=1)
    slot = s.admit("a", [1, 2], first)
    s.push_frame(slot, b"a0")
    s.push_event(slot, [10, 11, 12])
    tick(s, runner)
    assert runner.slots[slot].events == [10, 11]
    s.push_frame(slot, b"a1")  # still queued when the session leaves, with event token 12
    s.push_frame(slot, b"a2")
    stats = s.release(slot)
    assert (stats.frames, stats.stepped) == (3, 1) and s.active == 0
    assert tick(s, runner).step == []  # a free slot does not step, nor count late
    assert s.total_late == 0
    second = Sampling(seed=2)
    assert s.admit("b", [7], second) == slot
    s.push_frame(slot, b"b0")
    plan = tick(s, runner)
    assert plan.resets == [slot] and plan.frame_index == {slot: 0}
    state = runner.slots[slot]
    assert state.prefix == [7] and state.sampling is second
    assert state.frames == [b"b0"] and state.events == []  # nothing of the first session's
    assert s.stats(slot).frames == 1 and s.stats(slot).late == 0


@pytest.mark.parametrize("seed", range(5))
def test_a_random_run_accounts_for_every_frame_and_event(seed):
    """Sessions join, leave, send frames early, late, in bursts, and events; the fake runner checks
    each plan. Per session: every tick after its first frame it either steps or is late; frames step
    in order, each once, and its own only; received = stepped + dropped + skipped once drained;
    events arrive in order, as much as a tick allows whenever it steps."""
    rng = random.Random(seed)
    max_events, max_queued = 3, 3
    s = Scheduler(
        max_slots=4,
        max_event_tokens=max_events,
        max_queued_frames=max_queued,
        max_pending_event_tokens=8,
        catch_up_after=3,
    )
    runner = FakeRunner(4)
    live: dict[int, dict] = {}  # slot -> what the test sent and saw for its session
    finished: list[tuple[dict, object]] = []
    names = iter(range(10_000))

    def check_events(session: dict) -> None:
        assert session["events_seen"] == session["events_sent"][: len(session["events_seen"])]

    for t in range(400):
        draining = t >= 380  # the last ticks: no new frames, no joins or leaves
        if not draining and rng.random() < 0.15:
            name = f"s{next(names)}"
            slot = s.admit(name, [len(name)], Sampling(seed=t))
            if slot is None:
                assert len(live) == 4
            else:
                live[slot] = {
                    "name": name,
                    "pushed": 0,
                    "started_at": None,
                    "ticks": 0,
                    "events_sent": [],
                    "events_seen": [],
                    "joined_at": len(runner.plans),
                }
        if not draining and live and rng.random() < 0.08:
            slot = rng.choice(sorted(live))
            finished.append((live.pop(slot), s.release(slot)))
        for slot, session in live.items():
            arrivals = 0 if draining else rng.choices([0, 1, 2], [0.2, 0.65, 0.15])[0]
            for _ in range(arrivals):
                s.push_frame(slot, f"{session['name']}:{session['pushed']}".encode())
                session["pushed"] += 1
                if session["started_at"] is None:
                    session["started_at"] = len(runner.plans)
            if not draining and rng.random() < 0.2:
                tokens = [rng.randrange(256) for _ in range(rng.randint(1, 4))]
                pending = len(session["events_sent"]) - len(session["events_seen"])
                assert s.push_event(slot, tokens) == (pending + len(tokens) <= 8)
                if pending + len(tokens) <= 8:
                    session["events_sent"].extend(tokens)
        plan = tick(s, runner)
        for slot, session in live.items():
            if plan.tick == session["joined_at"]:
                assert slot in plan.resets and plan.prefills[slot] == [len(session["name"])]
            if session["started_at"] is not None:
                session["ticks"] += 1
            if slot in plan.step:
                pending = len(session["events_sent"]) - len(session["events_seen"])
                chunk = plan.events.get(slot, [])
                assert len(chunk) == min(max_events, pending)
                session["events_seen"].extend(chunk)
                check_events(session)

    for slot, session in live.items():
        stats, state = s.stats(slot), runner.slots[slot]
        assert stats.frames == session["pushed"]
        assert stats.stepped + stats.late == session["ticks"]
        assert stats.frames == stats.stepped + stats.dropped + stats.skipped  # drained: nothing queued
        assert len(state.frames) == stats.stepped
        assert state.frame_index == sorted(set(state.frame_index))  # in order, each once
        assert state.frames == [f"{session['name']}:{i}".encode() for i in state.frame_index]
        assert state.events == session["events_seen"]
    for session, stats in finished:
        assert stats.frames == session["pushed"] >= stats.stepped + stats.dropped + stats.skipped
        check_events(session)
    everyone = [s.stats(slot) for slot in live] + [stats for _, stats in finished]
    assert s.total_late == sum(x.late for x in everyone) > 0
    assert s.total_dropped == sum(x.dropped for x in everyone) > 0
    assert s.total_skipped == sum(x.skipped for x in everyone) > 0
    assert len(finished) > 3
