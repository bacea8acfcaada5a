"""Venue session schedules: edges worked out by hand, the runner on a shifted clock, and a
gateway logging a venue on and off over real FIX at its window's edges.

Every expected instant below is written in UTC by hand from the venue's wall clock and its
offset on that date (Shanghai is UTC+8 all year; Chicago is UTC-6 in winter and UTC-5 from
the second Sunday of March to the first Sunday of November), and converted to ns with no
time zone database involved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from oms.events import LineRole
from oms.receipts import ReceiptStore
from sessions.config_loader import ConfigError, validate_mapping
from sessions.demo import gateway_config
from sessions.gateway import Gateway
from sessions.gateway_config import GatewayConfig, load_gateway_config
from sessions.schedule import (
    EdgeKind,
    Schedule,
    ScheduleConfig,
    ScheduleRunner,
    ShiftedClock,
)
from sessions.simulator.venue import Venue
from tests.conftest import wait_until

S = 1_000_000_000
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def utc(text: str) -> int:
    """``YYYY-MM-DD HH:MM[:SS]`` read as UTC, in ns, with plain integer arithmetic."""
    day, clock = text.split(" ")
    y, m, d = (int(x) for x in day.split("-"))
    parts = [int(x) for x in clock.split(":")] + [0]
    days = (date(y, m, d) - date(1970, 1, 1)).days
    return ((days * 24 + parts[0]) * 60 + parts[1]) * 60 * S + parts[2] * S


def schedule(**data: Any) -> Schedule:
    return Schedule(ScheduleConfig.model_validate(data))


def shfe(**extra: Any) -> Schedule:
    """Day session in three windows and a night session across midnight, Mon-Fri; the
    trading day ends at the 15:00 close (the night session belongs to the next day)."""
    return schedule(
        timezone="Asia/Shanghai",
        windows=[
            {"days": WEEKDAYS, "start": "09:00", "end": "10:15"},
            {"days": WEEKDAYS, "start": "10:30", "end": "11:30"},
            {"days": WEEKDAYS, "start": "13:30", "end": "15:00"},
            {"days": WEEKDAYS, "start": "21:00", "end": "02:30"},
        ],
        holidays=["2025-10-01"],
        day_ends="15:00",
        **extra,
    )


def comex(**extra: Any) -> Schedule:
    """Sunday to Friday, 17:00 to 16:00 the next day, Chicago time."""
    return schedule(
        timezone="America/Chicago",
        windows=[{"days": ["sun", "mon", "tue", "wed", "thu"], "start": "17:00", "end": "16:00"}],
        day_ends="16:00",
        **extra,
    )


def test_the_utc_helper_is_exact() -> None:
    assert utc("2025-03-09 22:00") == 1_741_557_600 * S
    assert utc("2025-09-29 13:00") == 1_759_150_800 * S


# -- Shanghai: day windows, a night window across midnight, a holiday -------------------------


def test_shanghai_windows_by_hand() -> None:
    s = shfe()
    # Monday 2025-09-29: 09:00 +08 is 01:00 UTC; the night window opens 21:00 (13:00 UTC)
    # and closes 02:30 on Tuesday (18:30 UTC on Monday).
    got = [
        (o.open_ns, o.close_ns, o.trading_day, o.first_of_day, o.last_of_day)
        for o in islice(s.openings(date(2025, 9, 29)), 5)
    ]
    assert got == [
        (utc("2025-09-29 01:00"), utc("2025-09-29 02:15"), date(2025, 9, 29), False, False),
        (utc("2025-09-29 02:30"), utc("2025-09-29 03:30"), date(2025, 9, 29), False, False),
        (utc("2025-09-29 05:30"), utc("2025-09-29 07:00"), date(2025, 9, 29), False, True),
        (utc("2025-09-29 13:00"), utc("2025-09-29 18:30"), date(2025, 9, 30), True, False),
        (utc("2025-09-30 01:00"), utc("2025-09-30 02:15"), date(2025, 9, 30), False, False),
    ]


def test_shanghai_in_session_and_next_edges_across_midnight() -> None:
    s = shfe()
    # Tuesday 00:00 Shanghai (Monday 16:00 UTC) is inside Monday's night window.
    midnight = utc("2025-09-29 16:00")
    assert s.in_session(midnight)
    assert s.next_edges(midnight) == (utc("2025-09-30 01:00"), utc("2025-09-29 18:30"))
    # The lunch break (12:00 Shanghai) is out; next, 13:30 to 15:00.
    lunch = utc("2025-09-30 04:00")
    assert not s.in_session(lunch)
    assert s.next_edges(lunch) == (utc("2025-09-30 05:30"), utc("2025-09-30 07:00"))
    # Edges are half open: in at the open, out at the close, to the nanosecond.
    assert s.in_session(utc("2025-09-30 05:30"))
    assert not s.in_session(utc("2025-09-30 05:30") - 1)
    assert s.in_session(utc("2025-09-30 07:00") - 1)
    assert not s.in_session(utc("2025-09-30 07:00"))


def test_shanghai_holiday_is_skipped() -> None:
    s = shfe()
    # Tuesday's night window opens before the holiday and closes on it, 02:30 Wednesday
    # (Tuesday 18:30 UTC); nothing opens on Wednesday 2025-10-01; Thursday 09:00 is next.
    after_night = utc("2025-09-30 18:30")
    assert not s.in_session(after_night)
    assert s.next_edges(after_night) == (utc("2025-10-02 01:00"), utc("2025-10-02 02:15"))
    assert not s.in_session(utc("2025-10-01 02:00"))  # Wednesday 10:00 Shanghai
    night = s.current(utc("2025-09-30 17:00"))
    assert night is not None and night.trading_day == date(2025, 10, 2)
    # Without the holiday, Wednesday trades.
    plain = schedule(**{**shfe().config.model_dump(), "holidays": []})
    assert plain.in_session(utc("2025-10-01 02:00"))


def test_shanghai_runner_edges_with_lead_reset_and_end_of_day() -> None:
    s = shfe(logon_lead_s=60, reset_seq_daily=True)
    edges = [(e.kind, e.at_ns, e.reset_seq) for e in islice(s.edges(utc("2025-09-29 06:00")), 6)]
    assert edges == [
        (EdgeKind.LOGOUT, utc("2025-09-29 07:00"), False),  # 15:00 close
        (EdgeKind.END_OF_DAY, utc("2025-09-29 07:00"), False),
        (EdgeKind.LOGON, utc("2025-09-29 12:59"), True),  # a minute before 21:00: a new day
        (EdgeKind.LOGOUT, utc("2025-09-29 18:30"), False),
        (EdgeKind.LOGON, utc("2025-09-30 00:59"), False),  # 09:00, same trading day
        (EdgeKind.LOGOUT, utc("2025-09-30 02:15"), False),
    ]


def test_windows_closer_than_the_lead_are_bridged() -> None:
    # With 30 minutes' lead, the 10:30 logon would come before the 10:15 close: the lines
    # stay up from 09:00 to 11:30 (in UTC, 01:00 to 03:30).
    s = shfe(logon_lead_s=1800)
    edges = [(e.kind, e.at_ns) for e in islice(s.edges(utc("2025-09-29 00:00")), 3)]
    assert edges == [
        (EdgeKind.LOGON, utc("2025-09-29 00:30")),
        (EdgeKind.LOGOUT, utc("2025-09-29 03:30")),
        (EdgeKind.LOGON, utc("2025-09-29 05:00")),
    ]
    assert s.wanted_at(utc("2025-09-29 02:20"))[0]  # 10:20 Shanghai, between the windows


# -- Chicago across the DST changes -----------------------------------------------------------


def test_chicago_across_the_march_change() -> None:
    s = comex()
    # Friday 2025-03-07 16:00 CST (UTC-6) is 22:00 UTC; the week reopens Sunday 03-09 17:00,
    # now CDT (UTC-5): 22:00 UTC, an hour less than 48 after the close; Monday's close
    # 16:00 CDT is 21:00 UTC.
    friday_close = utc("2025-03-07 22:00")
    assert s.in_session(friday_close - 1)
    assert not s.in_session(friday_close)
    assert s.next_edges(friday_close) == (utc("2025-03-09 22:00"), utc("2025-03-10 21:00"))
    # The week before the change: Sunday 03-02 17:00 CST is 23:00 UTC.
    assert s.next_edges(utc("2025-03-01 00:00")) == (
        utc("2025-03-02 23:00"),
        utc("2025-03-03 22:00"),
    )


def test_chicago_across_the_november_change() -> None:
    s = comex()
    # Friday 2025-10-31 16:00 CDT is 21:00 UTC; Sunday 11-02 17:00 CST is 23:00 UTC; Monday
    # 16:00 CST is 22:00 UTC.
    assert s.next_edges(utc("2025-10-31 21:00")) == (
        utc("2025-11-02 23:00"),
        utc("2025-11-03 22:00"),
    )
    opening = s.current(utc("2025-11-03 12:00"))
    assert opening is not None
    assert (opening.open_ns, opening.close_ns) == (utc("2025-11-02 23:00"), utc("2025-11-03 22:00"))
    assert opening.trading_day == date(2025, 11, 3) and opening.last_of_day


def test_a_window_across_the_change_itself() -> None:
    s = schedule(
        timezone="America/Chicago",
        windows=[{"days": ["sun"], "start": "01:00", "end": "03:30"}],
    )
    # 9 March 2025: 01:00 CST is 07:00 UTC, the clock jumps from 02:00 to 03:00, 03:30 CDT
    # is 08:30 UTC: an hour and a half.
    march = s.next_opening(utc("2025-03-08 00:00"))
    assert march is not None
    assert (march.open_ns, march.close_ns) == (utc("2025-03-09 07:00"), utc("2025-03-09 08:30"))
    # 2 November 2025: 01:00 happens twice; the first (CDT, 06:00 UTC) is taken; 03:30 CST
    # is 09:30 UTC: three and a half hours.
    november = s.next_opening(utc("2025-11-01 00:00"))
    assert november is not None
    assert (november.open_ns, november.close_ns) == (
        utc("2025-11-02 06:00"),
        utc("2025-11-02 09:30"),
    )


def test_a_time_the_clock_skips_is_read_with_the_offset_before_the_change() -> None:
    s = schedule(
        timezone="America/Chicago",
        windows=[{"days": ["sun"], "start": "02:30", "end": "04:00"}],
    )
    # 02:30 does not exist on 9 March 2025; at UTC-6 it is 08:30 UTC (03:30 CDT).
    opening = s.next_opening(utc("2025-03-08 00:00"))
    assert opening is not None
    assert (opening.open_ns, opening.close_ns) == (utc("2025-03-09 08:30"), utc("2025-03-09 09:00"))


# -- configuration ------------------------------------------------------------------------


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_mapping(data, ScheduleConfig, Path("gateway.toml"))
    return str(caught.value)


def test_configuration_errors_name_the_key_and_the_fix() -> None:
    window = {"days": ["mon"], "start": "09:00", "end": "10:00"}
    text = _problems({"timezone": "Asia/Shangai", "windows": [window]})
    assert "timezone: unknown time zone 'Asia/Shangai'" in text and "IANA" in text
    text = _problems(
        {
            "timezone": "UTC",
            "windows": [window, {"days": ["mon"], "start": "10:00", "end": "11:00"}],
        }
    )
    assert "overlap or touch" in text and "join them" in text
    text = _problems(
        {"timezone": "UTC", "windows": [{"days": ["mon"], "start": "09:00", "end": "09:00"}]}
    )
    assert "windows[0]" in text and "needs a length" in text
    text = _problems({"timezone": "UTC", "windows": [window], "day_ends": "15:00"})
    assert "day_ends" in text and "10:00:00" in text
    text = _problems({"timezone": "UTC", "windows": [{**window, "days": ["monday"]}]})
    assert "windows[0].days[0]" in text


def test_a_night_window_that_wraps_the_week_overlaps_monday() -> None:
    text = _problems(
        {
            "timezone": "UTC",
            "windows": [
                {"days": ["sun"], "start": "22:00", "end": "02:00"},
                {"days": ["mon"], "start": "01:00", "end": "03:00"},
            ],
        }
    )
    assert "overlap" in text


# -- the runner, on a clock set to another time of day ------------------------------------


class Recorder:
    """The runner's side of the sessions, recording each call with the runner's clock."""

    def __init__(self, clock: ShiftedClock) -> None:
        self.clock = clock
        self.calls: list[tuple[int, str, str | None]] = []
        self.changed = threading.Condition()

    def _add(self, what: str, reason: str | None = None) -> None:
        with self.changed:
            self.calls.append((self.clock.now_ns(), what, reason))
            self.changed.notify_all()

    def logon(self, venue: str, role: LineRole | None = None) -> None:
        self._add("logon")

    def logout(self, venue: str, role: LineRole | None = None, reason: str = "") -> None:
        self._add("logout", reason)

    def reset_seq(self, venue: str, role: LineRole | None = None) -> None:
        self._add("reset_seq")

    def kinds(self) -> list[str]:
        with self.changed:
            return [what for _, what, _ in self.calls]


@pytest.fixture
def runners() -> Iterator[list[ScheduleRunner]]:
    made: list[ScheduleRunner] = []
    yield made
    for runner in made:
        runner.stop()


def test_runner_logs_on_and_off_at_a_chicago_window_on_a_shifted_clock(
    runners: list[ScheduleRunner],
) -> None:
    # The clock reads Sunday 9 March 2025, 16:59:58.5 in Chicago (the first CDT evening,
    # 21:59:58.5 UTC); a two-second window opens at 17:00:00 with half a second's lead.
    opens = utc("2025-03-09 22:00")
    clock = ShiftedClock(opens - 3 * S // 2)
    s = schedule(
        timezone="America/Chicago",
        windows=[{"days": ["sun"], "start": "17:00:00", "end": "17:00:02"}],
        reset_seq_daily=True,
        logon_lead_s="0.5",
    )
    control = Recorder(clock)
    days: list[tuple[str, date, int]] = []
    runner = ScheduleRunner(
        {"COMEX-SIM": s},
        control,
        clock=clock,
        end_of_day=[lambda venue, day, at: days.append((venue, day, at))],
    )
    runners.append(runner)
    runner.start()
    assert wait_until(lambda: len(control.kinds()) >= 4 and days, 10)
    calls = control.calls
    assert [what for _, what, _ in calls] == ["logout", "reset_seq", "logon", "logout"]
    assert calls[0][2] == "outside its session windows"
    logon_at = opens - S // 2
    # Never early; late only by the scheduler's wake-up (the machine is shared: 1 s slack).
    assert logon_at <= calls[1][0] <= calls[2][0] < logon_at + S
    assert opens + 2 * S <= calls[3][0] < opens + 3 * S
    assert calls[3][2] == "end of session"
    assert days == [("COMEX-SIM", date(2025, 3, 9), opens + 2 * S)]
    assert runner.errors == 0
    # After the day's end, the next edge is armed: next Sunday's logon, still CDT.
    assert wait_until(lambda: runner.pending()["COMEX-SIM"] is not None, 5)
    nxt = runner.pending()["COMEX-SIM"]
    assert nxt is not None and nxt.kind is EdgeKind.LOGON
    assert nxt.at_ns == utc("2025-03-16 22:00") - S // 2


def test_runner_started_inside_a_window_logs_on_at_once_without_a_reset(
    runners: list[ScheduleRunner],
) -> None:
    # Shanghai, Monday 2025-09-29 10:00 (02:00 UTC): inside the 09:00-10:15 window.
    clock = ShiftedClock(utc("2025-09-29 02:00"))
    control = Recorder(clock)
    runner = ScheduleRunner({"SHFE-SIM": shfe(reset_seq_daily=True)}, control, clock=clock)
    runners.append(runner)
    runner.start()
    assert control.kinds() == ["logon"]
    nxt = runner.pending()["SHFE-SIM"]
    assert nxt is not None and (nxt.kind, nxt.at_ns) == (EdgeKind.LOGOUT, utc("2025-09-29 02:15"))


# -- against real FIX ---------------------------------------------------------------------


def _window_from_now(zone: ZoneInfo, opens_in_s: int, lasts_s: int) -> dict[str, Any]:
    """A window every day, opening ``opens_in_s`` from now on ``zone``'s wall clock."""
    start = (datetime.now(zone) + timedelta(seconds=opens_in_s)).replace(microsecond=0)
    end = start + timedelta(seconds=lasts_s)
    return {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": start.time().isoformat(),
        "end": end.time().isoformat(),
    }


@pytest.mark.fix
def test_gateway_logs_a_venue_on_and_off_at_its_window_over_fix(
    make_venue: Callable[..., Venue], tmp_path: Path
) -> None:
    clients = ["GW-PRI", "GW-BAK"]
    inner = make_venue(id="INNER", comp_id="INNER", clients=clients)
    outer = make_venue(
        id="OUTER",
        comp_id="OUTER",
        clients=clients,
        instruments=[
            {
                "symbol": "GC",
                "currency": "USD",
                "tick": "0.1",
                "contract_size": "100",
                "contract_unit": "troy_oz",
                "prev_close": "2402.5",
            }
        ],
    )
    base = gateway_config([inner, outer], tmp_path)
    # The inner venue trades on Shanghai's clock: a window from 4 s after now, for 4 s.
    zone = ZoneInfo("Asia/Shanghai")
    window = _window_from_now(zone, 4, 4)
    data = base.model_dump(mode="json", exclude_unset=True)
    data["venues"][0]["schedule"] = {"timezone": "Asia/Shanghai", "windows": [window]}
    config = GatewayConfig.model_validate(data)
    start = datetime.combine(
        datetime.now(zone).date(), wall_time.fromisoformat(window["start"]), tzinfo=zone
    )
    if start < datetime.now(zone) - timedelta(hours=1):  # the window is after midnight
        start += timedelta(days=1)
    end = start + timedelta(seconds=4)

    gateway = Gateway(config)
    try:
        gateway.start()
        # The outer venue, unscheduled, logs on at once; the inner one not before its window.
        assert wait_until(lambda: len(outer.logged_on) == 2, 10)
        assert inner.logged_on == set()
        assert gateway.scheduled_out() == {"INNER"}
        assert wait_until(lambda: len(inner.logged_on) == 2, 10), "no logon at the window"
        logged_on_at = datetime.now(zone)
        assert logged_on_at >= start
        assert wait_until(lambda: not inner.logged_on, 10), "no logout at the close"
        logged_out_at = datetime.now(zone)
        assert logged_out_at >= end
        assert len(outer.logged_on) == 2  # the other venue is untouched
        # Out of its window it stays out: quickfix does not reconnect it (reconnect_s is 1).
        assert not wait_until(lambda: inner.logged_on, 2.5)
    finally:
        gateway.stop()
    with ReceiptStore(f"sqlite:///{tmp_path / 'receipts.sqlite'}") as store:
        decisions = [
            (r.venue, r.verdict, r.reason) for r in store.all() if r.kind == "decision.schedule"
        ]
    assert [d[:2] for d in decisions] == [
        ("INNER", "logout"),
        ("INNER", "logon"),
        ("INNER", "logout"),
        ("INNER", "end_of_day"),
    ]
    assert decisions[0][2] == "outside its session windows"


def test_the_schedules_commented_out_in_conf_demo_toml_load(tmp_path: Path) -> None:
    """The examples in conf/demo.toml, uncommented, are valid and mean what they say."""
    repo = Path(__file__).resolve().parent.parent
    out: list[str] = []
    in_example = False
    for line in (repo / "conf" / "demo.toml").read_text().splitlines():
        if line.startswith("# [venues.schedule]"):
            in_example = True
        if in_example and not line.startswith("#"):
            in_example = False
        out.append(line[2:] if in_example else line)
    path = tmp_path / "demo.toml"
    path.write_text("\n".join(out) + "\n")
    config = load_gateway_config(path)
    shanghai, chicago = (v.schedule for v in config.venues)
    assert shanghai is not None and chicago is not None
    # Monday 2025-09-29 21:00 Shanghai opens the trading day of Tuesday 09-30.
    night = Schedule(shanghai).current(utc("2025-09-29 13:00"))
    assert night is not None and night.trading_day == date(2025, 9, 30) and night.first_of_day
    # Friday 2025-03-07 15:59 Chicago (21:59 UTC) trades; 16:00 does not.
    assert Schedule(chicago).in_session(utc("2025-03-07 21:59"))
    assert not Schedule(chicago).in_session(utc("2025-03-07 22:00"))
