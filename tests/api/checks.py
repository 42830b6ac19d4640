"""Assertions shared by the API tests: the one error shape, read strictly."""


def assert_error_shape(test, r, status, code=None):
    """{"error":{"code","message","request_id"}} and nothing else, with the right status, a
    one-line message and a request id that matches the X-Request-Id header."""
    test.assertError(r, status, code)
    body = r.json
    test.assertEqual(set(body), {"error"}, r)
    e = body["error"]
    test.assertEqual(set(e), {"code", "message", "request_id"}, r)
    test.assertEqual(e["request_id"], r.header("X-Request-Id"), r)
    msg = e["message"]
    test.assertNotIn("\n", msg, r)
    test.assertFalse(msg.endswith("."), "message ends with a period: %r" % msg)
    return e
