"""Whether the pods' own uid can read this checkout, for the lab's process runtime.

Without a container engine the frontend and backend pods run from the checkout
as the manifests' uid (10001), which is neither its owner nor in its group: every
directory on the way must be searchable by others. A clone in a Debian home
directory (mode 0700) is not, and the pods would only crash-loop.
"""

from __future__ import annotations

import stat
from pathlib import Path


def blocking_directory(checkout: Path) -> Path | None:
    """The first directory, from / down to `checkout`, that others may not enter."""
    resolved = checkout.resolve()
    for directory in [*reversed(resolved.parents), resolved]:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return directory
    return None
