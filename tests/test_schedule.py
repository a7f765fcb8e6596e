"""CubicSchedule against equation (1) of Zhu & Gupta (2017)."""

import itertools

import pytest

from gradprune.schedule import CubicSchedule

SCHEDULES = [
    CubicSchedule(0.0, 0.9, begin_step=0, frequency=1, n_updates=10),
    CubicSchedule(0.0, 0.875, begin_step=2000, frequency=100, n_updates=50),
    CubicSchedule(0.05, 0.5, begin_step=7, frequency=3, n_updates=13),
    CubicSchedule(0.2, 0.95, begin_step=10, frequency=1000, n_updates=4),
    CubicSchedule(0.0, 0.6, begin_step=5, frequency=4, n_updates=6, exponent=1.0),
]


def formula(s, t):
    """s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^e at a pruning step t."""
    return (
        s.final_sparsity
        + (s.initial_sparsity - s.final_sparsity)
        * (1 - (t - s.begin_step) / (s.n_updates * s.frequency)) ** s.exponent
    )


@pytest.mark.parametrize("s", SCHEDULES, ids=str)
def test_matches_formula_on_every_pruning_step(s):
    assert s.update_steps() == [s.begin_step + k * s.frequency for k in range(s.n_updates + 1)]
    for t in s.update_steps():
        assert s(t) == pytest.approx(formula(s, t), abs=1e-12)
    assert s(s.begin_step) == pytest.approx(s.initial_sparsity, abs=1e-12)


@pytest.mark.parametrize("s", SCHEDULES, ids=str)
def test_held_constant_between_pruning_steps(s):
    updates = s.update_steps()
    for a, b in itertools.pairwise(updates):
        for t in range(a, b):
            assert s(t) == s(a), (t, a)
    # monotone non-decreasing over the whole run
    values = [s(t) for t in range(s.end_step + 3 * s.frequency)]
    assert all(x <= y for x, y in itertools.pairwise(values))


@pytest.mark.parametrize("s", SCHEDULES, ids=str)
def test_zero_before_begin_and_exactly_final_after_end(s):
    for t in range(s.begin_step):
        assert s(t) == 0.0
    assert s.end_step == s.begin_step + s.n_updates * s.frequency
    for t in (s.end_step, s.end_step + 1, s.end_step + s.frequency, s.end_step + 10**7):
        assert s(t) == s.final_sparsity  # exactly, not approximately


@pytest.mark.parametrize("s", SCHEDULES, ids=str)
def test_is_update_step_exactly_on_the_grid(s):
    grid = set(s.update_steps())
    for t in range(s.end_step + 5 * s.frequency + 2):
        assert s.is_update_step(t) == (t in grid), t
    assert len(grid) == s.n_updates + 1


def test_no_intervals_prunes_once_to_final():
    s = CubicSchedule(0.0, 0.7, begin_step=3, frequency=10, n_updates=0)
    assert s.update_steps() == [3]
    assert [s(t) for t in range(6)] == [0.0, 0.0, 0.0, 0.7, 0.7, 0.7]
    assert [s.is_update_step(t) for t in range(6)] == [False, False, False, True, False, False]


def test_with_final_sparsity_keeps_timing():
    s = SCHEDULES[1].with_final_sparsity(0.5)
    assert (s.begin_step, s.frequency, s.n_updates) == (2000, 100, 50)
    assert s(10**6) == 0.5
    low = CubicSchedule(0.3, 0.9, 0, 1, 5).with_final_sparsity(0.1)
    assert low.initial_sparsity == 0.1 and low(0) == 0.1


def test_to_dict_round_trips():
    s = SCHEDULES[2]
    assert CubicSchedule(**s.to_dict()) == s


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"initial_sparsity": -0.1}, "initial_sparsity must be in [0, 1)"),
        ({"final_sparsity": 1.0}, "final_sparsity must be in [0, 1)"),
        ({"final_sparsity": float("nan")}, "final_sparsity must be in [0, 1)"),
        ({"initial_sparsity": 0.6, "final_sparsity": 0.5}, "must not exceed final_sparsity"),
        ({"frequency": 0}, "frequency must be >= 1"),
        ({"frequency": 2.0}, "frequency must be an integer"),
        ({"begin_step": 1.5}, "begin_step must be an integer"),
        ({"begin_step": -1}, "begin_step must be >= 0"),
        ({"n_updates": -1}, "n_updates must be >= 0"),
        ({"n_updates": True}, "n_updates must be an integer"),
        ({"exponent": 0.0}, "exponent must be > 0"),
        ({"final_sparsity": "0.9"}, "final_sparsity must be a number"),
    ],
)
def test_validation_errors_are_clear(kwargs, message):
    args = {
        "initial_sparsity": 0.0,
        "final_sparsity": 0.9,
        "begin_step": 0,
        "frequency": 1,
        "n_updates": 5,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match="invalid CubicSchedule") as err:
        CubicSchedule(**args)
    assert message in str(err.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ValueError) as err:
        CubicSchedule(0.0, 0.9, begin_step=-1, frequency=0, n_updates=-2)
    text = str(err.value)
    assert "begin_step" in text and "frequency" in text and "n_updates" in text


def test_numpy_integers_are_integers():
    import numpy as np

    s = CubicSchedule(0.0, 0.5, np.int64(2), np.int64(3), np.int64(4))
    assert s.end_step == 14
