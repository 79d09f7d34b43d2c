"""Hostile input shared by the tests and the reliability suite: export lines no collector expects,
and event names that break careless quoting (CSV seeds, SQL, Slack mrkdwn)."""

from __future__ import annotations


def hostile_lines(event: str, time_ms: int) -> list[bytes]:
    """Lines of an export body for the requested ``event`` around ``time_ms``: repeated keys, wrong
    types, broken JSON and encodings, extreme values. Each is either an event or a reject; none may
    fail a load. The events among them have distinct times, so none is a copy of another."""
    e = event.encode()
    t = time_ms

    def props(offset: int, extra: bytes = b"") -> bytes:
        return b'"time":%d,"distinct_id":"hostile-%d"%s' % (t + offset, offset, extra)

    return [
        # repeated top-level keys: read_json refuses the whole file
        b'{"event":"%s","event":"%s","properties":{%s}}' % (e, e, props(1, b',"$insert_id":"dup-event"')),
        b'{"event":"%s","properties":{%s},"properties":{%s}}' % (e, props(2), props(3)),
        b'{"event":"%s","properties":{%s,"$insert_id":"a","$insert_id":"b"}}' % (e, props(4)),
        # properties of the wrong type
        b'{"event":"%s","properties":[1,2]}' % e,
        b'{"event":"%s","properties":"text"}' % e,
        b'{"event":"%s","properties":12}' % e,
        b'{"event":"%s","properties":null}' % e,
        b'{"event":"%s"}' % e,
        # event names of the wrong type
        b'{"event":12,"properties":{%s}}' % props(5),
        b'{"event":{"a":1},"properties":{%s}}' % props(6),
        b'{"event":["%s"],"properties":{%s}}' % (e, props(7)),
        b'{"event":null,"properties":{%s}}' % props(8),
        b'{"event":true,"properties":{%s}}' % props(9),
        b'{"event":"","properties":{%s}}' % props(10),
        # unusable times
        b'{"event":"%s","properties":{"time":"abc","distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"time":-5,"distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"time":0,"distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"time":1e400,"distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"time":1e30,"distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"time":true,"distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"time":{"t":1},"distinct_id":"u"}}' % e,
        b'{"event":"%s","properties":{"distinct_id":"no time"}}' % e,
        # odd but usable key values
        b'{"event":"%s","properties":{%s,"distinct_id":{"o":[1]},"$insert_id":{"x":1}}}' % (e, props(11)),
        b'{"event":"%s","properties":{%s,"$insert_id":12345678901234567890123456789}}' % (e, props(12)),
        b'{"event":"%s","properties":{"time":%d,"distinct_id":null,"$insert_id":""}}' % (e, t + 13),
        b'{"event":"%s","properties":{%s,"mp_processing_time_ms":"soon"}}' % (e, props(14)),
        b'{"event":"%s","properties":{%s,"mp_processing_time_ms":{"a":1}}}' % (e, props(15)),
        b'{"event":"%s","properties":{%s,"mp_processing_time_ms":-1}}' % (e, props(16)),
        b'{"event":"%s","properties":{%s,"mp_processing_time_ms":1e300}}' % (e, props(17)),
        b'{"event":"%s","properties":{%s,"Time":1,"TIME":"x"}}' % (e, props(18)),
        b'{"event":"%s","properties":{%s,"deep":%s1%s}}' % (e, props(19), b"[" * 500, b"]" * 500),
        b'{"event":"%s","properties":{%s,"big":%s}}' % (e, props(20), b"9" * 5000),
        b'{"event":"%s","properties":{%s,"nul":"a\\u0000b","sep":"\xe2\x80\xa8"}}' % (e, props(21)),
        b'{"event" : "%s" , "properties" : { %s } }' % (e, props(22)),
        b'{"event":"%s","properties":{%s}}\r' % (e, props(23)),
        # not JSON, or not an object
        b'\xef\xbb\xbf{"event":"%s","properties":{%s}}' % (e, props(24)),
        b'{"event":"%s","properties":{%s,"bad":"\xff\xfe"}}' % (e, props(25)),
        b'{"event":"%s","properties":{%s,"lone":"\\ud800"}}' % (e, props(26)),
        b'{"event":"%s","properties":{%s,"x":NaN}}' % (e, props(27)),
        b'{"event":"%s","properties":{%s,}}' % (e, props(28)),
        b'{"event":"%s","properties":{%s}} trailing' % (e, props(29)),
        b'{"event":"%s","properties":{%s}}{"event":"%s","properties":{%s}}' % (e, props(30), e, props(31)),
        b"{'event':'%s'}" % e,
        b"null",
        b"true",
        b"123",
        b'"a string"',
        b"{}",
        b"[]",
        b"   ",
    ]


# Event names that a careless CSV, SQL or Slack rendering would change, drop or turn into markup.
HOSTILE_NAMES = [
    "'quoted'",
    'double "quoted"',
    "back`tick``` fence",
    "dash -- comment",
    "{{ jinja }} {% raw %}",
    "new\nline",
    "tab\there",
    "carriage\rreturn",
    "a,b;c|d",
    "\\back\\slash",
    "\u200fRTL mark \u05e9\u05dc\u05d5\u05dd",
    "<!channel> & <https://evil.example|click>",
    "null",
    "NA",
    "true",
    "2024",
    "émoji 🚨",
    "x" * 300,
]
