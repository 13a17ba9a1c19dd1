"""Explicit conversation states: each has a prompt (ask the question) and a handler (read the answer).

Because every state can re-ask its own question, a person who returns days later, or after a
restart, is simply asked again where they stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.domain.roles import Role
from bot.flows.states import States
from bot.messages import DECLARED_COMMAND_ACTIONS

if TYPE_CHECKING:
    from bot.flows.context import Context, Input

PromptFn = Callable[["Context"], Awaitable[None]]
# Recognises a command typed without its slash (e.g. "ma ABCD-2345"): (command, args) or None.
BareMatcher = Callable[[str], "tuple[str, str] | None"]
HandleFn = Callable[["Context", "Input"], Awaitable[None]]
CommandFn = Callable[["Context", str], Awaitable[None]]


@dataclass
class CommandSpec:
    names: tuple[str, ...]
    handler: CommandFn
    needs_consent: bool
    help_key: str | None
    # Whom the command is for (help lists it only to them; an admin holds every role). The
    # command itself checks, with its scope; empty: everyone.
    roles: tuple[Role, ...] = ()
    english: str | None = None  # the alias shown to English readers

    def name_for(self, locale: str) -> str:
        """The name shown in help and command menus: Vietnamese first, the English alias in English."""
        if locale == "en" and self.english:
            return self.english
        return self.names[0]


@dataclass
class StateSpec:
    name: str
    prompt: PromptFn | None = None
    handle: HandleFn | None = None
    accepts_photos: bool = False
    before_consent: bool = False


@dataclass
class Router:
    states: dict[str, StateSpec] = field(default_factory=dict)
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    command_order: list[CommandSpec] = field(default_factory=list)
    bare_matchers: list[BareMatcher] = field(default_factory=list)

    def bare(self, matcher: BareMatcher) -> BareMatcher:
        """Register a matcher for a command people type without the slash. Keep matchers strict:
        they see every text message, whatever question is open."""
        self.bare_matchers.append(matcher)
        return matcher

    def bare_command(self, text: str) -> tuple[str, str] | None:
        for matcher in self.bare_matchers:
            found = matcher(text)
            if found is not None:
                return found
        return None

    def _state(self, name: str) -> StateSpec:
        return self.states.setdefault(name, StateSpec(name))

    def prompt(self, name: str, *, before_consent: bool = False) -> Callable[[PromptFn], PromptFn]:
        def register(fn: PromptFn) -> PromptFn:
            spec = self._state(name)
            spec.prompt = fn
            spec.before_consent = spec.before_consent or before_consent
            return fn

        return register

    def handle(
        self, name: str, *, photos: bool = False, before_consent: bool = False
    ) -> Callable[[HandleFn], HandleFn]:
        def register(fn: HandleFn) -> HandleFn:
            spec = self._state(name)
            spec.handle = fn
            spec.accepts_photos = photos
            spec.before_consent = spec.before_consent or before_consent
            return fn

        return register

    def command(
        self,
        *names: str,
        needs_consent: bool = True,
        help_key: str | None = None,
        roles: tuple[Role, ...] = (),
        english: str | None = None,
    ) -> Callable[[CommandFn], CommandFn]:
        """Register a command under its Vietnamese name and aliases; `english` must be one of them."""
        if english is not None and english not in names:
            raise ValueError(f"english name /{english} must be one of {names}")

        def register(fn: CommandFn) -> CommandFn:
            spec = CommandSpec(tuple(names), fn, needs_consent, help_key, roles, english)
            for name in names:
                if name in self.commands:
                    raise ValueError(f"command /{name} registered twice")
                self.commands[name] = spec
            self.command_order.append(spec)
            return fn

        return register

    def include(self, other: Router) -> None:
        for name, spec in other.states.items():
            if name in self.states:
                raise ValueError(f"state {name!r} defined in two routers")
            self.states[name] = spec
        for command in other.command_order:
            for name in command.names:
                if name in self.commands:
                    raise ValueError(f"command /{name} registered twice")
                self.commands[name] = command
            self.command_order.append(command)
        self.bare_matchers.extend(other.bare_matchers)

    def check(self, declared: Iterable[type[States]] = ()) -> None:
        """Fail now, not when someone gets there: a declared state (a `goto` target) nobody can ask
        (no prompt), a state registered under a name not declared, or a button declared to run a
        command that does not exist."""
        names = {name for group in declared for name in group.names()}
        problems = [f"state {name!r} has no prompt" for name, spec in self.states.items() if spec.prompt is None]
        problems += [f"state {name!r} has no prompt" for name in sorted(names - self.states.keys())]
        if names:
            problems += [
                f"state {name!r} is not declared in bot.flows.states" for name in self.states if name not in names
            ]
        problems += [
            f"a button runs /{name}, which is no command"
            for name in sorted(DECLARED_COMMAND_ACTIONS)
            if name not in self.commands
        ]
        if problems:
            raise ValueError("the conversation graph is broken: " + "; ".join(problems))
