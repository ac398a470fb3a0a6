"""The errors this package raises, one small tree.

    DropshipPipelineError
    ├── SettingsError (ValueError)         a setting is missing or malformed
    ├── FeedPageError (ValueError)         a feed page could not be parsed; names the page URL
    ├── DropshipApiError                   a call to the Dropship service failed
    │   ├── DropshipAuthError              the token endpoint refused the credentials
    │   └── DropshipUnavailableError       transient failures outlasted the retry budget
    ├── DropError (OSError)                the ERP file drop (local folder or SFTP) failed
    │   └── HostKeyError                   an SFTP host key is unknown or changed
    └── ConfirmationError (ValueError)     a confirmation file cannot be read at all

Every message is one sentence that names the thing (page, order, file, row) and what to do.
"""

from __future__ import annotations


class DropshipPipelineError(Exception):
    """Base class of every error raised on purpose by this package."""


class SettingsError(DropshipPipelineError, ValueError):
    """A setting is missing or malformed; the message names the variable."""


class FeedPageError(DropshipPipelineError, ValueError):
    """A feed page could not be parsed. The crawl stops at this page and skips nothing."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"Feed page {url} could not be parsed ({reason}); the crawl stopped before it, "
            "nothing after it was skipped: fix or wait for the page and run again."
        )
        self.url = url
        self.reason = reason


class DropshipApiError(DropshipPipelineError):
    """A call to the Dropship service failed with a response that retrying will not fix."""

    def __init__(
        self, call: str, message: str, *, status_code: int | None = None, body: str = ""
    ) -> None:
        super().__init__(message)
        self.call = call
        self.status_code = status_code
        self.body = body


class DropshipAuthError(DropshipApiError):
    """The token endpoint refused the grant (wrong client or user credentials)."""


class DropshipUnavailableError(DropshipApiError):
    """429, 5xx, timeouts or dropped connections outlasted the retry budget."""


class DropError(DropshipPipelineError, OSError):
    """The ERP file drop failed: a local folder or an SFTP server."""


class HostKeyError(DropError):
    """The SFTP server's host key is not in the known-hosts file, or differs from it."""


class ConfirmationError(DropshipPipelineError, ValueError):
    """A confirmation file cannot be read at all (format, encoding, size, missing column)."""
