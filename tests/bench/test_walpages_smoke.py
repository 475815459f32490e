"""``python -m bench --only walpages``: WAL pages per commit, schema 011 against 012."""

from __future__ import annotations

import pytest
from support.bench import run_bench


@pytest.mark.timeout(120)
def test_the_walpages_scenario_counts_fewer_pages_with_the_cid_on_the_message_row() -> None:
    code, report, stderr = run_bench("--only", "walpages", "--quick", timeout=100)
    assert code == 0, stderr[-3000:]
    assert report["ok"], report["error"]
    rows = report["walpages"]
    assert set(rows) == {"011", "012", "012 store"}
    for batch in ("1", "2", "5", "10"):
        old, new, real = (rows[k][batch] for k in ("011", "012", "012 store"))
        assert new["pages_per_commit"] < old["pages_per_commit"], batch
        # The replay of the store's statements writes what the store itself writes.
        assert real["pages_per_commit"] == new["pages_per_commit"], batch
        assert "dedupe" in old["by_btree"] and "dedupe" not in new["by_btree"]
        assert "messages_dedupe" in real["by_btree"]
    assert rows["012"]["1"]["messages"] == 200 and rows["012"]["10"]["commits"] == 20
    assert "WAL pages per commit" in stderr  # the table
