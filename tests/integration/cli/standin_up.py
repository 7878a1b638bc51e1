"""``dealwatch up`` with stand-in children (the real broker, topics and database): run as a script by
test_up.py. The web stand-in answers /readyz and writes the environment it was given to ``DW_ENV_DUMP``."""

from __future__ import annotations

import asyncio
import sys

from dealwatch.runplan import plan_run
from dealwatch.supervisor import ChildSpec
from dealwatch.up import Up
from services.common.settings import load_settings

WEB = """
import http.server, json, os, pathlib
pathlib.Path(os.environ["DW_ENV_DUMP"]).write_text(json.dumps(dict(os.environ)))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("stand-in web listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["DEALWATCH_HTTP_PORT"])), Handler).serve_forever()
"""

WORKER = "import time\nprint('stand-in worker running', flush=True)\nwhile True: time.sleep(1)\n"


def stand_ins(env: dict[str, str]) -> list[ChildSpec]:
    return [
        ChildSpec("web", [sys.executable, "-c", WEB], env),
        ChildSpec("detector", [sys.executable, "-c", WORKER], env),
    ]


if __name__ == "__main__":
    port = int(sys.argv[1])
    sys.exit(asyncio.run(Up(plan_run(load_settings(), port), demo=False, children=stand_ins).run()))
