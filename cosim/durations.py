"""Parse human durations ("1d", "15min", "90s", "1h30min", "PT1H") into milliseconds."""

from __future__ import annotations

import math
import re

_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "sec": 1000,
    "min": 60_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)")
# longest accepted duration: a century. Scenario times are datetimes (year <= 9999) and a study spans
# days to years; anything longer is a typo and would overflow the date arithmetic.
MAX_DURATION_MS = 36_525 * 86_400_000
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration_ms(value: str | int | float) -> int:
    """Return the duration in milliseconds; raise ValueError with a readable message.

    Numbers are seconds. Strings: sequences like "1d", "1h30min", "500ms", or ISO-8601 "PT15M".
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '1d', '15min' or seconds, got {value!r}")
    if isinstance(value, (int, float)):
        ms = value * 1000
    else:
        text = str(value).strip().lower()
        iso = _ISO.match(text.upper())
        if iso and text.upper() != "P":
            d, h, m, s = iso.groups()
            ms = (int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)) * 1000
        else:
            negative = text.startswith("-")
            body = text.lstrip("-").replace(" ", "")
            pos, ms = 0, 0.0
            for match in _PART.finditer(body):
                if match.start() != pos:
                    break
                ms += float(match.group(1)) * _UNITS_MS[match.group(2)]
                pos = match.end()
            if pos != len(body) or not body:
                raise ValueError(
                    f"expected a duration like '1d', '15min', '90s' or 'PT1H', got {value!r}"
                )
            ms = -ms if negative else ms
    if not math.isfinite(ms):
        raise ValueError(f"expected a finite duration, got {value!r}")
    if ms <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    if ms > MAX_DURATION_MS:
        raise ValueError(f"expected a duration of at most 100 years, got {value!r}")
    if ms != int(ms):
        raise ValueError(f"durations are resolved to whole milliseconds, got {value!r}")
    return int(ms)


def format_duration_ms(ms: int) -> str:
    for unit in ("w", "d", "h", "min", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"
