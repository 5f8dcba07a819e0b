"""Scenario fuzzer: seeded mutations of the bundled scenarios go through `cosim validate` (and a sample
through a very short `cosim run`) in-process: no traceback ever, every exit code 0 or 2 (issue 15).

Mutations act on the YAML text (bytes flipped or inserted, lines dropped or repeated, the file cut) and
on the parsed data (a field replaced by an extreme or wrongly typed value, removed, or an unknown one
added). A failure names the seed that reproduces it: ``mutate(scenario_text, random.Random(seed))``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import random

import pytest
import yaml

from cosim.cli import main
from cosim.scenario import bundled_scenarios

EXTREMES = [float("inf"), float("-inf"), float("nan"), 0, -1, 0.5, 1e30, -1e30, 2**64 + 1, -(2**63), True, False,
            None, "", "x" * 10_000, "{foo}", "results/{name.h5", "\u00ff\u202e", [], {}, [[[[1]]]], {"a": {"b": 1}},
            "1d", "PT1H", ".inf", "2026-13-45T99:00:00", "127.0.0.1:0", "/proc/x.h5", "d1.h999"]
TEXT_INSERTS = [b"\xff", b"\x00", b"[" * 500, b"{", b"}", b": ", b"\n  - ", b"&a [*a]", b"!!python/object:os.system",
                b"\t", b"'", b'"', b"%TAG", b"---\n", b"..."]


def _extreme(rng: random.Random):
    return copy.deepcopy(rng.choice(EXTREMES))


def _paths(node, prefix=()):
    """Every (path, value) of a parsed YAML tree."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate_data(data, rng: random.Random) -> str:
    paths = [p for p, _ in _paths(data) if p]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path = rng.choice(paths)
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        op = rng.random()
        if op < 0.65:
            parent[path[-1]] = _extreme(rng)
        elif op < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["bogus", "seed2", "Duration", "output "])] = _extreme(rng)
        else:
            parent.append(_extreme(rng))
        paths = [p for p, _ in _paths(data) if p]
        if not paths:
            break
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _mutate_text(text: bytes, rng: random.Random) -> bytes:
    op = rng.randrange(5)
    if op == 0:  # insert a troublesome token
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(TEXT_INSERTS) + text[i:]
    if op == 1:  # flip a byte
        i = rng.randrange(len(text))
        return text[:i] + bytes([rng.randrange(256)]) + text[i + 1:]
    lines = text.split(b"\n")
    if op == 2:  # drop a line
        del lines[rng.randrange(len(lines))]
    elif op == 3:  # repeat a line
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    else:  # cut the file
        return text[: rng.randrange(len(text))]
    return b"\n".join(lines)


def mutate(text: str, rng: random.Random) -> bytes:
    if rng.random() < 0.6:
        return _mutate_data(yaml.safe_load(text), rng).encode()
    return _mutate_text(text.encode(), rng)


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _short_run_version(data: dict) -> dict | None:
    """The mutant cut to a run of two steps (no warm-up, a few households), or None if it cannot run
    without lab devices."""
    if not isinstance(data, dict) or data.get("hil") or data.get("realtime"):
        return None
    data = dict(data, duration=120, step=60, evaluation={"warmup": 60, "cooldown": 60})
    districts = data.get("districts")
    if isinstance(districts, list):
        data["districts"] = [dict(d, households=min(d.get("households", 1), 3)) if isinstance(d, dict)
                             and isinstance(d.get("households"), int) else d for d in districts]
    return data


def fuzz(tmp_path, n: int, runs: int, seed0: int) -> dict[int, int]:
    scenarios = sorted(bundled_scenarios().items())
    texts = [(name, path.read_text(encoding="utf-8")) for name, path in scenarios]
    codes: dict[int, int] = {}
    valid = []
    for seed in range(seed0, seed0 + n):
        rng = random.Random(seed)
        name, text = texts[seed % len(texts)]
        path = tmp_path / f"m{seed}.yaml"
        path.write_bytes(mutate(text, rng))
        try:
            code, err = _cli(["validate", str(path)])
        except Exception as exc:  # noqa: BLE001 - the failure must name the seed
            raise AssertionError(f"seed {seed} ({name}): validate raised {type(exc).__name__}: {exc}") from exc
        assert code in (0, 2) and "Traceback" not in err, f"seed {seed} ({name}): exit {code}: {err}"
        codes[code] = codes.get(code, 0) + 1
        if code == 0:
            valid.append((seed, name, path))
    rng = random.Random(seed0)
    for seed, name, path in rng.sample(valid, min(runs, len(valid))):
        short = _short_run_version(yaml.safe_load(path.read_text(encoding="utf-8")))
        if short is None:
            continue
        path.write_text(yaml.safe_dump(short, sort_keys=False, allow_unicode=True), encoding="utf-8")
        out = tmp_path / f"m{seed}.h5"
        try:
            code, err = _cli(["run", str(path), "--quiet", "--out", str(out)])
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"seed {seed} ({name}): run raised {type(exc).__name__}: {exc}") from exc
        assert code in (0, 2) and "Traceback" not in err, f"seed {seed} ({name}): run exit {code}: {err}"
        codes[100 + code] = codes.get(100 + code, 0) + 1
    return codes


def test_fuzz_fast(tmp_path):
    codes = fuzz(tmp_path, n=50, runs=2, seed0=0)
    assert codes.get(0, 0) + codes.get(2, 0) == 50 and codes.get(2, 0) > 0


@pytest.mark.slow
def test_fuzz_1000_mutations(tmp_path):
    codes = fuzz(tmp_path, n=1000, runs=12, seed0=10_000)
    assert codes.get(0, 0) + codes.get(2, 0) == 1000
    assert codes.get(0, 0) > 50 and codes.get(2, 0) > 300  # both outcomes are exercised
