#!/usr/bin/env python3
"""prom_parse.py - parse a Prometheus text exposition (stdin) with the reference parser
(python3-prometheus-client's text_string_to_metric_families) and print what it understood
as one JSON object: {"families": {name: type}, "samples": [[name, {labels}, value], ...]}.
Exits non-zero (with the parser's message) if the text does not parse.
Used by tests/unit/test_metrics.c and test_admin.c."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.buffer.read().decode("utf-8")
    out = {"families": {}, "samples": []}
    try:
        for fam in text_string_to_metric_families(text):
            out["families"][fam.name] = fam.type
            for s in fam.samples:
                out["samples"].append([s.name, s.labels, s.value])
    except Exception as e:  # the parser raises ValueError and others on bad input
        print("parse error: %s" % e, file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
