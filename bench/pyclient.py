"""The user's view of ftpd: one get or put through ftpd.client (what ftpc
uses), timed from connect to the final reply. Prints one JSON object.

    python3 bench/pyclient.py get PORT NAME      (into /dev/null)
    python3 bench/pyclient.py put PORT PATH      (stored as up.bin)
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftpd.client import Client  # noqa: E402


def main(verb: str, port: str, arg: str) -> int:
    started = time.monotonic()
    with Client("127.0.0.1", int(port), timeout=60) as client:
        if verb == "get":
            size = client.get(arg, "/dev/null")
        else:
            size, _ = client.put(arg, "up.bin")
    print(json.dumps({"seconds": time.monotonic() - started, "bytes": size, "errors": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
