#!/usr/bin/env python3
"""Peak RSS of one identify_many batch over N files, in this process; prints a JSON line.

    python3 benches/batch_rss.py CORPUS_DIR N [THREADS]
The paths are the corpus manifest's, cycled to N from a generator (never a list of N), so N can
exceed the corpus; every result is checked against its manifest row.
"""

import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_corpus  # noqa: E402
from probe import hwm_kib  # noqa: E402


def main():
    corpus, n = Path(sys.argv[1]), int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else None
    import vmcoreinfo

    m = make_corpus.load_manifest(corpus / "manifest.tsv")
    import_hwm = hwm_kib()
    rows = itertools.islice(itertools.cycle(m), n)
    t = time.perf_counter()
    checked = 0
    want_iter = itertools.islice(itertools.cycle(m), n)
    for r in vmcoreinfo.identify_many((row["path"] for row in rows), threads=threads):
        want = next(want_iter)
        assert r.build_id == want["build_id"] and r.kernel_offset == want["kernel_offset"], (r, want)
        checked += 1
    seconds = time.perf_counter() - t
    assert checked == n
    print(json.dumps({"files": n, "seconds": seconds, "maxrss_kib": hwm_kib(), "import_maxrss_kib": import_hwm}))


if __name__ == "__main__":
    main()
