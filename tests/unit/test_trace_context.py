from gateway.observability.context import accept_request_id, accept_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_continued_with_a_new_span() -> None:
    trace = accept_traceparent(VALID)
    assert trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace.span_id != "00f067aa0ba902b7"
    assert trace.traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


def test_invalid_traceparents_start_a_new_trace() -> None:
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", VALID[:-1]):
        assert accept_traceparent(bad).trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_request_ids_are_kept_only_when_sane() -> None:
    assert accept_request_id("abc-123") == "abc-123"
    assert accept_request_id("bad id with spaces").startswith("req_")
    assert accept_request_id("x" * 200).startswith("req_")
