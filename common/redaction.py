"""Passwords masked out of text before it is written to a log line.

Its own module because both log writers use it: the formatter of every line
(common/logging.py) and the access log (common/access_log.py), which
configure_logging binds; in either of them it made an import cycle.
"""

from __future__ import annotations

import re

# Anything shaped like `scheme://user:password@host` has its password masked
# before it is written, wherever it appears in a message or exception. The
# password runs to the last "@" of the authority (which a "/", "?" or "#"
# ends), as URL parsers read it: a password with an "@" of its own is masked
# whole, not up to its first "@".
_URL_PASSWORD = re.compile(r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^\s/?#]*@")


def redact(text: str) -> str:
    # Nearly every field of every line has no "@": skip the regex for those.
    if "@" not in text:
        return text
    return _URL_PASSWORD.sub(r"\g<prefix>***@", text)
