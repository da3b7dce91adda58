#!/usr/bin/env python3
"""membank batch: JSON-line operations applied as one write, all or none."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli  # noqa: E402
from test_cli import CliTest  # noqa: E402


def lines(*ops):
    return "".join(json.dumps(o) + "\n" for o in ops)


class Batch(CliTest):
    def test_every_op_one_record(self):
        self.ok("init")
        ops = lines(
            {"op": "page.put", "id": "a", "properties": {"n": 1, "s": "x"}},
            {"op": "page.merge", "id": "a", "properties": {"m": [1, 2], "s": None}},
            {"op": "page.put", "id": "b", "properties": {}},
            {"op": "page.delete", "id": "b"},
            {"op": "sync.record", "status": "success"},
            {"op": "sync.record", "status": "failed", "error": "HTTP 502"},
            {"op": "error.log", "error_type": "E", "message": "m"},
            {"op": "error.resolve", "error_type": "E", "steps": "retry"},
            {"op": "config.update", "config": {"notion_settings": {"retry_attempts": 9}}},
        ) + "\n   \n"
        out = self.doc("batch", input=ops)
        self.assertEqual(out, {"operations": 9, "seq": 1})
        self.assertEqual(self.doc("page", "get", "a")["properties"], {"n": 1, "m": [1, 2]})
        self.fails(1, "page", "get", "b")
        sync = self.doc("sync", "status")
        self.assertEqual((sync["success_count"], sync["error_count"]), (1, 1))
        errs = self.doc("error", "stats")
        self.assertEqual((errs["total_errors"], errs["resolved_errors"]), (1, 1))
        self.assertEqual(self.ok("config", "get", "notion_settings.retry_attempts"), "9\n")
        events = [json.loads(x) for x in self.ok("journal", "tail").splitlines()]
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["op"], "batch")
        self.assertEqual([o["op"] for o in events[0]["ops"]],
                         ["page.put", "page.merge", "page.put", "page.delete", "sync.record",
                          "sync.record", "error.log", "error.resolve", "config.update"])

    def test_journal_tail_replays_into_another_bank(self):
        self.ok("page", "put", "p1", '{"v":1}')
        self.ok("page", "merge", "p1", '{"w":[true,null]}')
        self.ok("sync", "record", "success")
        self.ok("error", "log", "rate_limited", "429")
        tail = self.ok("journal", "tail", "-n", "100")
        other = os.path.join(self.tmp, "other")
        p = self.mb("-b", other, "batch", bank=False, input=tail)
        self.assertEqual(p.returncode, 0, p.stderr)
        for what in (["page", "get", "p1"], ["sync", "status"], ["error", "stats"]):
            a = json.loads(self.ok(*what))
            b = json.loads(self.ok("-b", other, *what, bank=False))
            for d in (a, b):
                d.pop("last_updated", None)
                d.pop("last_successful_sync", None)
                d.pop("sync_history", None)
                d.pop("last_error", None)
            self.assertEqual(a, b)

    def test_bad_line_changes_nothing(self):
        self.ok("page", "put", "keep", '{"v":1}')
        before = self.ok("journal", "tail", "-n", "100")
        good = {"op": "page.put", "id": "new", "properties": {}}
        cases = [
            ("{not json", "line 2: not a JSON object"),
            ('{"op":"page.put","id":"x"}', 'line 2: missing "properties"'),
            ('{"op":"page.put","id":"x","properties":[1]}', '"properties" must be an object'),
            ('{"op":"page.put","id":7,"properties":{}}', '"id" must be a string'),
            ('{"op":"page.put","id":"x","properties":{},"extra":1}', 'unknown key "extra"'),
            ('{"op":"page.put","id":"x","id":"y","properties":{}}', 'duplicate key "id"'),
            ('{"op":"frobnicate"}', '"op" must be one of'),
            ('{"op":"page.put","id":"","properties":{}}', "page id"),
            ('{"op":"page.put","id":"x","properties":{"a":1,"a":2}}', "duplicate key"),
            ('{"op":"sync.record","status":"s","error":5}', '"error" must be a string'),
            ('{"op":"page.put","id":"a\\u0000b","properties":{}}', "\\u0000"),
            ('{"op":"config.update","config":{"nope":1}}', "nope"),
            ("[1]", "not a JSON object"),
        ]
        for bad, needle in cases:
            with self.subTest(bad=bad):
                err = self.fails(3, "batch", input=json.dumps(good) + "\n" + bad + "\n")
                self.assertIn(needle, err)
                self.assertIn("nothing was applied", err)
        self.fails(1, "page", "get", "new")
        self.assertEqual(self.ok("journal", "tail", "-n", "100"), before)

    def test_missing_delete_fails_whole_batch(self):
        self.ok("page", "put", "here", "{}")
        err = self.fails(1, "batch", input=lines(
            {"op": "page.delete", "id": "here"},
            {"op": "page.put", "id": "new", "properties": {}},
            {"op": "page.delete", "id": "here"}))
        self.assertIn('line 3: operation 3 (page delete): page "here": not found', err)
        self.ok("page", "get", "here")
        self.fails(1, "page", "get", "new")

    def test_from_file(self):
        path = os.path.join(self.tmp, "ops.jsonl")
        with open(path, "w") as f:
            f.write(lines({"op": "page.put", "id": "f", "properties": {"k": "v"}}))
        self.assertEqual(self.doc("batch", path)["operations"], 1)
        self.assertEqual(self.doc("page", "get", "f")["properties"], {"k": "v"})
        self.fails(1, "batch", os.path.join(self.tmp, "missing.jsonl"))
        self.fails(2, "batch", path, path)

    def test_empty_input_writes_nothing(self):
        self.ok("init")
        self.assertEqual(self.doc("batch", input="\n\n")["operations"], 0)
        self.assertEqual(self.ok("journal", "tail"), "")


if __name__ == "__main__":
    test_cli.main(sys.modules[__name__])
