import functools
import http.server
import shutil
import subprocess
import sys
import threading

import pytest

from rsviz.data import catalog
from rsviz.errors import ChecksumError, DataMissingError, UnknownNameError


def test_registry_covers_every_dataset_with_hashes_and_origins():
    assert len(catalog.list_datasets()) == 12
    for name in catalog.list_datasets():
        fs = catalog.files(name)
        assert fs, name
        for f in fs:
            assert len(f.sha256) == 64 and f.path.startswith(name + "/")
            assert f.origin.startswith("https://") or f.origin.startswith("PyPI package ")
    with pytest.raises(UnknownNameError, match="valid names: alexandria-height"):
        catalog.files("nope")


def test_missing_data_error_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv(catalog.ENV_VAR, str(tmp_path))
    with pytest.raises(DataMissingError, match="python -m rsviz data fetch eth-roads"):
        catalog.local_path("eth-roads", "data/training/images/satImage_001.png")
    rep = catalog.verify("joplin-buildings")
    assert not rep.passed and len(rep.missing) == 6


@pytest.fixture()
def local_origin(mirror):
    """Serve the mirror over HTTP on loopback, standing in for the public origins."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_fetch_downloads_and_checks_sha256(tmp_path, monkeypatch, local_origin):
    import urllib.parse

    monkeypatch.setenv(catalog.ENV_VAR, str(tmp_path / "cache"))
    entries = catalog.files("alexandria-height")
    served = [
        catalog.FileEntry(e.dataset, e.path, e.sha256, e.size, f"{local_origin}/{urllib.parse.quote(e.path)}")
        for e in entries
    ]
    monkeypatch.setattr(catalog, "files", lambda name: served if name == "alexandria-height" else [])
    calls = []
    catalog.fetch("alexandria-height", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(served), len(served))
    assert catalog.verify("alexandria-height").passed
    # a wrong checksum in the registry is caught at download time
    bad = [catalog.FileEntry(served[0].dataset, served[0].path.replace("dsm", "dsm2"), "0" * 64, 1, served[0].origin)]
    monkeypatch.setattr(catalog, "files", lambda name: bad)
    with pytest.raises(ChecksumError):
        catalog.fetch("alexandria-height")


@pytest.mark.realdata
def test_every_catalog_file_verifies(mirror):
    for name in catalog.list_datasets():
        rep = catalog.verify(name)
        assert rep.passed, (name, rep.missing[:3], rep.corrupt[:3])


@pytest.mark.realdata
def test_verify_cli_names_a_corrupted_file_and_fails(mirror, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(mirror / "joplin-buildings", dst / "joplin-buildings")
    victim = dst / "joplin-buildings/tests/data/input/pre/tile_337-9136.tif"
    data = bytearray(victim.read_bytes())
    data[5000] ^= 0xFF
    victim.write_bytes(bytes(data))
    env = {**__import__("os").environ, catalog.ENV_VAR: str(dst)}
    ok = subprocess.run(
        [sys.executable, "-m", "rsviz", "data", "verify", "joplin-buildings"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 1
    assert "tile_337-9136.tif" in ok.stdout and "corrupt" in ok.stdout
    good = subprocess.run(
        [sys.executable, "-m", "rsviz", "data", "verify", "alexandria-height"],
        env={**env, catalog.ENV_VAR: str(mirror)},
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and "OK" in good.stdout
