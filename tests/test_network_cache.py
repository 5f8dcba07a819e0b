"""The disk cache of built bundled networks (simulators/grid_networks.py)."""
from pandapower.toolbox import nets_equal
import pytest

from simulators import grid_networks as gn


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LVFLEX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(gn, "_CACHE", {})
    return tmp_path


def test_a_cached_network_equals_a_fresh_build_and_is_not_rebuilt(cache, monkeypatch):
    net = gn.load_network("kerber_dorf")
    files = list((cache / "networks").glob("kerber_dorf-*.pkl"))
    assert len(files) == 1
    assert nets_equal(gn._build_seeded(gn.BUNDLED["kerber_dorf"]), net, check_only_results=False)
    monkeypatch.setattr(gn, "_CACHE", {})
    monkeypatch.setattr(gn, "_build_seeded", lambda factory: pytest.fail("rebuilt despite the cache"))
    assert nets_equal(gn.load_network("kerber_dorf"), net)


def test_a_truncated_entry_is_rebuilt_and_replaced(cache, monkeypatch):
    path = gn._cache_file("kerber_dorf")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x05trunc")
    net = gn.load_network("kerber_dorf")
    assert len(net.bus) == 116
    monkeypatch.setattr(gn, "_CACHE", {})
    assert len(gn.load_network("kerber_dorf").bus) == 116
    assert path.stat().st_size > 10_000


def test_an_unwritable_cache_directory_only_costs_the_build(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("LVFLEX_CACHE_DIR", str(blocker))
    monkeypatch.setattr(gn, "_CACHE", {})
    assert len(gn.load_network("kerber_dorf").bus) == 116
    assert blocker.read_text().startswith("a file")
