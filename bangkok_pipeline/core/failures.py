"""One line for a failure, naming the cause a person can act on (a full disk, a lost database
server) instead of the wrapper that reported it last; the traceback stays for those who ask.

An error is seen as a chain of (class name, message) links, outermost first: from a live
exception (`__cause__` / `__context__`) or from what a framework serialized of one.
"""

import re
from collections.abc import Iterable, Sequence

Link = tuple[str, str]  # class name, message without the "Class: " prefix

_OS_ERROR = re.compile(r"\[Errno (\d+)\] ([^:\n]+)(?::\s*'([^'\n]+)')?", re.IGNORECASE)
_RUST_OS_ERROR = re.compile(r"([A-Za-z][^:()\n]*?) \(os error (\d+)\)")
_CLOSED = (
    "server closed the connection",
    "terminating connection",
    "consuming input failed",
    "connection has been closed",
    "the connection is lost",
    "ssl connection has been closed",
)
_UNREACHABLE = (
    "connection to server",
    "could not connect to server",
    "cannot connect to postgresql",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "too many retries for db connection",
    "connection refused",
    "connection timed out",
)
_WRAPPERS = ("DagsterExecution", "DagsterUserCode", "DagsterInvariant")


def exception_links(error: BaseException) -> list[Link]:
    """The chain of a live exception, outermost first."""
    links: list[Link] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append((type(current).__name__, str(current)))
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return links


def strip_class(cls_name: str, message: str) -> str:
    """`psycopg.OperationalError: text` -> `text`, as tracebacks format a message."""
    return re.sub(rf"^[\w.]*{re.escape(cls_name)}:\s*", "", message.strip())


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def os_error_number(text: str) -> int | None:
    """The errno an error message reports (`[Errno 28] ...`, Rust's `... (os error 28)`)."""
    found = _OS_ERROR.search(text)
    if found:
        return int(found.group(1))
    found = _RUST_OS_ERROR.search(text)
    return int(found.group(2)) if found else None


def os_error(links: Iterable[Link]) -> str | None:
    """`No space left on device: /path` for the first OS-level error in the chain."""
    for _, message in links:
        found = _OS_ERROR.search(message)
        if found:
            text, path = found.group(2).strip(), found.group(3)
            return f"{text}: {path}" if path else text
        found = _RUST_OS_ERROR.search(message)
        if found:
            return found.group(1).strip()
    return None


def lost_server(links: Iterable[Link]) -> str | None:
    """How the database server was lost, if that is what happened."""
    texts = [message.lower() for _, message in links]
    if any(pattern in text for text in texts for pattern in _CLOSED):
        return "the database server closed the connection"
    if any(pattern in text for text in texts for pattern in _UNREACHABLE):
        return "the database server is not answering"
    return None


def summarize(links: Sequence[Link], server: str | None = None) -> str:
    """One line: a lost server (`server` says which), an OS error with its path, else the
    outermost message that is not a framework wrapper."""
    lost = lost_server(links)
    if lost:
        return f"{lost} ({server})" if server else lost
    found = os_error(links)
    if found:
        return found
    meaningful = [link for link in links if not link[0].startswith(_WRAPPERS)] or list(links)
    if not meaningful:
        return "failed"
    cls_name, message = meaningful[0]
    text = first_line(strip_class(cls_name, message))
    return f"{cls_name}: {text}" if text else cls_name
