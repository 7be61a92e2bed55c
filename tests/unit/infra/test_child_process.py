"""``infra.child_process``: the signal-safe wait for a stop (issue 20 item 19)."""

from __future__ import annotations

import os
import signal

from infra.child_process import StopRequests


def test_a_burst_of_signals_during_the_wait_ends_it_without_blocking() -> None:
    # Given a wait for a stop request in the main thread
    with StopRequests() as requests:
        # When the process gets SIGTERM and SIGINT again and again, some while the handler of the last one runs
        for _ in range(500):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)

        # Then the wait returns at once, every signal noted and none raised (no KeyboardInterrupt)
        assert requests.wait(timeout=10)
        assert set(requests.received) == {signal.SIGTERM, signal.SIGINT}


def test_the_previous_handlers_come_back_after_the_wait() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopRequests():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_end_of_file_on_the_watched_descriptor_is_a_stop_request() -> None:
    read, write = os.pipe()
    try:
        with StopRequests(watch=read) as requests:
            assert not requests.wait(timeout=0.05)
            os.close(write)
            assert requests.wait(timeout=10)
            assert requests.received == []
    finally:
        os.close(read)


def test_without_a_stop_request_the_wait_times_out() -> None:
    with StopRequests() as requests:
        assert requests.wait(timeout=0.01) is False
