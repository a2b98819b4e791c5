"""Third-party warnings stay out of what a user reads.

A library's deprecation notice (asyncssh importing cryptography's DSA classes prints ten
`CryptographyDeprecationWarning` lines on every start) says nothing a saf user can act on,
and Textual draws on stderr, so `2>/dev/null` is no way out. saf's front door calls `keep_out()`
before any command imports a library: every warning attributed to a module outside `saf` is
dropped; saf's own warnings still show. A person who asked for warnings (`python -W ...`,
`PYTHONWARNINGS`) gets exactly what they asked for.
"""

from __future__ import annotations

import sys
import warnings

# A module name that is neither `saf` nor inside it (filters match from the name's start).
NOT_SAF = r"(?!saf(\.|$))"


def keep_out() -> None:
    """Drop warnings from every module but saf's, unless the user set warning options."""
    if sys.warnoptions:
        return
    warnings.filterwarnings("ignore", module=NOT_SAF)
