"""``cmc audit export`` and ``cmc audit trace``, run as an operator runs them.

Receipts of two pairs' trades go in through the real writer (so the hop times are the
writer's); the CLI runs as a subprocess against SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from oms.audit.export import EXPORT_COLUMNS, export_rows, write_csv
from oms.audit.timerange import BadInstant, parse_instant, utc_text
from oms.receipts import Receipt, ReceiptStore
from tests.test_audit_chain import BASE_NS, store_url, trade_receipts, write_through_writer
from tests.test_receipts import pg_url  # noqa: F401  (a fixture)

CMC = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "cmc")
ENV = {"COLUMNS": "250", "PATH": "/usr/bin:/bin"}
SOH = "\x01"

__all__ = ["store_url"]


def receipts() -> list[Receipt]:
    """Three GOLD trades a second apart, then two COPPER trades (9 receipts each)."""
    return trade_receipts(3) + trade_receipts(2, pair="COPPER", start_ns=BASE_NS + 10**10, first=3)


def cmc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CMC, "audit", *args], capture_output=True, text=True, timeout=120, env=ENV
    )


@pytest.fixture
def filled(store_url: str, tmp_path: Path) -> str:
    write_through_writer(store_url, receipts(), tmp_path / "spool")
    return store_url


def test_csv_holds_every_receipt_with_its_hops(filled: str, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    done = cmc("export", "--db", filled, "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "45 receipt(s)" in done.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 45 and [int(r["seq"]) for r in rows] == list(range(1, 46))
    first = rows[0]
    assert first["time_utc"] == utc_text(BASE_NS + 2_000)
    # the first inner leg's acknowledgement carries every hop of its trade
    ack = next(r for r in rows if r["kind"] == "event.execution" and r["exec_id"] == "E0-0-0")
    assert int(ack["event_ns"]) == BASE_NS
    assert int(ack["decision_ns"]) == BASE_NS + 30_000
    assert int(ack["send_ns"]) == BASE_NS + 45_000
    assert int(ack["ack_ns"]) == BASE_NS + 400_000
    assert (ack["event_to_decision_ns"], ack["decision_to_send_ns"], ack["send_to_ack_ns"]) == (
        "30000",
        "15000",
        "355000",
    )
    assert (ack["venue"], ack["line"], ack["order_id"], ack["pair_id"]) == (
        "INNER",
        "primary",
        "V0-0",
        "GOLD-1",
    )
    assert ack["raw"].startswith(f"8=FIX.4.4{SOH}35=8{SOH}")  # the FIX text, exactly
    assert json.loads(ack["data"]) == {"exec_type": "0", "last_px": "560"}
    assert rows[1]["prev_hash"] == rows[0]["hash"]


def test_json_and_the_filters(filled: str, tmp_path: Path) -> None:
    def export(*args: str) -> list[dict[str, object]]:
        out = tmp_path / "out.json"
        done = cmc("export", "--db", filled, "--format", "json", "--out", str(out), *args)
        assert done.returncode == 0, done.stderr
        loaded = json.loads(out.read_text(encoding="utf-8"))
        assert isinstance(loaded, list)
        return loaded

    everything = export()
    assert len(everything) == 45
    assert everything[1]["data"] == {"inner_qty": 28, "pair": "GOLD", "spread": "3.5"}
    assert [r["pair_id"] for r in export("--pair", "GOLD-2")] == ["GOLD-2"] * 8
    assert len(export("--pair", "COPPER")) == 16  # every trade of the pair
    assert {r["clordid"] for r in export("--order", "C1-2")} == {"C1-2"}
    assert {r["clordid"] for r in export("--order", "V1-1")} == {"C1-2"}  # the OrderID
    assert {r["venue"] for r in export("--venue", "OUTER")} == {"OUTER"}
    # one second of GOLD's: the second trade (from inclusive, to exclusive)
    second = export("--from", utc_text(BASE_NS + 10**9), "--to", str(BASE_NS + 2 * 10**9))
    assert {r["pair_id"] for r in second} == {None, "GOLD-2"} and len(second) == 9
    assert export("--from", "2030-01-01") == []
    day = export("--from", utc_text(BASE_NS)[:10], "--to", utc_text(BASE_NS)[:10])
    assert len(day) == 45  # a date as --to is the whole day


def test_html_report_is_self_contained_with_plots(filled: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = cmc("export", "--db", filled, "--format", "html", "--out", str(out), "--rows", "10")
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # four hop histograms and one timeline per pair, all inline SVG
    assert page.count("<svg") == 4 + 2
    for hop in ("market data in -&gt; decision", "decision -&gt; order sent", "first answer"):
        assert hop in page
    assert "pair GOLD: 3 trade(s)" in page and "pair COPPER: 2 trade(s)" in page
    assert "the first 10 of 45" in page
    # nothing to fetch: no script, no stylesheet or image link, no URL but SVG namespaces
    assert "<script" not in page and "<link" not in page and "<img" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_trace_prints_one_trades_chain_in_order(filled: str) -> None:
    for key in ("C1-2", "GOLD-2", "V1-0"):
        done = cmc("trace", "--db", filled, key)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert "9 receipt(s)" in done.stdout, done.stdout
        seqs = [int(m[1]) for line in lines if (m := re.match(r"^│\s+(\d+)\s+│", line))]
        assert seqs == sorted(seqs) and len(seqs) == 9
        order = [
            k
            for line in lines
            for k in re.findall(r"(event\.\w+|decision\.\w+|command\.\w+)", line)
        ]
        assert order[:3] == ["event.market_data", "decision.spread_intent", "command.send_order"]
        assert order[-1] == "decision.pair_done"
        assert "hops per order" in done.stdout and "C1-1" in done.stdout
    missing = cmc("trace", "--db", filled, "NO-SUCH-ORDER")
    assert missing.returncode == 1 and "no receipt has" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2024-13-40"], "is not a time: use YYYY-MM-DD"),
        (["--to", "yesterday"], "is not a time"),
        (["--from", "2024-06-02", "--to", "2024-06-01"], "--from must be before --to"),
        (["--format", "xml"], "'xml' is not one of 'csv', 'json', 'html'"),
        (["--pair", "GOLD", "--venue", "INNER"], "at most one of --pair, --order and --venue"),
    ],
)
def test_bad_input_is_refused_with_what_to_do(
    tmp_path: Path, args: list[str], message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    write_through_writer(url, trade_receipts(1), tmp_path / "spool")
    done = cmc("export", "--db", url, *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()), done.stderr


def test_a_missing_store_says_where_to_look(tmp_path: Path) -> None:
    done = cmc("verify", "--db", f"sqlite:///{tmp_path / 'nowhere.sqlite'}")
    assert done.returncode == 2 and "no receipt store at" in done.stderr
    assert "--db" in done.stderr and not (tmp_path / "nowhere.sqlite").exists()
    unknown = cmc("verify", "--db", "postgresql+psycopg://cmc:s3cret@127.0.0.1:1/none")
    assert unknown.returncode == 2 and "cannot read the receipt store" in unknown.stderr
    assert "s3cret" not in unknown.stderr + unknown.stdout  # the password never shows


def test_csv_is_what_the_csv_module_writes_whatever_the_cells_hold(tmp_path: Path) -> None:
    """The fast CSV path quotes as ``csv.writer`` does: commas, quotes and line breaks in
    any text cell, data empty or not, None in every optional column; and a carriage return,
    which Python 3.11's module leaves bare, is quoted so that the line reads back."""
    awkward = [
        Receipt("line.state", ts_ns=BASE_NS),  # every optional field None, data {}
        Receipt.of("decision.risk", ts_ns=BASE_NS + 1, reason='refused: "qty", 30 > 20'),
        Receipt.of("event.note", ts_ns=BASE_NS + 2, reason="two\nlines", venue="A,B"),
        Receipt.of("event.note", ts_ns=BASE_NS + 3, raw=f"8=FIX.4.4{SOH}58=a\r{SOH}"),
        Receipt.of("event.note", ts_ns=BASE_NS + 4, clordid='C"1', data={"k": "v,w"}),
        Receipt.of("event.note", ts_ns=BASE_NS + 5, reason="", data={"n": None}),
        *trade_receipts(2),
    ]
    with ReceiptStore(f"sqlite:///{tmp_path / 'r.sqlite'}") as store:
        store.append_batch(awkward)
        fast = io.StringIO()
        assert write_csv(store.scan_tuples(), fast) == len(awkward)
        expected = io.StringIO()
        writer = csv.writer(expected, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        writer.writerows(export_rows(store.scan_tuples()))
    lines, module_lines = fast.getvalue().split("\n"), expected.getvalue().split("\n")
    carriage_return = next(i for i, line in enumerate(lines) if "\r" in line)
    assert lines[carriage_return].count('"') == 2  # the raw cell, quoted
    del lines[carriage_return], module_lines[carriage_return]
    assert lines == module_lines
    rows = list(csv.DictReader(io.StringIO(fast.getvalue(), newline="")))
    assert [r["reason"] for r in rows[1:4]] == ['refused: "qty", 30 > 20', "two\nlines", ""]
    assert rows[2]["venue"] == "A,B" and rows[4]["clordid"] == 'C"1'
    assert rows[3]["raw"] == f"8=FIX.4.4{SOH}58=a\r{SOH}"


def test_parse_instant() -> None:
    assert parse_instant("1970-01-01") == 0
    assert parse_instant("1970-01-01", end=True) == 86_400 * 10**9
    assert parse_instant("1970-01-01T00:00:01.5") == 1_500_000_000
    assert parse_instant("1970-01-01 00:00:01.000000007Z") == 1_000_000_007
    assert parse_instant("1970-01-01T08:00+08:00") == 0
    assert parse_instant("1234") == 1234
    with pytest.raises(BadInstant, match="not a time"):
        parse_instant("1970-01-01T25:00")
