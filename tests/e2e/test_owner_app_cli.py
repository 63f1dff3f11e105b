"""``doorward owner app`` as people start it: the address with its token is printed, the server
answers on 127.0.0.1 only, 401 without the token, and the bucket flags are remembered."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import DOORWARD, doorward

pytest.importorskip("uvicorn")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_owner_app_prints_its_address_and_guards_it(tmp_path: Path) -> None:
    owner = tmp_path / "owner"
    doorward("owner", "--owner-dir", str(owner), "init")
    proc = subprocess.Popen([DOORWARD, "owner", "--owner-dir", str(owner), "app", "--no-browser",
                             "--bucket", "clips", "--endpoint-url", "http://127.0.0.1:1",
                             "--addressing-style", "path"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = ""
        while "http://" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.communicate()[1]
        url = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", line)
        assert url, line
        base = f"http://127.0.0.1:{url.group(1)}"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/api/me", timeout=5)
        assert err.value.code == 401
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as signed_in:
            opener.open(url.group(0), timeout=5)
        assert signed_in.value.code == 303
        cookie = signed_in.value.headers["set-cookie"].split(";", 1)[0]
        req = urllib.request.Request(base + "/api/me", headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=5) as r:
            me = json.loads(r.read())
            assert r.headers["cache-control"] == "no-store"
        assert me["bucket"]["bucket"] == "clips"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    remembered = json.loads((owner / "app.json").read_text())["bucket"]
    assert remembered == {"bucket": "clips", "endpoint_url": "http://127.0.0.1:1",
                          "prefix": "doorward", "region": "us-east-1",
                          "addressing_style": "path"}
