"""Venue session schedules: when each venue trades, on its own wall clock.

Two halves. ``Schedule`` is pure: from a venue's windows (wall-clock times in the venue's
time zone), its holidays and an instant (UTC, integer ns) it says whether the venue is in
session and when its next edges are. Every instant is worked out from the venue's local
calendar through ``zoneinfo``, so a window keeps its wall-clock times across a DST change (a
Chicago window that opens at 17:00 opens at 22:00 UTC in summer and 23:00 UTC in winter),
and a window whose end is before its start closes the next day.

``ScheduleRunner`` turns the edges into actions on the FIX sessions, with APScheduler 3: log
on ``logon_lead_s`` before a window opens (sequence numbers reset first at the first window
of a trading day, when the venue wants that), log out when it closes, and run the end-of-day
jobs after the last close of a trading day. It reads the time from a clock it is given, so
that a test or a rehearsal can run a schedule as if it were another time of day.

Times the clock skips (spring forward) are read with the offset from before the change, so
02:30 on that day in Chicago is 03:30 CDT; times it repeats (fall back) are the first of the
two (PEP 495, ``fold=0``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from decimal import Decimal
from enum import Enum
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oms.clock import NS_PER_S, NS_PER_US
from oms.events import LineRole

log = logging.getLogger("cmc.schedule")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400 * 1_000_000
_WEEK_US = 7 * _DAY_US
# How far the schedule looks for a window before it concludes there is none: two years of
# holidays in a row is not a schedule anyone means.
SEARCH_DAYS = 731


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _us_of_day(t: wall_time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


class WindowConfig(Strict):
    """A window that opens on each of ``days`` at ``start`` and closes at ``end``, both on
    the venue's wall clock; an ``end`` earlier than ``start`` is on the next day (the days
    listed are the days the window opens)."""

    days: list[Weekday] = Field(min_length=1)
    start: wall_time
    end: wall_time

    @field_validator("days")
    @classmethod
    def _distinct(cls, days: list[Weekday]) -> list[Weekday]:
        if len(set(days)) != len(days):
            raise ValueError("each day may be listed once")
        return days

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: wall_time) -> wall_time:
        if value.tzinfo is not None:
            raise ValueError(
                "a window's times are the venue's wall clock: leave the offset out and set "
                "the schedule's `timezone`"
            )
        return value

    @model_validator(mode="after")
    def _has_length(self) -> WindowConfig:
        if self.start == self.end:
            raise ValueError(
                f"start and end are both {self.start}: a window needs a length (an end "
                "before the start closes the next day)"
            )
        return self

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def length_us(self) -> int:
        """The window's length on the wall clock (a DST change makes the real one differ)."""
        return (_us_of_day(self.end) - _us_of_day(self.start)) % _DAY_US

    def label(self) -> str:
        return f"{','.join(self.days)} {self.start.isoformat()}-{self.end.isoformat()}"


class ScheduleConfig(Strict):
    """A venue's ``schedule`` table: when its FIX lines are logged on."""

    timezone: str = Field(description="IANA name of the venue's time zone, e.g. Asia/Shanghai")
    windows: list[WindowConfig] = Field(min_length=1)
    holidays: list[date] = Field(
        default_factory=list, description="dates, in the venue's zone, on which no window opens"
    )
    reset_seq_daily: bool = Field(
        default=False,
        description="reset sequence numbers before logging on for a trading day's first window",
    )
    logon_lead_s: Decimal = Field(
        default=Decimal(0), ge=0, le=3600, description="log on this long before a window opens"
    )
    day_ends: wall_time | None = Field(
        default=None,
        description="the close (a window's end) that ends a trading day; by default a "
        "trading day is the windows that open on one calendar date",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai, "
                "America/Chicago or Europe/London"
            ) from None
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        spans = sorted(
            (WEEKDAYS.index(day) * _DAY_US + _us_of_day(w.start), i, day)
            for i, w in enumerate(self.windows)
            for day in w.days
        )
        for k, (start, i, day) in enumerate(spans):
            nxt_start, j, nxt_day = spans[(k + 1) % len(spans)]
            if k + 1 == len(spans):
                nxt_start += _WEEK_US
            if len(spans) > 1 and start + self.windows[i].length_us() >= nxt_start:
                raise ValueError(
                    f"windows[{i}] opening {day} at {self.windows[i].start} and windows[{j}] "
                    f"opening {nxt_day} at {self.windows[j].start} overlap or touch: join "
                    "them into one window, or leave a gap between them"
                )
        if self.day_ends is not None and self.day_ends not in {w.end for w in self.windows}:
            ends = ", ".join(sorted({w.end.isoformat() for w in self.windows}))
            raise ValueError(
                f"day_ends {self.day_ends} is not the end of any window, so no trading day "
                f"would end: use one of {ends}, or leave it out"
            )
        return self

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Opening:
    """One window on one date: when it opens and closes (UTC ns), and its place in its
    trading day."""

    open_ns: int
    close_ns: int
    window: int  # index in the schedule's windows
    opens_on: date  # the venue's local date it opens on
    trading_day: date
    first_of_day: bool
    last_of_day: bool


class EdgeKind(Enum):
    LOGOUT = 0
    END_OF_DAY = 1
    LOGON = 2  # the order of kinds at one instant: out first, then the day's end, then in


@dataclass(frozen=True)
class Edge:
    """What the runner does at ``at_ns``: log on, log out, or end the trading day."""

    at_ns: int
    kind: EdgeKind
    opening: Opening
    reset_seq: bool = False  # on a LOGON: reset sequence numbers first

    @property
    def key(self) -> tuple[int, int]:
        return (self.at_ns, self.kind.value)


def to_ns(moment: datetime) -> int:
    """An aware datetime as UTC ns, exactly (no float on the way)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def from_ns(t_ns: int, zone: ZoneInfo | None = None) -> datetime:
    """UTC ns as an aware datetime (in ``zone``, else UTC), to the microsecond below."""
    moment = _EPOCH + timedelta(microseconds=t_ns // NS_PER_US)
    return moment if zone is None else moment.astimezone(zone)


class Schedule:
    """The pure logic of one venue's schedule. Cheap to ask: each date's windows are worked
    out once."""

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self.zone = config.zone()
        self.lead_ns = int(config.logon_lead_s * NS_PER_S)
        self._holidays = frozenset(config.holidays)
        self._days: dict[date, list[tuple[int, int, int]]] = {}

    # -- instants --------------------------------------------------------------------------

    def instant(self, day: date, at: wall_time) -> int:
        """The wall-clock time ``at`` on ``day`` in the venue's zone, as UTC ns."""
        return to_ns(datetime.combine(day, at, tzinfo=self.zone))

    def local_day(self, t_ns: int) -> date:
        return from_ns(t_ns, self.zone).date()

    def _on(self, day: date) -> list[tuple[int, int, int]]:
        """(open ns, close ns, window index) of every window that opens on ``day``, in order."""
        found = self._days.get(day)
        if found is None:
            found = []
            if day not in self._holidays:
                weekday = WEEKDAYS[day.weekday()]
                for i, w in enumerate(self.config.windows):
                    if weekday in w.days:
                        close_day = day + timedelta(days=1) if w.crosses_midnight else day
                        found.append(
                            (self.instant(day, w.start), self.instant(close_day, w.end), i)
                        )
                found.sort()
            if len(self._days) > 4096:
                self._days.clear()
            self._days[day] = found
        return found

    # -- openings --------------------------------------------------------------------------

    def _ends_day(self, window: int) -> bool:
        return self.config.windows[window].end == self.config.day_ends

    def _opening(self, day: date, index: int) -> Opening:
        raw = self._on(day)
        open_ns, close_ns, window = raw[index]
        if self.config.day_ends is None:  # a trading day is a calendar date's windows
            return Opening(open_ns, close_ns, window, day, day, index == 0, index == len(raw) - 1)
        before = self._previous(day, index)
        last = self._ends_day(window)
        return Opening(
            open_ns,
            close_ns,
            window,
            day,
            self.local_day(close_ns) if last else self._trading_day_after(day, index),
            before is None or self._ends_day(before[2]),
            last,
        )

    def _previous(self, day: date, index: int) -> tuple[int, int, int] | None:
        if index > 0:
            return self._on(day)[index - 1]
        for back in range(1, SEARCH_DAYS + 1):
            raw = self._on(day - timedelta(days=back))
            if raw:
                return raw[-1]
        return None

    def _trading_day_after(self, day: date, index: int) -> date:
        """The trading day of a window that does not end one: the day of the next close that
        does."""
        for ahead in range(SEARCH_DAYS + 1):
            d = day + timedelta(days=ahead)
            for _, close_ns, window in self._on(d)[index + 1 if ahead == 0 else 0 :]:
                if self._ends_day(window):
                    return self.local_day(close_ns)
        return day

    def openings(self, from_day: date) -> Iterator[Opening]:
        """Every opening, in order, from the first that opens on ``from_day`` (local)."""
        empty = 0
        day = from_day
        while empty <= SEARCH_DAYS:
            raw = self._on(day)
            empty = 0 if raw else empty + 1
            for index in range(len(raw)):
                yield self._opening(day, index)
            day += timedelta(days=1)

    def _before(self, opening: Opening) -> Opening | None:
        day = opening.opens_on
        index = [o for o, _, _ in self._on(day)].index(opening.open_ns)
        if index > 0:
            return self._opening(day, index - 1)
        for back in range(1, SEARCH_DAYS + 1):
            d = day - timedelta(days=back)
            raw = self._on(d)
            if raw:
                return self._opening(d, len(raw) - 1)
        return None

    def current(self, t_ns: int) -> Opening | None:
        """The opening ``t_ns`` is in (open <= t < close), if any."""
        for o in self.openings(self.local_day(t_ns) - timedelta(days=1)):
            if o.open_ns > t_ns:
                return None
            if t_ns < o.close_ns:
                return o
        return None

    def in_session(self, t_ns: int) -> bool:
        return self.current(t_ns) is not None

    def next_opening(self, t_ns: int) -> Opening | None:
        """The first opening that opens after ``t_ns``."""
        for o in self.openings(self.local_day(t_ns) - timedelta(days=1)):
            if o.open_ns > t_ns:
                return o
        return None

    def next_edges(self, t_ns: int) -> tuple[int | None, int | None]:
        """(the next open, the next close) after ``t_ns``, as UTC ns; None where there is
        none within ``SEARCH_DAYS``. In session, the next close is the current window's."""
        current = self.current(t_ns)
        following = self.next_opening(t_ns)
        next_open = following.open_ns if following is not None else None
        if current is not None:
            return next_open, current.close_ns
        return next_open, following.close_ns if following is not None else None

    # -- what the runner does --------------------------------------------------------------

    def _bridged(self, before: Opening | None, opening: Opening) -> bool:
        """Whether the session stays up from ``before`` into ``opening``: the logon for it
        would come before ``before`` closes, and its sequence numbers are not to be reset."""
        return (
            before is not None
            and opening.open_ns - self.lead_ns <= before.close_ns
            and not self.resets(opening)
        )

    def resets(self, opening: Opening) -> bool:
        return self.config.reset_seq_daily and opening.first_of_day

    def _edges_of(
        self, before: Opening | None, opening: Opening, after: Opening | None
    ) -> Iterator[Edge]:
        if not self._bridged(before, opening):
            logon_ns = opening.open_ns - self.lead_ns
            if before is not None and logon_ns <= before.close_ns:
                logon_ns = before.close_ns  # log out, reset, log on again at the close
            yield Edge(logon_ns, EdgeKind.LOGON, opening, self.resets(opening))
        if after is None or not self._bridged(opening, after):
            yield Edge(opening.close_ns, EdgeKind.LOGOUT, opening)
        if opening.last_of_day:
            yield Edge(opening.close_ns, EdgeKind.END_OF_DAY, opening)

    def edges(self, after: tuple[int, int] | int) -> Iterator[Edge]:
        """The runner's edges after ``after`` (an instant, or an edge's ``key``), in order:
        a logon ``logon_lead_s`` before each opening, with sequence numbers reset first at
        a trading day's first window when ``reset_seq_daily``; a logout at each close; the
        end of the trading day after its last close. Windows whose logon would come before
        the previous close are bridged, the session staying up between them, unless their
        sequence numbers are to be reset (then the logon is at the close, after the logout).
        """
        key = (after, len(EdgeKind)) if isinstance(after, int) else after
        start = self.local_day(key[0] - self.lead_ns) - timedelta(days=1)
        it = self.openings(start)
        opening = next(it, None)
        if opening is None:
            return
        before = self._before(opening)
        while opening is not None:
            following = next(it, None)
            for edge in self._edges_of(before, opening, following):
                if edge.key > key:
                    yield edge
            before, opening = opening, following

    def next_edge(self, after: tuple[int, int] | int) -> Edge | None:
        return next(self.edges(after), None)

    def wanted_at(self, t_ns: int) -> tuple[bool, Opening | None]:
        """Whether the lines should be logged on at ``t_ns`` (from ``logon_lead_s`` before
        an opening to its close), and the opening whose sequence numbers are due to be
        reset now: one that resets, whose logon time has come but which has not opened."""
        on = False
        reset: Opening | None = None
        start = self.local_day(t_ns + self.lead_ns) - timedelta(days=1)
        for opening in self.openings(start):
            if opening.open_ns - self.lead_ns > t_ns:
                break
            if t_ns < opening.close_ns:
                on = True
                if t_ns < opening.open_ns and self.resets(opening):
                    before = self._before(opening)
                    if before is None or t_ns >= before.close_ns:
                        reset = opening
        return on, reset

    def describe(self, opening: Opening) -> str:
        w = self.config.windows[opening.window]
        opens = from_ns(opening.open_ns, self.zone)
        return (
            f"window {w.start.isoformat()}-{w.end.isoformat()} of {opens:%a %Y-%m-%d} "
            f"({self.config.timezone}), trading day {opening.trading_day}"
        )


# -- the runner ----------------------------------------------------------------------------


class SessionControl(Protocol):
    """What the runner needs from the gateway's FIX sessions (``GatewaySessions``)."""

    def logon(self, venue: str, role: LineRole | None = None) -> None: ...

    def logout(self, venue: str, role: LineRole | None = None, reason: str = ...) -> None: ...

    def reset_seq(self, venue: str, role: LineRole | None = None) -> None: ...


class Clock(Protocol):
    """UTC ns that advance at the real rate (the runner waits in real time)."""

    def now_ns(self) -> int: ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ShiftedClock:
    """A clock that reads ``start_ns`` when it is made and runs at the real rate from there:
    to run a schedule as if it were another time (a rehearsal, a test)."""

    def __init__(self, start_ns: int) -> None:
        self._offset = start_ns - time.time_ns()

    def now_ns(self) -> int:
        return time.time_ns() + self._offset


EndOfDay = Callable[[str, date, int], None]
"""An end-of-day job: ``job(venue, trading_day, close_ns)``, run after the day's last close."""


@dataclass(frozen=True)
class Action:
    """What the runner did, and when by its clock: kept for an operator's view."""

    at_ns: int
    venue: str
    what: str  # "logon", "reset_seq", "logout", "end_of_day", "missed"
    detail: str


class ScheduleRunner:
    """Logs scheduled venues on and off at their windows' edges.

    One APScheduler job is pending per venue: the next edge, with a ``DateTrigger`` in the
    venue's time zone. When it runs it acts and arms the edge after it, so a venue's actions
    never overlap. A job that runs so late that the next edge has passed too (the machine
    was suspended, the clock stepped) acts on no stale edge: the venue is brought to the
    state its schedule wants now. Venues without a schedule are not the runner's business.
    """

    def __init__(
        self,
        schedules: Mapping[str, Schedule],
        control: SessionControl,
        *,
        clock: Clock | None = None,
        end_of_day: Iterable[EndOfDay] = (),
        on_action: Callable[[Action], None] | None = None,
    ) -> None:
        """``end_of_day``: jobs run after each trading day's last close (more can be
        appended to ``self.end_of_day``); ``on_action``: told of every action, before it is
        taken (the gateway keeps a receipt of each)."""
        self.schedules = dict(schedules)
        self._on_action = on_action
        self.control = control
        self.clock: Clock = clock or SystemClock()
        self.end_of_day: list[EndOfDay] = list(end_of_day)
        self.actions: deque[Action] = deque(maxlen=1000)
        self.errors = 0
        self._lock = threading.Lock()
        # The runner logs each action itself; APScheduler's lines for every job would
        # double them at INFO.
        aps = logging.getLogger("apscheduler")
        if aps.level == logging.NOTSET:
            aps.setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
        )
        self._running = False
        self._pending: dict[str, str] = {}  # venue -> the id of its next edge's job
        self._job_ids = itertools.count(1)

    def start(self) -> None:
        """Bring every scheduled venue to the state its schedule wants now, then keep it so.

        Call it before the FIX sessions start, so that a venue outside its windows is never
        logged on, not even for a moment.
        """
        with self._lock:
            if self._running:
                return
            self._running = True
            self._scheduler.start()
        for venue in self.schedules:
            self._sync(venue)

    def stop(self) -> None:
        """Stop acting (an action under way completes); the sessions are left as they are."""
        with self._lock:
            if not self._running:
                return
            self._running = False
        self._scheduler.shutdown(wait=True)

    def pending(self) -> dict[str, Edge | None]:
        """Each venue's next edge, for an operator's view."""
        out: dict[str, Edge | None] = dict.fromkeys(self.schedules)
        for job in self._scheduler.get_jobs():
            venue, edge = job.args
            out[venue] = edge
        return out

    # -- the scheduler's thread ----------------------------------------------------------

    def _sync(self, venue: str) -> None:
        schedule = self.schedules[venue]
        now = self.clock.now_ns()
        try:
            on, reset = schedule.wanted_at(now)
            current = schedule.current(now)
            if on:
                if reset is not None:
                    self._do(venue, "reset_seq", schedule.describe(reset))
                    self.control.reset_seq(venue)
                elif current is not None and schedule.resets(current):
                    log.warning(
                        "%s: started inside the first window of trading day %s; sequence "
                        "numbers were not reset (they are reset only before the window opens)",
                        venue,
                        current.trading_day,
                    )
                self._do(venue, "logon", "in session" if current else "logon lead")
                self.control.logon(venue)
            else:
                self._do(venue, "logout", "outside its session windows")
                self.control.logout(venue, reason="outside its session windows")
        except Exception:
            self.errors += 1
            log.exception("%s: could not bring the lines to their scheduled state", venue)
        self._arm(venue, schedule.next_edge(now))

    def _arm(self, venue: str, edge: Edge | None) -> None:
        if edge is None:
            log.warning(
                "%s: no window opens within %d days; its lines stay as they are",
                venue,
                SEARCH_DAYS,
            )
            return
        if not self._running:
            return
        zone = self.schedules[venue].zone
        # The scheduler waits on the real clock: move the edge by the clock's offset from it.
        real_ns = edge.at_ns - (self.clock.now_ns() - time.time_ns())
        run_at = from_ns(real_ns + NS_PER_US - 1, zone)  # rounded up: never before the edge
        # A job of its own for each edge: APScheduler runs one instance per job id at a time,
        # and the next edge is armed (and may be due) while this one's job is still running.
        old = self._pending.get(venue)
        if old is not None:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(old)
        job = self._scheduler.add_job(
            self._fire,
            trigger=DateTrigger(run_date=run_at, timezone=zone),
            args=(venue, edge),
            id=f"schedule:{venue}:{next(self._job_ids)}",
            name=f"{venue} {edge.kind.name.lower()}",
        )
        self._pending[venue] = job.id

    def _fire(self, venue: str, edge: Edge) -> None:
        schedule = self.schedules[venue]
        following = schedule.next_edge(edge.key)
        now = self.clock.now_ns()
        if following is not None and following.at_ns > edge.at_ns and now >= following.at_ns:
            self._do(venue, "missed", f"{edge.kind.name.lower()} due at {edge.at_ns}")
            log.warning(
                "%s: the %s due at %s ran only at %s, after the next edge; bringing the "
                "lines to the state the schedule wants now",
                venue,
                edge.kind.name.lower(),
                from_ns(edge.at_ns, schedule.zone).isoformat(),
                from_ns(now, schedule.zone).isoformat(),
            )
            self._sync(venue)
            return
        try:
            self._act(venue, schedule, edge)
        except Exception:
            self.errors += 1
            log.exception("%s: the scheduled %s failed", venue, edge.kind.name.lower())
        self._arm(venue, following)

    def _act(self, venue: str, schedule: Schedule, edge: Edge) -> None:
        what = schedule.describe(edge.opening)
        if edge.kind is EdgeKind.LOGON:
            if edge.reset_seq:
                self._do(venue, "reset_seq", what)
                self.control.reset_seq(venue)
            self._do(venue, "logon", what)
            self.control.logon(venue)
        elif edge.kind is EdgeKind.LOGOUT:
            self._do(venue, "logout", what)
            self.control.logout(venue, reason="end of session")
        else:
            self._do(venue, "end_of_day", what)
            for job in list(self.end_of_day):
                try:
                    job(venue, edge.opening.trading_day, edge.at_ns)
                except Exception:
                    self.errors += 1
                    log.exception("%s: end-of-day job %r failed", venue, job)

    def _do(self, venue: str, what: str, detail: str) -> None:
        action = Action(self.clock.now_ns(), venue, what, detail)
        self.actions.append(action)
        log.info("%s: %s (%s)", venue, what.replace("_", " "), detail)
        if self._on_action is not None:
            try:
                self._on_action(action)
            except Exception:
                self.errors += 1
                log.exception("%s: could not report the scheduled %s", venue, what)
