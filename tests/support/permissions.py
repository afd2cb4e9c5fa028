"""Running a command bound by file permissions, as a person is, though the tests run as root."""

from __future__ import annotations

import os


def without_the_power_to_ignore_permissions() -> list[str]:
    """A prefix that runs a command as this user but bound by file permissions, as a person is.

    The tests run as root, which reads any folder whatever its mode; ``setpriv`` (util-linux) takes away
    the two capabilities that let it, so a folder with mode 000 is refused to the command as to anyone.
    """
    if os.geteuid() != 0:
        return []
    dropped = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={dropped}", f"--bounding-set={dropped}", "--"]
