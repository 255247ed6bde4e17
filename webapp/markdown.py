"""Text a user supplied (an upload's file name, an error about it), shown as typed.

Streamlit renders Markdown in alerts, captions and labels: a file named ``[click](https://x)`` would
become a live link. Every ASCII punctuation character is backslash-escaped (CommonMark shows an
escaped one as itself), and line breaks become spaces, so such text cannot format the page.

Example::

    >>> as_text("a_**b**.jpg")
    'a\\\\_\\\\*\\\\*b\\\\*\\\\*\\\\.jpg'
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def as_text(text) -> str:
    """``text`` escaped for Streamlit's Markdown elements: it shows exactly as written."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).splitlines()))
