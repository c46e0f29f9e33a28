import itertools

import pytest

from fe.routineload.state import (
    AUTO_RESUME_MAX_TIMES,
    AUTO_RESUME_WINDOW_MS,
    TRANSITIONS,
    AutoResumePolicy,
    IllegalTransition,
    JobState,
    JobStateMachine,
    PauseReasonKind,
    allowed_targets,
    check_alter,
    check_pause,
    check_resume,
    check_stop,
    check_transition,
    should_auto_resume,
)

NS, RUN, PAU, STP, CAN = (JobState.NEED_SCHEDULE, JobState.RUNNING, JobState.PAUSED,
                          JobState.STOPPED, JobState.CANCELLED)

ALLOWED = {
    (NS, RUN), (NS, PAU), (NS, STP), (NS, CAN),
    (RUN, NS), (RUN, PAU), (RUN, STP), (RUN, CAN),
    (PAU, NS), (PAU, STP), (PAU, CAN),
}
ALL_PAIRS = list(itertools.product(JobState, JobState))


def test_is_final():
    assert [s for s in JobState if s.is_final] == [STP, CAN]


def test_table_matches_the_documented_moves():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


def test_table_is_read_only():
    with pytest.raises(TypeError):
        TRANSITIONS[STP] = frozenset({RUN})  # type: ignore[index]


@pytest.mark.parametrize("current,target", sorted(ALLOWED, key=str))
def test_allowed_transition(current, target):
    m = JobStateMachine("j1", current)
    assert m.transition_to(target, "because", 1000, kind=PauseReasonKind.USER) is target
    assert m.state is target
    assert m.reason == "because"
    assert m.history == [(current, target, "because", 1000)]


@pytest.mark.parametrize("current,target",
                         sorted((p for p in ALL_PAIRS if p not in ALLOWED), key=str))
def test_refused_transition(current, target):
    m = JobStateMachine("j1", current, reason="old")
    with pytest.raises(IllegalTransition) as ei:
        m.transition_to(target, "new", 1000, kind=PauseReasonKind.USER)
    assert ei.value.code == "FAILED_PRECONDITION"
    assert ei.value.job_name == "j1"
    assert ei.value.current is current
    assert ei.value.requested == f"move to {target.value}"
    assert ei.value.allowed == tuple(allowed_targets(current))
    assert m.state is current and m.reason == "old" and m.history == []


def test_refused_message_lists_allowed_targets():
    with pytest.raises(IllegalTransition) as ei:
        check_transition("j1", PAU, RUN)
    assert str(ei.value) == ("routine load job 'j1' is PAUSED; cannot move to RUNNING: "
                             "allowed targets: NEED_SCHEDULE, STOPPED, CANCELLED")


def test_refused_message_from_final_state():
    with pytest.raises(IllegalTransition) as ei:
        check_transition("j1", CAN, NS)
    assert str(ei.value) == "routine load job 'j1' is CANCELLED; cannot move to NEED_SCHEDULE: CANCELLED is final"
    assert ei.value.allowed == ()


def test_allowed_targets_order():
    assert allowed_targets(NS) == [RUN, PAU, STP, CAN]
    assert allowed_targets(RUN) == [NS, PAU, STP, CAN]
    assert allowed_targets(STP) == []


def test_pause_records_time_and_kind_and_resume_clears_kind():
    m = JobStateMachine("j1", RUN)
    m.transition_to(PAU, "too few replicas", 5000, kind=PauseReasonKind.TOO_FEW_REPLICAS)
    assert (m.pause_time_ms, m.end_time_ms, m.reason_kind) == (5000, None, PauseReasonKind.TOO_FEW_REPLICAS)
    m.transition_to(NS, "resumed", 6000)
    assert (m.state, m.pause_time_ms, m.reason_kind, m.reason) == (NS, 5000, None, "resumed")
    m.transition_to(RUN, "scheduled", 7000)
    assert m.history == [(RUN, PAU, "too few replicas", 5000), (PAU, NS, "resumed", 6000),
                         (NS, RUN, "scheduled", 7000)]


def test_pause_needs_a_kind():
    m = JobStateMachine("j1", RUN)
    with pytest.raises(ValueError) as ei:
        m.transition_to(PAU, "x", 1)
    assert str(ei.value) == "routine load job 'j1': a pause needs a PauseReasonKind"
    assert m.state is RUN


@pytest.mark.parametrize("final", [STP, CAN])
def test_final_state_sets_end_time(final):
    m = JobStateMachine("j1", PAU, pause_time_ms=10)
    m.transition_to(final, "table dropped", 9000, kind=PauseReasonKind.TABLE_DROPPED if final is CAN else None)
    assert m.end_time_ms == 9000
    assert m.pause_time_ms == 10


def test_to_dict_round_trip():
    m = JobStateMachine("j1", RUN)
    m.transition_to(PAU, "error rows", 42, kind=PauseReasonKind.ERROR_ROWS)
    d = m.to_dict()
    assert d == {"job_name": "j1", "state": "PAUSED", "reason": "error rows", "reason_kind": "ERROR_ROWS",
                 "pause_time_ms": 42, "end_time_ms": None}
    r = JobStateMachine.from_dict(d)
    assert (r.job_name, r.state, r.reason, r.reason_kind, r.pause_time_ms, r.end_time_ms) == (
        "j1", PAU, "error rows", PauseReasonKind.ERROR_ROWS, 42, None)


def test_replay_of_each_snapshot_gives_same_state():
    live = JobStateMachine("j1")
    for target, reason, t, kind in [(RUN, "s", 1, None), (PAU, "u", 2, PauseReasonKind.USER),
                                    (NS, "r", 3, None), (STP, "stop", 4, None)]:
        live.transition_to(target, reason, t, kind=kind)
        record = live.to_dict()
        assert JobStateMachine.from_dict(record).to_dict() == record
    assert live.to_dict() == {"job_name": "j1", "state": "STOPPED", "reason": "stop", "reason_kind": None,
                              "pause_time_ms": 2, "end_time_ms": 4}


# ---- operator verbs --------------------------------------------------------------------------------

def _verb_message(fn, state):
    with pytest.raises(IllegalTransition) as ei:
        fn(state, "j1")
    assert ei.value.code == "FAILED_PRECONDITION"
    return str(ei.value)


@pytest.mark.parametrize("state", [NS, RUN])
def test_pause_allowed(state):
    assert check_pause(state, "j1") is PAU


def test_pause_refused():
    assert _verb_message(check_pause, PAU) == "routine load job 'j1' is PAUSED; cannot PAUSE: it is already PAUSED"
    assert _verb_message(check_pause, STP) == "routine load job 'j1' is STOPPED; cannot PAUSE: STOPPED is final"
    assert _verb_message(check_pause, CAN) == "routine load job 'j1' is CANCELLED; cannot PAUSE: CANCELLED is final"


def test_resume_only_from_paused():
    assert check_resume(PAU, "j1") is NS
    assert _verb_message(check_resume, STP) == "routine load job 'j1' is STOPPED; cannot RESUME: STOPPED is final"
    assert _verb_message(check_resume, CAN) == "routine load job 'j1' is CANCELLED; cannot RESUME: CANCELLED is final"
    assert _verb_message(check_resume, RUN) == (
        "routine load job 'j1' is RUNNING; cannot RESUME: only a PAUSED job can be resumed")
    assert _verb_message(check_resume, NS) == (
        "routine load job 'j1' is NEED_SCHEDULE; cannot RESUME: only a PAUSED job can be resumed")


@pytest.mark.parametrize("state", [NS, RUN, PAU])
def test_stop_from_any_non_final(state):
    assert check_stop(state, "j1") is STP


def test_stop_refused_when_final():
    assert _verb_message(check_stop, STP) == "routine load job 'j1' is STOPPED; cannot STOP: STOPPED is final"
    assert _verb_message(check_stop, CAN) == "routine load job 'j1' is CANCELLED; cannot STOP: CANCELLED is final"


def test_alter_only_while_paused():
    assert check_alter(PAU, "j1") is None
    for state in (NS, RUN):
        assert _verb_message(check_alter, state) == (
            f"routine load job 'j1' is {state.value}; cannot ALTER: only a PAUSED job can be altered; PAUSE it first")
    assert _verb_message(check_alter, STP) == "routine load job 'j1' is STOPPED; cannot ALTER: STOPPED is final"


@pytest.mark.parametrize("verb", [check_pause, check_resume, check_stop])
@pytest.mark.parametrize("state", list(JobState))
def test_verb_targets_are_in_the_table(verb, state):
    try:
        target = verb(state, "j1")
    except IllegalTransition:
        return
    assert target in TRANSITIONS[state]


# ---- pause reasons and auto-resume ---------------------------------------------------------------

def test_only_too_few_replicas_is_auto_resumable():
    assert [k for k in PauseReasonKind if k.auto_resumable] == [PauseReasonKind.TOO_FEW_REPLICAS]
    assert [k.value for k in PauseReasonKind] == ["USER", "ERROR_ROWS", "OFFSET_OUT_OF_RANGE",
                                                  "TOO_FEW_REPLICAS", "KAFKA_ERROR", "TABLE_DROPPED"]


def test_auto_resume_constants():
    assert (AUTO_RESUME_MAX_TIMES, AUTO_RESUME_WINDOW_MS) == (3, 300_000)


def test_auto_resume_three_in_five_minutes_then_refused_until_oldest_leaves():
    p = AutoResumePolicy()
    for t in (0, 60_000, 120_000):
        assert p.may_auto_resume(t) is True
        p.record(t)
    assert p.may_auto_resume(180_000) is False
    assert p.may_auto_resume(299_999) is False
    assert p.may_auto_resume(300_000) is True  # the resume at 0 is exactly 5 minutes old: out
    p.record(300_000)
    assert p.resumed_at_ms == [60_000, 120_000, 300_000]
    assert p.may_auto_resume(300_001) is False
    assert p.may_auto_resume(360_000) is True


def test_auto_resume_from_given_history():
    p = AutoResumePolicy([10_000, 20_000, 30_000])
    assert p.may_auto_resume(40_000) is False
    assert p.may_auto_resume(310_000) is True


def test_may_auto_resume_does_not_mutate():
    p = AutoResumePolicy([0])
    p.may_auto_resume(1_000_000)
    assert p.resumed_at_ms == [0]


def test_reset_after_manual_resume():
    p = AutoResumePolicy([1, 2, 3])
    p.reset()
    assert p.resumed_at_ms == [] and p.may_auto_resume(4) is True


def test_should_auto_resume():
    p = AutoResumePolicy()
    assert should_auto_resume(PAU, PauseReasonKind.TOO_FEW_REPLICAS, p, 0) is True
    assert should_auto_resume(PAU, PauseReasonKind.USER, p, 0) is False
    assert should_auto_resume(PAU, PauseReasonKind.ERROR_ROWS, p, 0) is False
    assert should_auto_resume(PAU, None, p, 0) is False
    assert should_auto_resume(RUN, PauseReasonKind.TOO_FEW_REPLICAS, p, 0) is False
    full = AutoResumePolicy([0, 1, 2])
    assert should_auto_resume(PAU, PauseReasonKind.TOO_FEW_REPLICAS, full, 3) is False
