from __future__ import annotations

from dealwatch.supervisor import RestartPolicy, describe

POLICY = RestartPolicy(initial_delay=0.5, max_delay=4.0, fast_failure_seconds=10.0, max_fast_failures=5)


def test_a_child_that_ran_for_a_while_is_restarted_at_once_and_its_failures_forgotten() -> None:
    assert POLICY.after_exit(ran_for=3600.0, fast_failures=3) == (0, 0.5)


def test_each_fast_failure_in_a_row_doubles_the_delay_up_to_the_cap() -> None:
    delays = []
    failures = 0
    for _ in range(4):
        failures, delay = POLICY.after_exit(ran_for=1.0, fast_failures=failures)
        delays.append(delay)

    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_the_supervisor_gives_up_after_the_last_allowed_fast_failure() -> None:
    assert POLICY.after_exit(ran_for=1.0, fast_failures=4) == (5, None)


def test_exit_statuses_are_described_for_people() -> None:
    assert describe(3) == "exit code 3"
    assert describe(-9) == "killed by SIGKILL"
    assert describe(None) == "did not start"
