"""Kestra's `date`, `dateAdd` and `now` (docs/expressions.md#dates): Java `DateTimeFormatter`
patterns (`yyyy-MM-dd'T'HH:mm:ss`) and Kestra's named formats, written from the pattern letters'
documented meaning. A pattern is at most MAX_PATTERN_CHARS long, so a format cannot grow a render.
"""
import calendar
import datetime as dt
import re
import zoneinfo

MAX_PATTERN_CHARS = 200

NAMED_FORMATS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "iso_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX'['VV']'",
    "iso_date": "yyyy-MM-ddXXX",
    "iso_time": "HH:mm:ss.SSSSSSXXX",
    "iso_local_date": "yyyy-MM-dd",
    "iso_instant": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'",
    "iso_local_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
    "iso_local_time": "HH:mm:ss.SSSSSS",
    "iso_offset_time": "HH:mm:ss.SSSSSSXXX",
    "iso_ordinal_date": "yyyy-DDDXXX",
    "iso_week_date": "YYYY-'W'ww-eXXX",
    "iso_zoned_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX'['VV']'",
    "rfc_1123_date_time": "EEE, d MMM yyyy HH:mm:ss 'GMT'",
    "full": "EEEE, MMMM d, yyyy 'at' h:mm:ss a VV",
    "long": "MMMM d, yyyy 'at' h:mm:ss a z",
    "medium": "MMM d, yyyy, h:mm:ss a",
    "short": "M/d/yy, h:mm a",
}

UNITS = {"NANOS", "MICROS", "MILLIS", "SECONDS", "MINUTES", "HOURS", "HALF_DAYS", "DAYS", "WEEKS", "MONTHS",
         "YEARS", "DECADES", "CENTURIES", "MILLENNIA"}
_FIXED_UNITS = {"NANOS": dt.timedelta(microseconds=0.001), "MICROS": dt.timedelta(microseconds=1),
                "MILLIS": dt.timedelta(milliseconds=1), "SECONDS": dt.timedelta(seconds=1),
                "MINUTES": dt.timedelta(minutes=1), "HOURS": dt.timedelta(hours=1),
                "HALF_DAYS": dt.timedelta(hours=12), "DAYS": dt.timedelta(days=1), "WEEKS": dt.timedelta(weeks=1)}
_MONTHS_IN = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}

_TOKEN = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|[^A-Za-z']+")


class DateError(ValueError):
    pass


def zone(name: str | None) -> dt.tzinfo:
    if name is None:
        return dt.timezone.utc
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DateError(f"unknown time zone '{str(name)[:80]}'") from None


def _offset(value: dt.datetime, colon: bool, zulu: bool, hours_only: bool = False) -> str:
    offset = value.utcoffset() or dt.timedelta(0)
    if zulu and not offset:
        return "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    if hours_only and not minutes:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def _field(letter: str, count: int, value: dt.datetime) -> str:
    def number(n: int) -> str:
        return str(n).zfill(count)

    if letter in "yu":
        return f"{value.year % 100:02d}" if count == 2 else number(value.year)
    if letter == "Y":
        year = value.isocalendar()[0]
        return f"{year % 100:02d}" if count == 2 else number(year)
    if letter in "ML":
        if count >= 4:
            return calendar.month_name[value.month]
        return calendar.month_abbr[value.month] if count == 3 else number(value.month)
    if letter == "d":
        return number(value.day)
    if letter == "D":
        return number(value.timetuple().tm_yday)
    if letter == "H":
        return number(value.hour)
    if letter == "h":
        return number(value.hour % 12 or 12)
    if letter == "k":
        return number(value.hour or 24)
    if letter == "K":
        return number(value.hour % 12)
    if letter == "m":
        return number(value.minute)
    if letter == "s":
        return number(value.second)
    if letter == "S":
        return f"{value.microsecond:06d}000"[:count].ljust(count, "0")
    if letter == "n":
        return number(value.microsecond * 1000)
    if letter == "a":
        return "AM" if value.hour < 12 else "PM"
    if letter == "E":
        return calendar.day_name[value.weekday()] if count >= 4 else calendar.day_abbr[value.weekday()]
    if letter in "e":
        return number(value.isoweekday())
    if letter == "w":
        return number(value.isocalendar()[1])
    if letter == "X":
        return _offset(value, colon=count >= 3 and count != 4, zulu=True, hours_only=count == 1)
    if letter == "x":
        return _offset(value, colon=count >= 3 and count != 4, zulu=False, hours_only=count == 1)
    if letter == "Z":
        return _offset(value, colon=count == 5, zulu=count == 5)
    if letter == "z":
        return value.tzname() or _offset(value, colon=True, zulu=False)
    if letter == "V":
        return getattr(value.tzinfo, "key", None) or value.tzname() or "Z"
    if letter == "O":
        return "GMT" + _offset(value, colon=True, zulu=False)
    raise DateError(f"the date pattern letter '{letter}' is not supported")


def _pattern(format_name: str) -> str:
    pattern = NAMED_FORMATS.get(format_name, format_name)
    if not isinstance(pattern, str):
        raise DateError("a date format is a string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise DateError(f"a date format is longer than {MAX_PATTERN_CHARS} characters")
    return pattern


def format_date(value: dt.datetime, format_name: str) -> str:
    parts = []
    for match in _TOKEN.finditer(_pattern(format_name)):
        text = match.group()
        if text.startswith("'"):
            parts.append(text[1:-1].replace("''", "'") if text != "''" else "'")
        elif match.group(1):
            parts.append(_field(match.group(1), len(text), value))
        else:
            parts.append(text)
    return "".join(parts)


_STRPTIME = {"yyyy": "%Y", "uuuu": "%Y", "yy": "%y", "MM": "%m", "M": "%m", "MMM": "%b", "MMMM": "%B",
             "dd": "%d", "d": "%d", "HH": "%H", "H": "%H", "hh": "%I", "h": "%I", "mm": "%M", "m": "%M",
             "ss": "%S", "s": "%S", "a": "%p", "EEE": "%a", "EEEE": "%A", "DDD": "%j", "XXX": "%z", "XX": "%z",
             "X": "%z", "xxx": "%z", "xx": "%z", "Z": "%z", "z": "%Z"}


def _parse_with(text: str, format_name: str) -> dt.datetime:
    directives = []
    for match in _TOKEN.finditer(_pattern(format_name)):
        token = match.group()
        if token.startswith("'"):
            directives.append(token[1:-1].replace("''", "'").replace("%", "%%"))
        elif match.group(1):
            if token[0] == "S":
                directives.append("%f")
            elif token in _STRPTIME:
                directives.append(_STRPTIME[token])
            else:
                raise DateError(f"the date pattern '{token}' cannot be used to read a date")
        else:
            directives.append(token.replace("%", "%%"))
    try:
        return dt.datetime.strptime(text.replace("Z", "+0000") if text.endswith("Z") else text, "".join(directives))
    except ValueError:
        raise DateError(f"'{text[:80]}' does not match the date format '{format_name[:80]}'") from None


def to_datetime(value, tz: dt.tzinfo, existing_format: str | None = None) -> dt.datetime:
    """A date from a datetime, a date (noon), epoch seconds, or text (ISO-8601, or `existing_format`)."""
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, dt.date):
        result = dt.datetime.combine(value, dt.time(12))
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, tz)
        except (OverflowError, OSError, ValueError):
            raise DateError(f"{value} seconds since 1970 is not a date") from None
    elif isinstance(value, str):
        text = value.strip()
        if existing_format is not None:
            result = _parse_with(text, existing_format)
        else:
            try:
                result = dt.datetime.fromisoformat(text)
            except ValueError:
                raise DateError(f"'{text[:80]}' is not an ISO-8601 date; name its format with "
                                f"existingFormat") from None
    else:
        raise DateError(f"a {type(value).__name__} is not a date")
    return result.replace(tzinfo=tz) if result.tzinfo is None else result.astimezone(tz)


def add(value: dt.datetime, amount: int, unit: str) -> dt.datetime:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise DateError("dateAdd's amount is an integer")
    if unit not in UNITS:
        raise DateError(f"dateAdd's unit is one of {', '.join(sorted(UNITS))}, not '{str(unit)[:40]}'")
    try:
        if unit in _FIXED_UNITS:
            return value + amount * _FIXED_UNITS[unit]
        months = value.year * 12 + value.month - 1 + amount * _MONTHS_IN[unit]
        year, month = divmod(months, 12)
        day = min(value.day, calendar.monthrange(year, month + 1)[1])
        return value.replace(year=year, month=month + 1, day=day)
    except (OverflowError, ValueError):
        raise DateError(f"adding {amount} {unit} goes past the dates that can be written") from None
