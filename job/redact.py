"""Keep secrets out of every line the job prints.

Two layers: known secret values (registered when the URL is parsed) are
replaced wherever they appear, and anything shaped like URL credentials or a
``password=`` conninfo pair is masked even if it was never registered.
"""

from __future__ import annotations

import re
from urllib.parse import quote

MASK = "***"
SHORT = 4

_secrets: set[str] = set()

# scheme://user:password@  ->  scheme://user:***@
_URL_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)@")
# password=xyz or password='x y'  (libpq conninfo)
_CONNINFO_PW = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def register_secret(value: str) -> None:
    """Remember a secret so it is masked wherever it shows up later."""
    if value:
        _secrets.update({value, quote(value, safe=""), quote(value)})


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if len(secret) >= SHORT:
            text = text.replace(secret, MASK)
        else:  # masking "pw" inside every word would garble lines; mask it where it stands alone
            text = re.sub(rf"(?<![\w%]){re.escape(secret)}(?![\w%])", MASK, text)
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _CONNINFO_PW.sub(lambda m: f"{m['head']}{MASK}", text)
