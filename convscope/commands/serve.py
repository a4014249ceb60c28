"""``convscope serve RUN_DIR``: build the report and serve it on 127.0.0.1 (for people who prefer a URL)."""
from __future__ import annotations

import argparse

from . import _inputs

HELP = "build the report of a run and serve it at http://127.0.0.1:PORT/ (local only)"
DESCRIPTION = """Build RUN_DIR's report (as 'convscope report' does) and serve its folder over HTTP on 127.0.0.1
only; nothing is reachable from other machines. Only the site's own regular files are served: a link that leads
out of the site, a folder listing or a dotfile is 404. Stop with Ctrl-C. The report itself needs no server: its
index.html also opens straight from disk."""
ORDER = 71


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder (the --out-dir of convscope train)")
    parser.add_argument("--out", default=None, help="site folder (default: RUN_DIR/report)")
    parser.add_argument("--port", type=_inputs.count, default=8000, help="TCP port on 127.0.0.1 (0 = any free port)")


def make_server(directory, port: int):
    """A quiet HTTP server for ``directory`` bound to 127.0.0.1:``port`` (not started). It serves only regular
    files inside ``directory`` once links are resolved (a link out of the site is 404), no directory listings
    (a folder is its ``index.html``), no dotfiles, and says nothing when a client hangs up."""
    import functools
    import sys
    from http import HTTPStatus
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    root = Path(directory).resolve()

    class Handler(SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:  # "" for anything not to be served
            return str(servable(root, Path(super().translate_path(path))) or "")

        def send_head(self):
            if not self.translate_path(self.path):
                self.send_error(HTTPStatus.NOT_FOUND, "File not found")
                return None
            return super().send_head()

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a closed tab or curl's Ctrl-C: nothing to say
                super().handle_error(request, client_address)

    return Server(("127.0.0.1", port), functools.partial(Handler, directory=str(root)))


def servable(root, path):
    """``path`` (under the resolved ``root``; a folder means its index.html) with its links resolved, if it is a
    regular file inside ``root`` and no name on the way, before or after resolving, starts with a dot; else None."""
    if path.is_dir():
        path = path / "index.html"
    real = path.resolve()
    try:
        names = path.relative_to(root).parts + real.relative_to(root).parts
    except ValueError:  # outside the site, as asked or once links are followed
        return None
    if any(name.startswith(".") for name in names):
        return None
    return real if real.is_file() else None


def run(args: argparse.Namespace) -> int:
    from ..util.errors import UserError
    from .report import build

    index = build(args.run_dir, args.out)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, not {args.port}")
    try:
        server = make_server(index.parent, args.port)
    except OSError as err:
        raise UserError(f"cannot listen on 127.0.0.1:{args.port} ({err.strerror}); try another --port") from None
    with server:
        print(f"serving {index.parent} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    return 0
