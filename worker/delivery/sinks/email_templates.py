"""Email templates: subject, text and optional HTML per new status, in sandboxed Jinja2.

Names are `<Status>.subject`, `<Status>.txt`, `<Status>.html`, each falling back to
`default.<ext>`; a folder given with ORDERSTREAM_EMAIL_TEMPLATES overrides the shipped
ones (worker/templates/email) file by file. HTML is optional: sent only when a
`.html` template applies. Templates run in Jinja2's sandbox (a template cannot reach
Python internals), `.html` ones autoescaped (a customer's name cannot inject markup),
and an undefined variable is an error (StrictUndefined), never an empty string: a
mail saying "Your order  is now " is worse than a dead letter. All of them are compiled
and tried on a sample change at start-up, so a mistake stops the worker with its file
and line (exit 2) instead of dead-lettering every email.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from worker.core.models import Notification, UserProfile

PARTS = ("subject", "txt", "html")
DEFAULT = "default"
NAME = re.compile(r"^[A-Za-z0-9_]+\.(subject|txt|html)$")
SUBJECT_MAX = 998  # RFC 5322's longest line


class TemplateProblemError(ValueError):
    """A template is unusable; the message names the file and line."""


@dataclass(frozen=True)
class RenderedEmail:
    """One email as rendered: a one-line subject (at most 998 characters), text, optional HTML."""

    subject: str
    text: str
    html: str | None


def shipped_folder() -> Path:
    """The templates shipped in the package (worker/templates/email): the last fallback."""
    return Path(str(resources.files("worker").joinpath("templates", "email")))


class EmailTemplates:
    """The templates of one worker: the operator's folder first, then the shipped ones."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._folder = Path(folder) if folder else None
        folders = [shipped_folder()] if self._folder is None else [self._folder, shipped_folder()]
        self._env = SandboxedEnvironment(
            loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def names(self) -> list[str]:
        """Every template file found, overriding and shipped."""
        return sorted(set(self._env.list_templates(filter_func=lambda n: bool(NAME.match(n)))))

    def check(self) -> None:
        """Compile every template and render each on a sample change; raise
        TemplateProblemError naming the file and line of the first problem."""
        if self._folder is not None and not self._folder.is_dir():
            raise TemplateProblemError(f"{self._folder} is not a folder")
        if self._folder is not None:
            for path in sorted(self._folder.iterdir()):
                if path.is_file() and not NAME.match(path.name):
                    raise TemplateProblemError(
                        f"{path}: not a template name (<Status|default>.subject, .txt or .html)"
                    )
        for name in self.names():
            template = self._load(name)
            try:
                template.render(context(SAMPLE, SAMPLE_USER))
            except Exception as exc:  # any failure: `{{ amount + 1 }}` is a TypeError
                raise TemplateProblemError(_located(template, exc)) from None
        for part in ("subject", "txt"):
            if f"{DEFAULT}.{part}" not in self.names():
                raise TemplateProblemError(f"no {DEFAULT}.{part} template to fall back on")

    def render(self, notification: Notification, user: UserProfile) -> RenderedEmail:
        """The email for a change; raises jinja2.TemplateError (the change's own data
        broke a template: not worth retrying)."""
        values = context(notification, user)
        subject = self._pick(notification.new_status, "subject")
        text = self._pick(notification.new_status, "txt")
        html = self._pick(notification.new_status, "html")
        # check() made sure of the defaults
        assert subject is not None
        assert text is not None
        return RenderedEmail(
            subject=" ".join(subject.render(values).split())[:SUBJECT_MAX],
            text=text.render(values),
            html=html.render(values) if html is not None else None,
        )

    def _pick(self, status: str, part: str) -> Template | None:
        for base in (status, DEFAULT):
            if not NAME.match(f"{base}.{part}"):
                continue  # a status no file could be named after
            try:
                return self._env.get_template(f"{base}.{part}")
            except TemplateNotFound:
                continue
        return None

    def _load(self, name: str) -> Template:
        try:
            return self._env.get_template(name)
        except TemplateSyntaxError as exc:
            where = exc.filename or exc.name or name
            raise TemplateProblemError(f"{where}:{exc.lineno}: {exc.message}") from None
        except TemplateError as exc:
            raise TemplateProblemError(f"{name}: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:  # unreadable, or not UTF-8
            raise TemplateProblemError(f"{self._where(name)}: cannot read: {exc}") from None
        except (RecursionError, SyntaxError) as exc:  # nested past what Jinja2 or Python compiles
            raise TemplateProblemError(
                f"{self._where(name)}: cannot compile: {type(exc).__name__}: nested too deeply?"
            ) from None

    def _where(self, name: str) -> Path:
        """The file a template name comes from: the operator's folder if it has it."""
        if self._folder is not None and (self._folder / name).exists():
            return self._folder / name
        return shipped_folder() / name


def context(notification: Notification, user: UserProfile) -> dict[str, Any]:
    """What a template sees: the body's fields by name, `user` (user_id, name, email)
    and the whole body as `notification`."""
    body = notification.body()
    body.pop("user", None)
    return {**body, "notification": body, "user": user.body()}


def _located(template: Template, error: Exception) -> str:
    """`file:line: message` for an error raised while rendering: Jinja2 puts the
    template's own file and line into the traceback's frames."""
    line = None
    trace: TracebackType | None = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == template.filename:
            line = trace.tb_lineno
        trace = trace.tb_next
    where = template.filename or template.name
    return f"{where}:{line}: {error}" if line else f"{where}: {error}"


SAMPLE = Notification(
    id="sample-id",
    occurred_at="2024-05-01T10:00:00.000Z",
    user_id="USR001",
    order_id="ORD1001",
    old_status="Processing",
    new_status="Shipped",
    amount="50",
    shard_id="shardId-sample",
    sequence_number="1",
)
SAMPLE_USER = UserProfile(user_id="USR001", name="Alice", email="alice@example.com")
